"""時間外配信 (policy 5(1) 「市が必要と認める場合」, issue 13 item 5): a send outside the window
that is not an emergency — a weekend notice the city deems necessary.

Its own kind (priority 時間外配信) with a required reason; approved only by a 承認者 who did not
write it, with a second factor verified in the five minutes before approving; not red and not
on the emergency queue. The attackers: the author, a reviewer without the role, a stale or
missing second factor, an edit after approval, a row written behind the services' back — none
of them gets it out of the window. An ordinary send approved at the same moment still waits."""

from __future__ import annotations

import datetime as dt

import pytest

from broadcasts import roles, services
from broadcasts.models import Broadcast, BroadcastEvent, Category
from broadcasts.services import BroadcastInvalid, BroadcastPermissionDenied, SecondFactorRequired
from broadcasts.services.scheduling import schedule_for
from tests.factories import text_message
from tests.fixtures.users import make_user

from .sending.helpers import approved_broadcast, jst

S = Broadcast.Status
P = Broadcast.Priority
SATURDAY_NIGHT = jst(2026, 11, 28, 21, 0)
MONDAY_OPEN = jst(2026, 11, 30, 8, 30)
REASON = "台風接近に伴う日曜日のごみ収集中止を前日夜に周知するため"


def out_of_hours_draft(author, *, reason: str = REASON, submit: bool = True) -> Broadcast:
    broadcast = services.broadcast_create(
        author=author,
        title="日曜日のごみ収集は中止します",
        categories=[Category.objects.get(code="municipal")],
        messages=[text_message("台風接近のため、11/29(日)のごみ収集は中止します。")],
        priority=P.OUT_OF_HOURS,
        out_of_hours_reason=reason,
    )
    if submit:
        services.broadcast_submit(broadcast=broadcast, actor=author)
    return broadcast


def approve(broadcast, actor, *, verified_at: dt.datetime | None, now=SATURDAY_NIGHT):
    return services.broadcast_approve(
        broadcast=broadcast,
        actor=actor,
        seen_hash=services.compute_hash(broadcast),
        second_factor_verified_at=verified_at,
        now=now,
    )


def fresh(now: dt.datetime = SATURDAY_NIGHT) -> dt.datetime:
    return now - dt.timedelta(minutes=2)


# --- the kind ---------------------------------------------------------------------------------


def test_it_is_its_own_kind_and_not_an_emergency(drafter):
    broadcast = out_of_hours_draft(drafter)
    assert broadcast.priority == P.OUT_OF_HOURS
    assert broadcast.get_priority_display() == "時間外配信"
    assert broadcast.is_out_of_hours
    assert not broadcast.is_emergency
    assert broadcast.out_of_hours_reason == REASON


def test_a_reason_is_required(drafter):
    with pytest.raises(BroadcastInvalid) as refused:
        out_of_hours_draft(drafter, reason="  ", submit=False)
    assert refused.value.problems[0].field == "out_of_hours_reason"
    assert "時間外配信の理由" in refused.value.problems[0].message


# --- the approval -----------------------------------------------------------------------------


def test_a_supervisor_with_a_fresh_second_factor_sends_it_on_a_saturday_night(
    drafter, supervisor, django_capture_on_commit_callbacks
):
    broadcast = out_of_hours_draft(drafter)
    with django_capture_on_commit_callbacks() as callbacks:
        broadcast = approve(broadcast, supervisor, verified_at=fresh())
    assert broadcast.status == S.SCHEDULED
    assert broadcast.scheduled_for == SATURDAY_NIGHT
    assert broadcast.hold_reason == ""
    assert broadcast.approval_second_factor_at == fresh()
    # Not the emergency queue: nothing is enqueued at approval; the dispatcher claims it.
    assert callbacks == []
    event = BroadcastEvent.objects.get(broadcast=broadcast, verb="approve")
    assert event.actor == supervisor
    assert event.data["out_of_hours"] is True
    assert event.data["second_factor_verified_at"] == fresh().isoformat()
    assert event.data["out_of_hours_reason"] == REASON
    result = services.broadcasts_dispatch_due(now=SATURDAY_NIGHT + dt.timedelta(seconds=1))
    assert result.claimed == [broadcast.pk]


