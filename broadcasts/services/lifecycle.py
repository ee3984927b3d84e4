"""The life of a broadcast up to sending (DESIGN.md §3): create, edit, submit, review, cancel.

Every transition has one shape: lock the row, check the transition table, write, add an
audit row, and register side effects with ``transaction.on_commit``."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import permissions, schedule
from ..content import (
    CORRECTION_PLACEHOLDER,
    DRILL_MARKER,
    Problem,
    check_messages,
    content_hash,
    has_drill_marker,
    message_texts,
)
from ..models import Broadcast, BroadcastContributor, Category, Division, User
from ..selectors import audiences as audience_selectors
from .audiences import variants_review_problems
from .audit import audit_record, audit_record_system_many
from .errors import (
    BroadcastInvalid,
    BroadcastPermissionDenied,
    InvalidTransition,
    SecondFactorRequired,
)
from .notifications import approval_alerts_open
from .scheduling import enqueue_emergency_send, schedule_for

S = Broadcast.Status

# action -> (states it may start from, state it ends in)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({S.DRAFT, S.REJECTED}), S.PENDING_REVIEW),
    "withdraw": (frozenset({S.PENDING_REVIEW}), S.DRAFT),
    "approve": (frozenset({S.PENDING_REVIEW}), S.SCHEDULED),
    "reject": (frozenset({S.PENDING_REVIEW}), S.REJECTED),
    "reopen": (frozenset({S.SCHEDULED}), S.PENDING_REVIEW),
    "cancel": (
        frozenset({S.DRAFT, S.PENDING_REVIEW, S.REJECTED, S.SCHEDULED, S.NEEDS_ATTENTION}),
        S.CANCELLED,
    ),
    "claim": (frozenset({S.SCHEDULED}), S.SENDING),
    "hold": (frozenset({S.SENDING}), S.SCHEDULED),
    "complete": (frozenset({S.SENDING}), S.SENT),
    "fail": (frozenset({S.SENDING, S.NEEDS_ATTENTION}), S.FAILED),
    "needs_attention": (frozenset({S.SENDING, S.SCHEDULED}), S.NEEDS_ATTENTION),
    "resume": (frozenset({S.NEEDS_ATTENTION}), S.SENDING),
}
ACTION_LABELS = {
    "submit": "承認申請",
    "withdraw": "申請の取り下げ",
    "approve": "承認",
    "reject": "差し戻し",
    "reopen": "再審査",
    "cancel": "取消",
    "claim": "配信開始",
    "hold": "保留",
    "complete": "配信完了",
    "fail": "失敗",
    "needs_attention": "要対応",
    "resume": "再開",
}
EDITABLE = frozenset({S.DRAFT, S.REJECTED, S.PENDING_REVIEW, S.SCHEDULED})


def transition(
    broadcast: Broadcast,
    action: str,
    *,
    actor: User | None,
    comment: str = "",
    data: dict[str, Any] | None = None,
    fields: Iterable[str] = (),
) -> None:
    """Move a row (already locked by the caller) through the table and audit it."""
    allowed_from, target = TRANSITIONS[action]
    if broadcast.status not in allowed_from:
        raise InvalidTransition(broadcast.status, ACTION_LABELS[action])
    before = broadcast.status
    broadcast.status = target
    broadcast.save(update_fields=["status", "updated_at", *fields])
    audit_record(
        verb=action,
        actor=actor,
        broadcast=broadcast,
        from_status=before,
        to_status=target,
        comment=comment,
        data=data,
    )


def transition_many(
    broadcasts: Sequence[Broadcast], action: str, *, now: dt.datetime, values: dict[str, Any]
) -> None:
    """``transition`` for many rows (already locked by the caller) that the system moves
    together, e.g. the dispatcher claiming the fifty sends held for 8:30: the same checks
    and one audit row each, in one UPDATE and one INSERT instead of two statements a row
    (the window's last send waited ~0.2 s for the others' claims). ``values``: the other
    fields, the same for every row (expressions allowed, e.g. ``Coalesce``); the instances
    get the new status, the rest is in the database."""
    if not broadcasts:
        return
    allowed_from, target = TRANSITIONS[action]
    for broadcast in broadcasts:
        if broadcast.status not in allowed_from:
            raise InvalidTransition(broadcast.status, ACTION_LABELS[action])
    before = {broadcast.status for broadcast in broadcasts}
    if len(before) != 1:  # one from-state per call keeps the audit rows exact
        raise ValueError(f"transition_many: rows in several states {sorted(before)}")
    Broadcast.objects.filter(pk__in=[b.pk for b in broadcasts]).update(
        status=target, updated_at=now, **values
    )
    for broadcast in broadcasts:
        broadcast.status = target
    audit_record_system_many(
        verb=action, broadcasts=broadcasts, from_status=before.pop(), to_status=target
    )


def transition_if(
    broadcast: Broadcast,
    action: str,
    *,
    now: dt.datetime,
    where: dict[str, Any],
    values: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> bool:
    """``transition`` by the system as one conditional UPDATE, where the row's own current
    columns decide whether the step is taken (the sender's last reply completing its send:
    ``where`` says "this run still holds the lease and this makes every request accepted").
    The row moves only if it is in the one state the table allows the action from and
    ``where`` holds on it as it is now; then its audit row is written. Returns whether it
    moved (if not, nothing was written). The UPDATE locks the row until the caller's
    transaction ends, as ``lock`` would."""
    allowed_from, target = TRANSITIONS[action]
    if len(allowed_from) != 1:  # the audit row's from-state must be known without a read
        raise ValueError(f"transition_if: {action!r} may start from several states")
    (before,) = allowed_from
    moved = Broadcast.objects.filter(pk=broadcast.pk, status=before, **where).update(
        status=target, updated_at=now, **values
    )
    if not moved:
        return False
    broadcast.status = target
    audit_record(
        verb=action,
        actor=None,
        broadcast=broadcast,
        from_status=before,
        to_status=target,
        data=data,
    )
    return True


def lock(broadcast_id: int) -> Broadcast:
    return Broadcast.objects.select_for_update().get(pk=broadcast_id)


def compute_hash(
    broadcast: Broadcast, category_codes: list[str] | None = None, *, has_targeting: bool = True
) -> str:
    """The content hash. ``has_targeting=False`` (the caller knows the broadcast has no
    audience rows and no language versions): the targeting part is ``None`` without asking."""
    if category_codes is None:
        category_codes = list(broadcast.categories.values_list("code", flat=True))
    return content_hash(
        messages=broadcast.messages,
        audience=broadcast.audience,
        category_codes=category_codes,
        requested_at_iso=broadcast.requested_at.isoformat() if broadcast.requested_at else None,
        priority=broadcast.priority,
        notification_disabled=broadcast.notification_disabled,
        kind=broadcast.kind,
        targeting=audience_selectors.hash_part(broadcast) if has_targeting else None,
    )


def broadcast_snapshot(
    broadcast: Broadcast, category_codes: list[str] | None = None
) -> dict[str, Any]:
    """The editable content as the audit log records it (``before``/``after`` of an edit);
    the review screen diffs the current content against the last approved snapshot."""
    if category_codes is None:
        category_codes = [c.code for c in broadcast.categories.all()]
    return {
        "title": broadcast.title,
        "messages": broadcast.messages,
        "audience": broadcast.audience,
        "categories": sorted(category_codes),
        "requested_at": broadcast.requested_at.isoformat() if broadcast.requested_at else None,
        "priority": broadcast.priority,
        "emergency_reason": broadcast.emergency_reason,
        "out_of_hours_reason": broadcast.out_of_hours_reason,
        "notification_disabled": broadcast.notification_disabled,
        "kind": broadcast.kind,
        # Areas, age groups, languages and language versions (issue 16); None when none.
        "targeting": audience_selectors.hash_part(broadcast),
    }


def mark_drill(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every text a citizen could read in a drill starts with 【訓練】."""
    marked = []
    for message in messages:
        message = dict(message)
        if message.get("type") == "text" and not str(message.get("text", "")).startswith(
            DRILL_MARKER
        ):
            message["text"] = f"{DRILL_MARKER}{message.get('text', '')}"
        elif message.get("type") == "template" and not str(message.get("altText", "")).startswith(
            DRILL_MARKER
        ):
            message["altText"] = f"{DRILL_MARKER}{message.get('altText', '')}"
        marked.append(message)
    return marked


