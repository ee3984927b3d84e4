"""Who may do what: pure predicates (Wagtail's ``check()`` apart from ``execute()``).

Services call these and raise ``BroadcastPermissionDenied``; views and templates use them to
show or hide actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from .models import Broadcast, User


class BroadcastPermissionDenied(PermissionDenied):
    """The actor may not do this to this broadcast."""


# The account that authors drafts made from official information (JMA, 防災メール; issue 15).
# Created by migration inactive and without a usable password: it can never log in, review or
# approve; it may only draft, submit, update and cancel its own drafts. Since no person wrote
# them, any supervisor may approve them (four eyes over authorship still holds: whoever edits
# one becomes a contributor and may no longer approve it).
SYSTEM_AUTHOR_USERNAME = "official-alerts"


def is_system_author(user: User) -> bool:
    return (
        user.username == SYSTEM_AUTHOR_USERNAME
        and not user.is_active
        and not user.has_usable_password()
    )


def can_draft(user: User) -> bool:
    if is_system_author(user):
        return True
    return user.is_active and user.has_perm("broadcasts.add_broadcast")


def can_view(user: User, broadcast: Broadcast) -> bool:
    """Authors and reviewers see drafts; everyone with view permission sees the rest."""
    if broadcast.author_id == user.pk or can_review(user):
        return True
    return user.has_perm("broadcasts.view_broadcast") and broadcast.status != "draft"


def can_edit(user: User, broadcast: Broadcast) -> bool:
    """Drafters edit only their own broadcasts; reviewers may fix any before sending."""
    if is_system_author(user):
        return broadcast.author_id == user.pk
    if not user.is_active or not user.has_perm("broadcasts.change_broadcast"):
        return False
    return broadcast.author_id == user.pk or user.has_perm("broadcasts.review_broadcast")


def can_submit(user: User, broadcast: Broadcast) -> bool:
    if is_system_author(user):
        return broadcast.author_id == user.pk
    return user.has_perm("broadcasts.submit_broadcast") and broadcast.author_id == user.pk


def can_send_test(user: User, broadcast: Broadcast) -> bool:
    return user.has_perm("broadcasts.send_test_broadcast") and can_edit(user, broadcast)


def can_review(user: User) -> bool:
    return user.is_active and user.has_perm("broadcasts.review_broadcast")


def is_contributor(user: User, broadcast: Broadcast) -> bool:
    """Whether ``user`` wrote any part of the content: its author, or anyone who saved a
    change to it (``BroadcastContributor``)."""
    if broadcast.author_id == user.pk:
        return True
    if broadcast.pk is None:
        return False
    return broadcast.contributors.filter(user_id=user.pk).exists()


def can_approve(user: User, broadcast: Broadcast) -> bool:
    """Four eyes over authorship: never anyone who wrote part of it (the author or an editor).
    Emergencies, drills and 時間外配信 need a supervisor (承認者)."""
    if not user.is_active or is_contributor(user, broadcast):
        return False
    if broadcast.needs_supervisor:
        return user.has_perm("broadcasts.approve_emergency_broadcast")
    return user.has_perm("broadcasts.review_broadcast")


def can_reject(user: User, broadcast: Broadcast) -> bool:
    """Sending back for changes is the approver's decision too: what needs a 承認者
    (emergencies, drills, 時間外配信) is sent back only by one; never by its author."""
    if not can_review(user) or broadcast.author_id == user.pk:
        return False
    if broadcast.needs_supervisor:
        return user.has_perm("broadcasts.approve_emergency_broadcast")
    return True


def can_cancel(user: User, broadcast: Broadcast) -> bool:
    if is_system_author(user):
        return broadcast.author_id == user.pk
    if not user.is_active:
        return False
    if broadcast.author_id == user.pk and user.has_perm("broadcasts.change_broadcast"):
        return True
    return user.has_perm("broadcasts.review_broadcast")


def can_administer(user: User) -> bool:
    return user.is_active and user.has_perm("broadcasts.change_calendaroverride")


def can_manage_accounts(user: User) -> bool:
    """管理者: reset another user's second factor, set a forgotten password, unlock a login.
    Never the power to make anyone superuser or grant raw permissions (command line only)."""
    return user.is_active and user.has_perm("broadcasts.change_user")


def can_moderate(user: User) -> bool:
    """広報担当 and 管理者: the moderation inbox of citizens' messages (policy 6)."""
    return user.is_active and user.has_perm("broadcasts.moderate_citizenmessage")