def test_an_ordinary_send_approved_at_the_same_moment_still_waits(drafter, reviewer):
    ordinary = approved_broadcast(author=drafter, approver=reviewer, now=SATURDAY_NIGHT)
    assert ordinary.scheduled_for == MONDAY_OPEN
    assert (
        services.broadcasts_dispatch_due(now=SATURDAY_NIGHT + dt.timedelta(hours=1)).claimed == []
    )


def test_the_author_cannot_approve_it_even_as_a_supervisor(supervisor):
    broadcast = out_of_hours_draft(supervisor)
    with pytest.raises(BroadcastPermissionDenied):
        approve(broadcast, supervisor, verified_at=fresh())
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW


def test_a_reviewer_without_the_supervisor_role_cannot_approve_it(drafter, reviewer):
    broadcast = out_of_hours_draft(drafter)
    with pytest.raises(BroadcastPermissionDenied, match="承認者"):
        approve(broadcast, reviewer, verified_at=fresh())
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert broadcast.approved_by is None


@pytest.mark.parametrize(
    "verified_at",
    [None, SATURDAY_NIGHT - dt.timedelta(minutes=6), SATURDAY_NIGHT + dt.timedelta(minutes=3)],
    ids=["never", "six-minutes-old", "in-the-future"],
)
def test_without_a_fresh_second_factor_it_cannot_be_approved(drafter, supervisor, verified_at):
    broadcast = out_of_hours_draft(drafter)
    with pytest.raises(SecondFactorRequired):
        approve(broadcast, supervisor, verified_at=verified_at)
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW


def test_an_editor_of_the_content_cannot_approve_it(drafter, supervisor):
    broadcast = out_of_hours_draft(drafter)
    services.broadcast_update(
        broadcast=broadcast,
        actor=supervisor,
        title=broadcast.title,
        categories=list(broadcast.categories.all()),
        messages=[text_message("台風接近のため、11/29(日)のごみ収集は中止します（訂正）。")],
        audience=broadcast.audience,
        requested_at=None,
        priority=P.OUT_OF_HOURS,
        emergency_reason="",
        out_of_hours_reason=REASON,
        notification_disabled=False,
    )
    with pytest.raises(BroadcastPermissionDenied):
        approve(broadcast, supervisor, verified_at=fresh())


def test_editing_after_approval_voids_it_and_the_send_waits_again(drafter, supervisor):
    broadcast = approve(out_of_hours_draft(drafter), supervisor, verified_at=fresh())
    services.broadcast_update(
        broadcast=broadcast,
        actor=drafter,
        title=broadcast.title,
        categories=list(broadcast.categories.all()),
        messages=[text_message("11/29(日)のごみ収集は中止します。資源回収も中止です。")],
        audience=broadcast.audience,
        requested_at=None,
        priority=P.OUT_OF_HOURS,
        emergency_reason="",
        out_of_hours_reason=REASON,
        notification_disabled=False,
    )
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert broadcast.approved_by is None
    assert broadcast.approval_second_factor_at is None
    assert (
        services.broadcasts_dispatch_due(now=SATURDAY_NIGHT + dt.timedelta(minutes=1)).claimed == []
    )


def test_content_changed_behind_the_services_back_is_held_to_the_window(drafter, supervisor):
    """An insider rewrites the approved row directly (no service, no reopen): the approval
    is bound to the content hash, so the send falls back inside the window."""
    broadcast = approve(out_of_hours_draft(drafter), supervisor, verified_at=fresh())
    Broadcast.objects.filter(pk=broadcast.pk).update(messages=[text_message("書き換えられた文面")])
    effective = schedule_for(Broadcast.objects.get(pk=broadcast.pk), now=SATURDAY_NIGHT)
    assert effective.at == MONDAY_OPEN
    assert effective.held