def _normalise(
    *,
    kind: str,
    priority: str,
    audience: str,
    categories: list[Category],
    messages: list[dict[str, Any]],
    emergency_reason: str,
    out_of_hours_reason: str = "",
) -> tuple[str, str, str, list[dict[str, Any]]]:
    """Rules that hold whoever writes the row: drills reach staff only and are marked;
    a live broadcast never carries the drill marker; the emergency category is an emergency;
    a 時間外配信 states why the city deems it necessary."""
    if kind == Broadcast.Kind.DRILL:
        audience = Broadcast.Audience.STAFF_TEST
        priority = Broadcast.Priority.EMERGENCY
        emergency_reason = emergency_reason or "訓練"
        messages = mark_drill(messages)
    elif has_drill_marker(messages):
        raise BroadcastInvalid(
            [
                Problem(
                    "messages",
                    f"本番の配信に「{DRILL_MARKER}」は使えません。訓練は訓練モードで作成してください。",
                )
            ]
        )
    if any(c.is_emergency_default for c in categories) and priority == Broadcast.Priority.NORMAL:
        priority = Broadcast.Priority.EMERGENCY
    if priority == Broadcast.Priority.EMERGENCY and not emergency_reason.strip():
        raise BroadcastInvalid([Problem("emergency_reason", "緊急配信の理由を入力してください。")])
    if priority == Broadcast.Priority.OUT_OF_HOURS and not out_of_hours_reason.strip():
        raise BroadcastInvalid(
            [
                Problem(
                    "out_of_hours_reason",
                    "時間外配信の理由（市が必要と認める理由）を入力してください。",
                )
            ]
        )
    return audience, priority, emergency_reason, messages


