"""The emergency path: never without a supervisor (not the author), the typed count and a
fresh second factor; drills reach only staff; corrections are one click away."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from broadcasts import roles, services, tasks
from broadcasts.models import Broadcast, Category, Follower
from broadcasts.services import (
    BroadcastInvalid,
    BroadcastPermissionDenied,
    EmergencyConfirmation,
    SecondFactorRequired,
)
from kashiwa.celery import app
from tests.fixtures.users import make_user

from .sending.helpers import approve, jst, make_followers

S = Broadcast.Status


def emergency_draft(
    author, *, audience=Broadcast.Audience.ALL, kind=Broadcast.Kind.LIVE, text=None
):
    broadcast = services.broadcast_create(
        author=author,
        title="避難指示",
        categories=[Category.objects.get(code="disaster_crime")],
        messages=[
            {
                "type": "text",
                "text": text or "【柏市】利根川の水位上昇により避難指示を発令しました。",
            }
        ],
        audience=audience,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="河川の氾濫危険水位超過",
        kind=kind,
    )
    services.broadcast_submit(broadcast=broadcast, actor=author)
    return broadcast


def confirmation(count: int | str, verified: dt.datetime | None = None) -> EmergencyConfirmation:
    return EmergencyConfirmation(
        typed_count=str(count), second_factor_verified_at=verified or timezone.now()
    )


@pytest.fixture
def followers(db):
    return make_followers([f"U{i:032x}" for i in range(12)], ["disaster_crime"], staff=2)


def test_emergency_category_makes_a_broadcast_an_emergency(drafter):
    broadcast = services.broadcast_create(
        author=drafter,
        title="緊急",
        categories=[Category.objects.get(code="emergency")],
        messages=[{"type": "text", "text": "断水のお知らせ"}],
        emergency_reason="断水",
    )
    assert broadcast.is_emergency


def test_supervisor_needs_a_fresh_second_factor(drafter, supervisor, followers):
    broadcast = emergency_draft(drafter)
    with pytest.raises(SecondFactorRequired):
        services.broadcast_approve(broadcast=broadcast, actor=supervisor)
    stale = timezone.now() - dt.timedelta(minutes=5, seconds=1)
    with pytest.raises(SecondFactorRequired):
        services.broadcast_approve(
            broadcast=broadcast, actor=supervisor, emergency=confirmation(12, stale)
        )
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert not broadcast.events.filter(verb="approve").exists()


def test_supervisor_must_type_the_recipient_count(drafter, supervisor, followers):
    broadcast = emergency_draft(drafter)
    with pytest.raises(BroadcastInvalid) as excinfo:
        services.broadcast_approve(
            broadcast=broadcast, actor=supervisor, emergency=confirmation(11)
        )
    assert excinfo.value.problems[0].field == "typed_count"
    assert "12" in excinfo.value.problems[0].message
    # Full-width digits and separators, as typed on a Japanese keyboard, are fine.
    approved = services.broadcast_approve(
        broadcast=broadcast, actor=supervisor, emergency=confirmation("１２")
    )
    assert approved.status == S.SCHEDULED
    event = approved.events.get(verb="approve")
    assert event.actor == supervisor
    assert event.data["recipient_count"] == 12
    assert event.data["emergency"] is True


def test_nobody_approves_their_own_emergency_not_even_a_supervisor(supervisor, followers):
    other = make_user("supervisor2", roles.SUPERVISOR)
    broadcast = emergency_draft(supervisor)
    with pytest.raises(BroadcastPermissionDenied, match="自分が起案"):
        services.broadcast_approve(
            broadcast=broadcast, actor=supervisor, emergency=confirmation(12)
        )
    assert (
        services.broadcast_approve(
            broadcast=broadcast, actor=other, emergency=confirmation(12)
        ).status
        == S.SCHEDULED
    )


def test_a_reviewer_cannot_approve_an_emergency(drafter, reviewer, followers):
    broadcast = emergency_draft(drafter)
    with pytest.raises(BroadcastPermissionDenied, match="承認者だけ"):
        services.broadcast_approve(broadcast=broadcast, actor=reviewer, emergency=confirmation(12))


def test_approval_enqueues_on_the_emergency_queue(
    drafter, supervisor, followers, django_capture_on_commit_callbacks
):
    broadcast = emergency_draft(drafter)
    with django_capture_on_commit_callbacks() as callbacks:
        services.broadcast_approve(
            broadcast=broadcast, actor=supervisor, emergency=confirmation(12)
        )
    assert len(callbacks) == 1
    route = app.amqp.router.route({}, tasks.send_emergency_broadcast.name, (broadcast.pk,), {})
    assert route["queue"].name == "emergency"
    route = app.amqp.router.route({}, tasks.send_broadcast.name, (broadcast.pk,), {})
    assert route["queue"].name == "default"


def test_emergency_at_night_reaches_the_sandbox_at_once(
    line_sandbox, drafter, supervisor, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(jst(2026, 11, 29, 23, 0), tick=True)  # Sunday 23:00
    make_followers(line_sandbox.follower_ids(), ["disaster_crime"])
    broadcast = emergency_draft(drafter)
    with django_capture_on_commit_callbacks() as callbacks:
        approve(broadcast, supervisor)
    assert len(callbacks) == 1
    # What the emergency worker runs for that task (the task body, synchronously).
    assert tasks.send_emergency_broadcast(broadcast.pk) == "sent"
    broadcast.refresh_from_db()
    assert broadcast.status == S.SENT
    logged = line_sandbox.deliveries(endpoint="/v2/bot/message/broadcast")
    assert len(logged) == 1
    assert set(logged[0].recipients) == set(line_sandbox.state.active_follower_ids())


def test_task_refuses_an_emergency_without_recorded_supervisor_approval(
    line_sandbox, drafter, reviewer, followers
):
    broadcast = emergency_draft(drafter)
    # Forced into SCHEDULED behind the services' back (e.g. a database edit).
    Broadcast.objects.filter(pk=broadcast.pk).update(
        status=S.SCHEDULED,
        scheduled_for=timezone.now(),
        approved_by=reviewer,
        approved_hash=broadcast.content_hash,
    )
    assert tasks.send_emergency_broadcast(broadcast.pk) == "needs_attention"
    assert line_sandbox.deliveries() == []
    broadcast.refresh_from_db()
    assert broadcast.status == S.NEEDS_ATTENTION


def test_admin_cannot_change_or_approve_broadcasts(client, admin_user, drafter):
    broadcast = emergency_draft(drafter)
    client.force_login(admin_user)
    url = reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk])
    response = client.post(url, {"status": "scheduled", "approved_by": admin_user.pk})
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW


def test_drill_reaches_only_staff_and_is_marked(line_sandbox, drafter, supervisor, time_machine):
    time_machine.move_to(jst(2026, 11, 29, 23, 0), tick=True)
    make_followers(line_sandbox.follower_ids(), ["disaster_crime"], staff=0)
    Follower.objects.filter(line_user_id__in=line_sandbox.staff_ids()).update(
        is_staff_test_recipient=True
    )
    drill = emergency_draft(drafter, kind=Broadcast.Kind.DRILL)  # asked for ALL ...
    assert drill.audience == Broadcast.Audience.STAFF_TEST  # ... forced to staff
    assert drill.messages[0]["text"].startswith("【訓練】")
    approve(drill, supervisor)
    assert services.broadcast_claim_now(broadcast_id=drill.pk)
    assert services.broadcast_send(broadcast_id=drill.pk).status == "sent"
    received = {uid for d in line_sandbox.deliveries() for uid in d.recipients}
    assert received == set(line_sandbox.staff_ids())
    assert drill.events.get(verb="approve").data["drill"] is True


def test_a_live_emergency_can_never_carry_the_drill_marker(drafter):
    with pytest.raises(BroadcastInvalid, match="訓練"):
        emergency_draft(drafter, text="【訓練】これは訓練です")


def test_correction_is_prefilled_linked_and_needs_emergency_approval(
    line_sandbox, drafter, supervisor, reviewer, time_machine
):
    time_machine.move_to(jst(2026, 11, 29, 23, 0), tick=True)
    make_followers(line_sandbox.follower_ids(), ["disaster_crime"])
    original = emergency_draft(drafter)
    approve(original, supervisor)
    services.broadcast_claim_now(broadcast_id=original.pk)
    services.broadcast_send(broadcast_id=original.pk)
    original.refresh_from_db()
    assert original.status == S.SENT

    correction = services.broadcast_create_follow_up(
        original=original, actor=drafter, kind=Broadcast.Kind.CORRECTION
    )
    assert correction.parent == original
    assert correction.kind == Broadcast.Kind.CORRECTION
    assert correction.is_emergency
    assert correction.audience == original.audience
    assert correction.messages[0]["text"].startswith(
        "【訂正】11/29(日) 23:00にお送りした「【柏市】利根川"
    )
    assert original.events.filter(verb="follow_up_created").exists()
    # The pre-filled placeholder must be replaced before it can go for approval.
    with pytest.raises(BroadcastInvalid, match="正しい内容を入力してください"):
        services.broadcast_submit(broadcast=correction, actor=drafter)
    text = correction.messages[0]["text"].replace(
        "（正しい内容を入力してください）", "避難所は柏市役所本庁舎です。"
    )
    correction = services.broadcast_update(
        broadcast=correction,
        actor=drafter,
        title=correction.title,
        categories=list(correction.categories.all()),
        messages=[{"type": "text", "text": text}],
        audience=correction.audience,
        requested_at=None,
        priority=correction.priority,
        emergency_reason=correction.emergency_reason,
        notification_disabled=False,
    )
    services.broadcast_submit(broadcast=correction, actor=drafter)
    with pytest.raises(SecondFactorRequired):
        services.broadcast_approve(broadcast=correction, actor=supervisor)
    with pytest.raises(BroadcastPermissionDenied):
        services.broadcast_approve(broadcast=correction, actor=reviewer)
    approve(correction, supervisor)
    cancellation = services.broadcast_create_follow_up(
        original=original, actor=drafter, kind=Broadcast.Kind.CANCELLATION
    )
    assert cancellation.messages[0]["text"].startswith("【取消】")


def test_follow_up_only_from_a_sent_broadcast(drafter):
    draft = emergency_draft(drafter)
    with pytest.raises(services.InvalidTransition):
        services.broadcast_create_follow_up(
            original=draft, actor=drafter, kind=Broadcast.Kind.CORRECTION
        )