def test_an_approval_by_a_reviewer_written_into_the_row_is_held_to_the_window(drafter, reviewer):
    """An insider writes an 'approval' straight into the database by a reviewer who is not a
    承認者, with a second factor time: the window still holds the send (the sender asks
    schedule.py, which asks who approved)."""
    broadcast = out_of_hours_draft(drafter)
    Broadcast.objects.filter(pk=broadcast.pk).update(
        status=S.SCHEDULED,
        approved_by=reviewer,
        approved_at=SATURDAY_NIGHT,
        approved_hash=services.compute_hash(broadcast),
        approval_second_factor_at=fresh(),
        scheduled_for=SATURDAY_NIGHT,
    )
    tampered = Broadcast.objects.get(pk=broadcast.pk)
    assert schedule_for(tampered, now=SATURDAY_NIGHT).at == MONDAY_OPEN
    result = services.broadcasts_dispatch_due(now=SATURDAY_NIGHT + dt.timedelta(seconds=5))
    assert result.claimed == []
    tampered.refresh_from_db()
    assert tampered.status == S.SCHEDULED
    assert tampered.scheduled_for == MONDAY_OPEN


def test_without_a_second_factor_in_the_row_it_never_leaves_the_window(drafter, supervisor):
    broadcast = approve(out_of_hours_draft(drafter), supervisor, verified_at=fresh())
    Broadcast.objects.filter(pk=broadcast.pk).update(approval_second_factor_at=None)
    result = services.broadcasts_dispatch_due(now=SATURDAY_NIGHT + dt.timedelta(seconds=5))
    assert result.claimed == []


def test_a_supervisor_who_lost_the_role_before_sending_no_longer_grants_it(drafter, db):
    former = make_user("former_supervisor", roles.SUPERVISOR)
    broadcast = approve(out_of_hours_draft(drafter), former, verified_at=fresh())
    from django.contrib.auth.models import Group

    former.groups.set([Group.objects.get(name=roles.REVIEWER)])
    result = services.broadcasts_dispatch_due(now=SATURDAY_NIGHT + dt.timedelta(seconds=5))
    assert result.claimed == []
    broadcast.refresh_from_db()
    assert broadcast.scheduled_for == MONDAY_OPEN


# --- where it shows ---------------------------------------------------------------------------


def test_it_is_not_on_the_emergency_queue_but_on_the_supervisors_review_queue(
    drafter, supervisor, reviewer
):
    from broadcasts.selectors import dashboard as dash

    broadcast = out_of_hours_draft(drafter)
    assert broadcast not in dash.emergency_approvals(supervisor).items
    assert broadcast in dash.review_queue(supervisor).items
    # A 広報担当 cannot approve it: it is the supervisors' (「承認者が対応します」).
    assert broadcast not in dash.review_queue(reviewer).items
    assert broadcast in dash.supervisor_handles(reviewer).items


# --- the screens ------------------------------------------------------------------------------


def _verified(client, at: dt.datetime) -> None:
    from broadcasts.views.otp import SESSION_KEY

    session = client.session
    session[SESSION_KEY] = at.isoformat()
    session.save()


def _compose(**overrides):
    from .test_views_compose import compose_data

    return compose_data(
        [{"kind": "text", "text": "台風接近のため、11/29(日)のごみ収集は中止します。"}],
        categories=[Category.objects.get(code="municipal").pk],
        priority="out_of_hours",
        **overrides,
    )