@transaction.atomic
def broadcast_create(
    *,
    author: User,
    title: str,
    categories: list[Category],
    messages: list[dict[str, Any]],
    audience: str = Broadcast.Audience.ALL,
    requested_at: dt.datetime | None = None,
    priority: str = Broadcast.Priority.NORMAL,
    emergency_reason: str = "",
    notification_disabled: bool = False,
    kind: str = Broadcast.Kind.LIVE,
    parent: Broadcast | None = None,
    division: Division | None = None,
    out_of_hours_reason: str = "",
) -> Broadcast:
    if not permissions.can_draft(author):
        raise BroadcastPermissionDenied("配信を作成する権限がありません。")
    audience, priority, emergency_reason, messages = _normalise(
        kind=kind,
        priority=priority,
        audience=audience,
        categories=categories,
        messages=messages,
        emergency_reason=emergency_reason,
        out_of_hours_reason=out_of_hours_reason,
    )
    if priority != Broadcast.Priority.OUT_OF_HOURS:
        out_of_hours_reason = ""
    broadcast = Broadcast.objects.create(
        title=title,
        messages=messages,
        audience=audience,
        requested_at=requested_at,
        priority=priority,
        emergency_reason=emergency_reason,
        out_of_hours_reason=out_of_hours_reason.strip(),
        notification_disabled=notification_disabled,
        kind=kind,
        parent=parent,
        division=division or author.division,
        author=author,
    )
    broadcast.categories.set(categories)
    _contributor_add(broadcast, author, at=broadcast.created_at)
    codes = [c.code for c in categories]
    broadcast.content_hash = compute_hash(broadcast, codes)
    broadcast.save(update_fields=["content_hash"])
    audit_record(
        verb="create",
        actor=author,
        broadcast=broadcast,
        to_status=broadcast.status,
        data={"after": broadcast_snapshot(broadcast, codes)},
    )
    return broadcast


