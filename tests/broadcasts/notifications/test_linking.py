"""Linking a staff member's own LINE account with a one-time code sent to the official account."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from broadcasts import roles
from broadcasts.models import BroadcastEvent, Follower, LineLink, WebhookEvent
from broadcasts.services import notifications
from line_sandbox import text_message_event
from line_sandbox.state import synthetic_user_id
from tests.broadcasts.notifications.conftest import NIGHT, link_line, staff

pytestmark = pytest.mark.django_db

PHONE = synthetic_user_id(810_001)
OTHER_PHONE = synthetic_user_id(810_002)


def send(text: str, line_user_id: str = PHONE, now: dt.datetime = NIGHT) -> str | None:
    reply = notifications.line_link_message(line_user_id=line_user_id, text=text, now=now)
    return reply[0]["text"] if reply else None


@pytest.fixture
def boss(db):
    return staff("boss", roles.SUPERVISOR)


def test_the_code_links_once_and_is_audited(boss):
    code = notifications.line_link_code_issue(user=boss, now=NIGHT)
    assert send(f"職員連携 {code}") == notifications.LINKED_REPLY.format(name=boss)
    assert LineLink.objects.get(user=boss).line_user_id == PHONE
    event = BroadcastEvent.objects.get(verb="line_linked")
    assert event.actor == boss
    assert PHONE not in str(event.data)  # only the last characters, never the whole ID
    # Full-width and lower case, as a phone keyboard may type it: the same code, now used.
    assert send(f"職員連携　{code.lower()}".translate(str.maketrans("-", "－"))) == (
        notifications.USED_CODE_REPLY
    )


def test_wrong_code_links_nothing(boss):
    notifications.line_link_code_issue(user=boss, now=NIGHT)
    assert send("職員連携 ABCD-EFGH") == notifications.WRONG_CODE_REPLY
    assert not LineLink.objects.exists()


def test_expired_code_links_nothing(boss, settings):
    code = notifications.line_link_code_issue(user=boss, now=NIGHT)
    late = NIGHT + dt.timedelta(minutes=settings.LINE_LINK_CODE_MINUTES)
    assert send(f"職員連携 {code}", now=late) == notifications.EXPIRED_CODE_REPLY
    assert not LineLink.objects.exists()
    # a second earlier it would have worked
    assert "連携しました" in send(f"職員連携 {code}", now=late - dt.timedelta(seconds=1))


def test_a_new_code_voids_the_previous_one(boss):
    first = notifications.line_link_code_issue(user=boss, now=NIGHT)
    second = notifications.line_link_code_issue(user=boss, now=NIGHT)
    assert send(f"職員連携 {first}") == notifications.WRONG_CODE_REPLY
    assert "連携しました" in send(f"職員連携 {second}")


def test_a_used_code_sent_from_another_line_account_does_not_move_the_link(boss):
    code = notifications.line_link_code_issue(user=boss, now=NIGHT)
    send(f"職員連携 {code}", PHONE)
    assert send(f"職員連携 {code}", OTHER_PHONE) == notifications.USED_CODE_REPLY
    assert LineLink.objects.get(user=boss).line_user_id == PHONE


def test_a_line_account_linked_to_someone_else_is_refused_and_the_code_burnt(boss):
    deputy = staff("deputy", roles.SUPERVISOR)
    mine = notifications.line_link_code_issue(user=boss, now=NIGHT)
    send(f"職員連携 {mine}", PHONE)
    theirs = notifications.line_link_code_issue(user=deputy, now=NIGHT)
    assert send(f"職員連携 {theirs}", PHONE) == notifications.TAKEN_REPLY
    assert LineLink.objects.get(line_user_id=PHONE).user == boss
    assert not LineLink.objects.filter(user=deputy).exists()
    assert send(f"職員連携 {theirs}", OTHER_PHONE) == notifications.USED_CODE_REPLY
    assert BroadcastEvent.objects.filter(verb="line_link_refused", actor=deputy).exists()


def test_guessing_is_throttled_per_line_account(boss):
    code = notifications.line_link_code_issue(user=boss, now=NIGHT)
    for n in range(notifications.LINK_ATTEMPT_LIMIT):
        assert send(f"職員連携 ZZZZ-ZZZ{n + 2}") == notifications.WRONG_CODE_REPLY
    # Even the right code waits now, from this account…
    assert send(f"職員連携 {code}") == notifications.THROTTLED_REPLY
    assert not LineLink.objects.exists()
    # …but not from another account, nor after the window.
    assert "連携しました" in send(f"職員連携 {code}", OTHER_PHONE)
    later = NIGHT + notifications.LINK_ATTEMPT_WINDOW + dt.timedelta(seconds=1)
    fresh = notifications.line_link_code_issue(user=boss, now=later)
    assert "連携しました" in send(f"職員連携 {fresh}", now=later)
    assert LineLink.objects.get(user=boss).line_user_id == PHONE


def test_ordinary_text_is_not_a_code():
    for text in ("ごみの出し方", "ABCD-1234", "職員", "", "連携したい"):
        assert notifications.normalise_code(text) is None
        assert send(text) is None


def test_through_the_webhook_the_code_is_answered_and_never_a_citizens_message(
    boss, post_webhook, eager, line_sandbox
):
    line_sandbox.state.add_followers(user_ids=[PHONE])
    # The event's time (LINE's timestamp) is "now" for the code: issued a moment before.
    code = notifications.line_link_code_issue(user=boss, now=timezone.now())
    post_webhook([text_message_event(PHONE, f"職員連携 {code}")])
    replies = [item.message["text"] for item in line_sandbox.inbox(PHONE)]
    assert len(replies) == 1
    assert "連携しました" in replies[0]
    assert LineLink.objects.get(user=boss).line_user_id == PHONE
    # Not a citizen's message: no automatic response, no follower made, text not kept.
    assert "個別のご質問" not in replies[0]
    assert not Follower.objects.filter(line_user_id=PHONE).exists()
    event = WebhookEvent.objects.get(line_user_id=PHONE)
    assert code not in str(event.payload)


def test_the_settings_page_shows_a_code_and_unlinks(client, boss, line_sandbox):
    client.force_login(boss)
    page = client.get(reverse("broadcasts:line_link"))
    assert page.status_code == 200
    assert "未連携" in page.content.decode()
    issued = client.post(reverse("broadcasts:line_link"), {"action": "issue"})
    body = issued.content.decode()
    shown = body.split('data-testid="line-link-code">', 1)[1].split("<", 1)[0]
    assert shown.startswith("職員連携 ")
    assert "連携しました" in send(shown, synthetic_user_id(810_009), now=timezone.now())
    assert LineLink.objects.get(user=boss).line_user_id == synthetic_user_id(810_009)
    assert "連携済み" in client.get(reverse("broadcasts:line_link")).content.decode()


def test_unlink_from_the_page(client, boss, line_sandbox):
    link_line(line_sandbox, boss, 810_010)
    client.force_login(boss)
    assert "連携済み" in client.get(reverse("broadcasts:line_link")).content.decode()
    response = client.post(reverse("broadcasts:line_link"), {"action": "unlink"})
    assert response.status_code == 302
    assert not LineLink.objects.filter(user=boss).exists()
    assert BroadcastEvent.objects.filter(verb="line_unlinked", actor=boss).exists()


def test_an_admin_removes_a_lost_phones_link_in_the_admin_with_an_audit_row(
    client, boss, admin_user, line_sandbox
):
    link_line(line_sandbox, boss, 810_011)
    link = LineLink.objects.get(user=boss)
    changelist = reverse("admin:broadcasts_linelink_changelist")
    # Only those who manage accounts see the links; a supervisor does not, even their own.
    client.force_login(boss)
    assert client.get(changelist).status_code in (302, 403)  # the admin's login, or refused
    client.force_login(admin_user)
    page = client.get(changelist)
    assert page.status_code == 200
    assert str(boss) in page.content.decode()
    assert PHONE not in page.content.decode() and link.line_user_id not in page.content.decode()
    response = client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [link.pk], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert not LineLink.objects.filter(user=boss).exists()
    event = BroadcastEvent.objects.get(verb="line_unlinked")
    assert event.actor == admin_user
    assert str(boss) in event.comment and "管理者" in event.comment
    # Nobody adds or edits a link here: only the person links, with a code from their phone.
    assert client.get(reverse("admin:broadcasts_linelink_add")).status_code == 403