def test_the_compose_form_offers_it_and_requires_the_reason(client, drafter, time_machine):
    from django.urls import reverse

    time_machine.move_to(SATURDAY_NIGHT, tick=False)
    client.force_login(drafter)
    page = client.get(reverse("broadcasts:create")).content.decode()
    assert 'value="out_of_hours"' in page
    assert "時間外配信の理由" in page
    refused = client.post(reverse("broadcasts:create"), _compose(out_of_hours_reason=""))
    assert refused.status_code == 400
    assert "時間外配信の理由を入力してください" in refused.content.decode()
    assert not Broadcast.objects.exists()
    saved = client.post(reverse("broadcasts:create"), _compose(out_of_hours_reason=REASON))
    assert saved.status_code == 302
    broadcast = Broadcast.objects.get()
    assert broadcast.priority == P.OUT_OF_HOURS
    assert broadcast.out_of_hours_reason == REASON


def test_the_preview_says_a_supervisor_can_send_it_now(client, drafter, time_machine):
    from django.urls import reverse

    time_machine.move_to(SATURDAY_NIGHT, tick=False)
    client.force_login(drafter)
    data = client.get(
        reverse("broadcasts:preview_time"),
        {"timing": "asap", "priority": "out_of_hours", "audience": "all"},
    ).json()
    assert "承認者が二要素認証のうえ承認すると" in data["text"]
    assert not data["held"]


def test_a_supervisor_approves_it_on_the_broadcast_page_after_the_second_factor(
    client, drafter, supervisor, time_machine
):
    from django.urls import reverse

    time_machine.move_to(SATURDAY_NIGHT, tick=False)
    broadcast = out_of_hours_draft(drafter)
    client.force_login(supervisor)
    _verified(client, SATURDAY_NIGHT - dt.timedelta(minutes=30))  # the login's, long ago
    page = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert 'data-testid="second-factor-needed"' in page
    assert "時間外配信を承認する" in page
    assert "kw-ea-live" not in page and "btn-kw-emergency" not in page  # not red
    form = {"seen_hash": services.compute_hash(broadcast), "comment": ""}
    response = client.post(reverse("broadcasts:approve", args=[broadcast.pk]), form)
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    _verified(client, SATURDAY_NIGHT - dt.timedelta(seconds=30))
    page = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert 'data-testid="second-factor-ok"' in page
    client.post(reverse("broadcasts:approve", args=[broadcast.pk]), form)
    broadcast.refresh_from_db()
    assert broadcast.status == S.SCHEDULED
    assert broadcast.scheduled_for == SATURDAY_NIGHT


def test_a_reviewer_gets_no_approve_button_and_a_crafted_post_is_refused(client, drafter, reviewer):
    from django.urls import reverse

    broadcast = out_of_hours_draft(drafter)
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert 'data-testid="approve-form"' not in page
    assert "承認者が対応します" in page
    form = {"seen_hash": services.compute_hash(broadcast), "comment": ""}
    response = client.post(reverse("broadcasts:approve", args=[broadcast.pk]), form)
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW


def test_it_is_labelled_in_lists_calendars_and_history_and_not_red(
    client, drafter, supervisor, time_machine
):
    from django.urls import reverse

    time_machine.move_to(SATURDAY_NIGHT - dt.timedelta(minutes=1), tick=False)
    broadcast = approve(out_of_hours_draft(drafter), supervisor, verified_at=fresh())
    client.force_login(supervisor)
    _verified(client, SATURDAY_NIGHT)
    week = f"?week={SATURDAY_NIGHT.date().isoformat()}"
    month = f"?month={SATURDAY_NIGHT.strftime('%Y-%m')}"
    screens = {
        "list": reverse("broadcasts:list"),
        "calendar": reverse("broadcasts:calendar"),
        "week": reverse("broadcasts:calendar_week") + week,
        "month": reverse("broadcasts:calendar_month") + month,
        "history": reverse("broadcasts:history"),
    }
    for name, url in screens.items():
        html = client.get(url).content.decode()
        assert 'data-testid="out-of-hours-badge"' in html, name
        if name in ("week", "calendar", "month"):
            entry = html.split(f'data-broadcast="{broadcast.pk}"', 1)[1].split("</li>", 1)[0]
            assert "時間外配信" in entry, name
            assert "kw-emergency" not in entry, name