@transaction.atomic
def broadcast_update(
    *,
    broadcast: Broadcast,
    actor: User,
    title: str,
    categories: list[Category],
    messages: list[dict[str, Any]],
    audience: str,
    requested_at: dt.datetime | None,
    priority: str,
    emergency_reason: str,
    notification_disabled: bool,
    out_of_hours_reason: str = "",
) -> Broadcast:
    """Edit content. An edit after approval voids the approval and returns it to review."""
    broadcast = lock(broadcast.pk)
    if not permissions.can_edit(actor, broadcast):
        raise BroadcastPermissionDenied("この配信を編集する権限がありません。")
    if broadcast.status not in EDITABLE:
        raise InvalidTransition(broadcast.status, "編集")
    old_codes = list(broadcast.categories.values_list("code", flat=True))
    before = broadcast_snapshot(broadcast, old_codes)
    audience, priority, emergency_reason, messages = _normalise(
        kind=broadcast.kind,
        priority=priority,
        audience=audience,
        categories=categories,
        messages=messages,
        emergency_reason=emergency_reason,
        out_of_hours_reason=out_of_hours_reason,
    )
    if priority != Broadcast.Priority.OUT_OF_HOURS:
        out_of_hours_reason = ""
    broadcast.title = title
    broadcast.messages = messages
    broadcast.audience = audience
    broadcast.requested_at = requested_at
    broadcast.priority = priority
    broadcast.emergency_reason = emergency_reason
    broadcast.out_of_hours_reason = out_of_hours_reason.strip()
    broadcast.notification_disabled = notification_disabled
    codes = [c.code for c in categories]
    new_hash = compute_hash(broadcast, codes)
    changed_content = new_hash != broadcast.content_hash
    broadcast.content_hash = new_hash
    broadcast.save()
    broadcast.categories.set(categories)
    after = broadcast_snapshot(broadcast, codes)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        # Whoever saves a change has written part of it: they may no longer approve it.
        _contributor_add(broadcast, actor, at=broadcast.updated_at)
    audit_record(
        verb="edit",
        actor=actor,
        broadcast=broadcast,
        from_status=broadcast.status,
        to_status=broadcast.status,
        data={"changed": changed, "before": before, "after": after},
    )
    if changed_content:
        approval_void_after_edit(broadcast, actor=actor)
    return broadcast


def approval_void_after_edit(broadcast: Broadcast, *, actor: User) -> None:
    """The content changed: an approval no longer holds, and a scheduled send goes back to
    review (the row is locked by the caller)."""
    if not (broadcast.approved_by_id or broadcast.status == S.SCHEDULED):
        return
    _void_approval(broadcast)
    if broadcast.status == S.SCHEDULED:
        transition(
            broadcast,
            "reopen",
            actor=actor,
            comment="承認後に内容が変更されたため、再度の承認が必要です。",
            fields=_APPROVAL_FIELDS,
        )
    else:
        broadcast.save(update_fields=list(_APPROVAL_FIELDS))


def _contributor_add(broadcast: Broadcast, user: User, *, at: dt.datetime) -> None:
    BroadcastContributor.objects.get_or_create(
        broadcast=broadcast, user=user, defaults={"first_contributed_at": at}
    )


contributor_add = _contributor_add


_APPROVAL_FIELDS = (
    "approved_by",
    "approved_at",
    "approved_hash",
    "approval_second_factor_at",
    "scheduled_for",
    "hold_reason",
)


def _void_approval(broadcast: Broadcast) -> None:
    broadcast.approved_by = None
    broadcast.approved_at = None
    broadcast.approved_hash = ""
    broadcast.approval_second_factor_at = None
    broadcast.scheduled_for = None
    broadcast.hold_reason = ""


def validate_for_review(broadcast: Broadcast) -> None:
    problems = check_messages(broadcast.messages)
    if not broadcast.title.strip():
        problems.insert(0, Problem("title", "件名を入力してください。"))
    if not broadcast.categories.exists():
        problems.append(Problem("categories", "カテゴリを1つ以上選んでください。"))
    if any(CORRECTION_PLACEHOLDER in text for text in message_texts(broadcast.messages)):
        problems.append(
            Problem(
                "messages",
                f"訂正の文面に「{CORRECTION_PLACEHOLDER}」が残っています。正しい内容に書き換えてください。",
            )
        )
    problems += variants_review_problems(broadcast)  # language versions (issue 16)
    if problems:
        raise BroadcastInvalid(problems)


@transaction.atomic
def broadcast_submit(*, broadcast: Broadcast, actor: User) -> Broadcast:
    broadcast = lock(broadcast.pk)
    if not permissions.can_submit(actor, broadcast):
        raise BroadcastPermissionDenied("この配信を申請できるのは起案者本人です。")
    validate_for_review(broadcast)
    broadcast.submitted_at = timezone.now()
    transition(broadcast, "submit", actor=actor, fields=["submitted_at"])
    # Who is told: emergencies and drills alert every 承認者 at once (LINE and e-mail, sent
    # after commit); ordinary submissions queue a reviewers' e-mail digest.
    approval_alerts_open(broadcast=broadcast, now=broadcast.submitted_at)
    return broadcast


@transaction.atomic
def broadcast_withdraw(*, broadcast: Broadcast, actor: User) -> Broadcast:
    broadcast = lock(broadcast.pk)
    if broadcast.author_id != actor.pk:
        raise BroadcastPermissionDenied("申請を取り下げられるのは起案者本人です。")
    transition(broadcast, "withdraw", actor=actor)
    return broadcast


SECOND_FACTOR_MAX_AGE = schedule.SECOND_FACTOR_MAX_AGE
EDITOR_CANNOT_APPROVE = (
    "この配信の内容を編集したため、あなたは承認できません。"
    "編集していない別の担当者に承認を依頼してください。"
)


@dataclass(frozen=True)
class EmergencyConfirmation:
    """What a supervisor gives to approve an emergency: the recipient count typed by hand
    (so nobody approves a send to everyone by reflex) and when their second factor was
    last verified."""

    typed_count: str
    second_factor_verified_at: dt.datetime | None


def _digits(value: str) -> str:
    normalised = unicodedata.normalize("NFKC", value or "")
    return "".join(ch for ch in normalised if ch.isdigit())


def _check_second_factor(verified: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The approver's second factor, verified in the five minutes before ``now``."""
    if verified is None or not (
        now - SECOND_FACTOR_MAX_AGE <= verified <= now + dt.timedelta(seconds=5)
    ):
        raise SecondFactorRequired()
    return verified


def _check_emergency_confirmation(
    broadcast: Broadcast, confirmation: EmergencyConfirmation | None, now: dt.datetime
) -> dict[str, Any]:
    if confirmation is None:
        raise SecondFactorRequired()
    verified = _check_second_factor(confirmation.second_factor_verified_at, now)
    # Areas, age groups and language narrow it too (issue 16).
    expected = audience_selectors.broadcast_recipient_count(broadcast)
    if _digits(confirmation.typed_count) != str(expected):
        raise BroadcastInvalid(
            [
                Problem(
                    "typed_count",
                    f"受信者数が一致しません。画面に表示されている受信者数（{expected:,}）を"
                    "半角数字で入力してください。",
                )
            ]
        )
    return {"recipient_count": expected, "second_factor_verified_at": verified.isoformat()}


@transaction.atomic
def broadcast_approve(
    *,
    broadcast: Broadcast,
    actor: User,
    comment: str = "",
    seen_hash: str | None = None,
    emergency: EmergencyConfirmation | None = None,
    now: dt.datetime | None = None,
    second_factor_verified_at: dt.datetime | None = None,
) -> Broadcast:
    """Approve the exact content ``seen_hash`` the reviewer looked at, and schedule it.

    An emergency (and a drill, which follows the emergency flow) needs a supervisor who is
    not the author, the typed recipient count and a fresh second factor; it is enqueued at
    once on the ``emergency`` queue (after commit), with the dispatcher as backstop.

    A 時間外配信 needs a supervisor who wrote none of it and a second factor verified in the
    last five minutes (``second_factor_verified_at``); it is not an emergency: the dispatcher
    claims it at its time, outside the window only while schedule.py finds the approval
    valid."""
    from .errors import StaleApproval

    broadcast = lock(broadcast.pk)
    if not permissions.can_approve(actor, broadcast):
        if broadcast.author_id == actor.pk:
            raise BroadcastPermissionDenied("自分が起案した配信は承認できません。")
        if permissions.is_contributor(actor, broadcast):
            raise BroadcastPermissionDenied(EDITOR_CANNOT_APPROVE)
        if broadcast.is_emergency:
            raise BroadcastPermissionDenied("緊急配信を承認できるのは承認者だけです。")
        if broadcast.is_out_of_hours:
            raise BroadcastPermissionDenied("時間外配信を承認できるのは承認者だけです。")
        raise BroadcastPermissionDenied("この配信を承認する権限がありません。")
    current = compute_hash(broadcast)
    if seen_hash is not None and seen_hash != current:
        raise StaleApproval()
    validate_for_review(broadcast)
    now = now or timezone.now()
    confirmation: dict[str, Any] = {}
    verified: dt.datetime | None = None
    if broadcast.is_emergency:
        confirmation = _check_emergency_confirmation(broadcast, emergency, now)
        verified = dt.datetime.fromisoformat(confirmation["second_factor_verified_at"])
    elif broadcast.is_out_of_hours:
        verified = _check_second_factor(second_factor_verified_at, now)
        confirmation = {
            "out_of_hours": True,
            "out_of_hours_reason": broadcast.out_of_hours_reason,
            "second_factor_verified_at": verified.isoformat(),
        }
    broadcast.approved_by = actor
    broadcast.approved_at = now
    broadcast.approved_hash = current
    broadcast.approval_second_factor_at = verified
    broadcast.content_hash = current
    granted = None
    if broadcast.is_out_of_hours:
        # The audit row naming this approver is written just below; until then the approval
        # is the one checked here (a 承認者, not a writer, the second factor, this content).
        granted = schedule.OutOfHoursApproval(
            by_supervisor=True,
            approved_at=now,
            second_factor_verified_at=verified,
            approved_hash=current,
            content_hash=current,
        )
    effective = schedule_for(broadcast, now=now, out_of_hours=granted)
    broadcast.scheduled_for = effective.at
    broadcast.hold_reason = effective.reason if effective.held else ""
    transition(
        broadcast,
        "approve",
        actor=actor,
        comment=comment,
        data={
            "approved_hash": current,
            "scheduled_for": effective.at.isoformat(),
            "reason": effective.reason,
            "emergency": broadcast.is_emergency,
            "drill": broadcast.is_drill,
            **confirmation,
        },
        fields=[*_APPROVAL_FIELDS, "content_hash"],
    )
    if broadcast.is_emergency:
        enqueue_emergency_send(broadcast.pk)
    return broadcast


@transaction.atomic
def broadcast_reject(*, broadcast: Broadcast, actor: User, comment: str) -> Broadcast:
    broadcast = lock(broadcast.pk)
    if not comment.strip():
        raise BroadcastInvalid([Problem("comment", "差し戻しの理由を入力してください。")])
    if not permissions.can_reject(actor, broadcast):
        raise BroadcastPermissionDenied("この配信を差し戻す権限がありません。")
    transition(broadcast, "reject", actor=actor, comment=comment)
    return broadcast


@transaction.atomic
def broadcast_cancel(*, broadcast: Broadcast, actor: User, comment: str = "") -> Broadcast:
    broadcast = lock(broadcast.pk)
    if not permissions.can_cancel(actor, broadcast):
        raise BroadcastPermissionDenied("この配信を取り消す権限がありません。")
    if broadcast.status == S.NEEDS_ATTENTION:
        # Requests LINE never accepted are abandoned; accepted ones stay as they are.
        broadcast.deliveries.filter(status="pending").update(
            status="failed", last_error="配信が取り消されたため送信しませんでした。"
        )
    transition(broadcast, "cancel", actor=actor, comment=comment)
    return broadcast
