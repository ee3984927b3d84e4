"""The sender against the LINE sandbox through the real line-bot-sdk client.

Every assertion about who received what is checked in the sandbox's own delivery log."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastEvent, Delivery
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers

S = Broadcast.Status
MULTICAST = "/v2/bot/message/multicast"
BROADCAST = "/v2/bot/message/broadcast"


def no_sleep(_seconds: float) -> None:
    return None


def received_counts(sandbox, user_ids):
    counts = Counter()
    for delivery in sandbox.state.deliveries():
        for uid in delivery.recipients:
            counts[uid] += 1
    return {uid: counts[uid] for uid in user_ids}


@pytest.fixture
def citizens(db, line_sandbox):
    """1,200 followers subscribed to 子育て・教育, known to the sandbox and to the app."""
    ids = [synthetic_user_id(10_000 + i) for i in range(1200)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["childcare_education"])
    return ids


def claim(broadcast: Broadcast, now: dt.datetime | None = None) -> None:
    result = services.broadcasts_dispatch_due(now=now or broadcast.scheduled_for)
    assert broadcast.pk in result.claimed


def send(broadcast: Broadcast, **kwargs):
    return services.broadcast_send(broadcast_id=broadcast.pk, sleep=no_sleep, **kwargs)


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)
    return jst(2026, 12, 1, 10, 0)


def test_multicast_reaches_each_subscriber_exactly_once(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    outcome = send(b)
    assert outcome.status == "sent"
    b.refresh_from_db()
    assert b.status == S.SENT
    assert (b.recipient_count, b.deliveries_total, b.deliveries_accepted) == (1200, 3, 3)
    assert set(received_counts(line_sandbox, citizens).values()) == {1}
    # What was approved is exactly what LINE received, and each request id is stored.
    logged = line_sandbox.state.deliveries(endpoint=MULTICAST)
    assert [list(d.messages) for d in logged] == [b.messages] * 3
    stored = set(b.deliveries.values_list("request_id", flat=True))
    assert stored == {d.request_id for d in logged}
    verbs = list(b.events.order_by("created_at", "id").values_list("verb", flat=True))
    assert verbs == ["create", "submit", "approve", "claim", "send_started", "complete"]


def test_chunk_accepted_then_500_is_not_sent_twice(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    # LINE accepts the first chunk but the answer is lost (500): the retry with the same
    # key gets 409 + x-line-accepted-request-id, which counts as accepted.
    line_sandbox.state.set_fault(MULTICAST, 500, mode="accept_then_fail", count=1)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    assert send(b).status == "sent"
    assert set(received_counts(line_sandbox, citizens).values()) == {1}
    # Chunks go out in parallel: whichever reached LINE first was the one whose answer was
    # lost. It was sent twice with the same key and the second answer was 409.
    retried = b.deliveries.get(http_status=409)
    assert retried.attempts == 2
    assert line_sandbox.state.delivery(retried.request_id) is not None
    assert list(b.deliveries.exclude(pk=retried.pk).values_list("attempts", flat=True)) == [1, 1]


def test_temporary_errors_are_retried_with_the_same_key(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    line_sandbox.state.set_fault(MULTICAST, 503, count=2)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    assert send(b).status == "sent"
    assert set(received_counts(line_sandbox, citizens).values()) == {1}
    keys = {str(k) for k in b.deliveries.values_list("retry_key", flat=True)}
    assert {d.retry_key for d in line_sandbox.state.deliveries()} == keys


def test_persistent_5xx_leaves_it_sending_with_a_visible_reason(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    line_sandbox.state.set_fault(MULTICAST, 500, count=None)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    assert send(b).status == "retry_later"
    b.refresh_from_db()
    assert b.status == S.SENDING
    assert "一時的なエラー" in b.last_error
    assert b.lease_expires_at > timezone.now()  # the dispatcher retries after a pause
    line_sandbox.state.clear_faults()
    services.broadcasts_dispatch_due(now=b.lease_expires_at + dt.timedelta(seconds=1))
    assert send(b).status == "sent"
    assert set(received_counts(line_sandbox, citizens).values()) == {1}


def test_monthly_limit_needs_attention(line_sandbox, citizens, drafter, reviewer, in_window):
    line_sandbox.state.set_fault(MULTICAST, kind="monthly_limit", count=None)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    assert send(b).status == "needs_attention"
    b.refresh_from_db()
    assert b.status == S.NEEDS_ATTENTION
    assert "今月の配信上限" in b.last_error
    assert "You have reached your monthly limit." in b.last_error


def test_quota_too_small_stops_before_any_request(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    line_sandbox.state.set_quota("limited", 1000, 0)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    assert send(b).status == "needs_attention"
    b.refresh_from_db()
    assert "配信可能数が足りません" in b.last_error
    assert line_sandbox.state.deliveries() == []


def test_line_400_fails_with_lines_message_for_staff(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    body = {
        "message": "The request body has 1 error(s)",
        "details": [{"message": "May not be empty", "property": "messages[0].text"}],
    }
    line_sandbox.state.set_fault(MULTICAST, 400, body=body, count=None)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    assert send(b).status == "fail"
    b.refresh_from_db()
    assert b.status == S.FAILED
    assert "messages[0].text: May not be empty" in b.last_error


def test_retry_key_older_than_23_hours_is_not_retried(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    line_sandbox.state.set_fault(MULTICAST, 500, count=None)
    assert send(b).status == "retry_later"
    line_sandbox.state.clear_faults()
    Delivery.objects.filter(broadcast=b).update(
        key_created_at=timezone.now() - dt.timedelta(hours=23, minutes=1)
    )
    services.broadcasts_dispatch_due(now=timezone.now() + dt.timedelta(minutes=5))
    assert send(b).status == "needs_attention"
    b.refresh_from_db()
    assert b.status == S.NEEDS_ATTENTION
    assert line_sandbox.state.deliveries() == []


def test_the_sender_takes_its_time_from_the_caller(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    """``now_fn`` is the sender's only clock: retry keys, attempts, acceptance and completion
    are stamped with it, so a key's age (the 23-hour stop) is measured on the clock that made
    the key, not on the wall clock."""
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    at = in_window + dt.timedelta(minutes=3)  # the wall clock (travelling) says 10:00
    assert send(b, now_fn=lambda: at).status == "sent"
    b.refresh_from_db()
    assert b.sent_at == at
    assert set(b.deliveries.values_list("key_created_at", flat=True)) == {at}
    assert set(b.deliveries.values_list("accepted_at", flat=True)) == {at}


def test_crash_after_line_accepted_but_before_recording(
    line_sandbox, citizens, drafter, reviewer, in_window, settings
):
    """The worker dies between LINE's 200 and our commit: the next worker gets 409."""
    from broadcasts.line.gateway import get_gateway
    from broadcasts.services.sending import send as sender

    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    real = sender._record_accepted
    calls = {"n": 0}

    def crash_on_second(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")
        return real(*args)

    settings.MULTICAST_CONCURRENCY = 1
    sender._record_accepted = crash_on_second
    try:
        with pytest.raises(SystemExit):
            send(b, gateway=get_gateway())
    finally:
        sender._record_accepted = real
    b.refresh_from_db()
    assert b.deliveries_accepted == 1
    # The lease expires; the dispatcher hands it to another worker.
    later = timezone.now() + dt.timedelta(seconds=settings.SEND_LEASE_SECONDS + 1)
    assert b.pk in services.broadcasts_dispatch_due(now=later).resumed
    assert send(b).status == "sent"
    assert set(received_counts(line_sandbox, citizens).values()) == {1}
    assert b.deliveries.get(seq=2).http_status == 409


def test_all_friends_uses_one_broadcast_call(line_sandbox, drafter, reviewer, in_window):
    b = approved_broadcast(
        author=drafter, approver=reviewer, now=in_window, audience=Broadcast.Audience.ALL
    )
    claim(b)
    assert send(b).status == "sent"
    logged = line_sandbox.state.deliveries()
    assert [d.endpoint for d in logged] == [BROADCAST]
    assert set(logged[0].recipients) == set(line_sandbox.state.active_follower_ids())


def test_ordinary_broadcasts_leave_hourly_slots_for_emergencies(
    line_sandbox, drafter, reviewer, supervisor, in_window, settings
):
    settings.EMERGENCY_BROADCAST_RESERVE = 5
    now = timezone.now()
    used = approved_broadcast(author=drafter, approver=reviewer, now=in_window, title="used")
    Delivery.objects.bulk_create(
        [
            Delivery(
                broadcast=used,
                seq=i + 1,
                kind="broadcast",
                status="accepted",
                accepted_at=now - dt.timedelta(minutes=30),
            )
            for i in range(55)
        ]
    )
    ordinary = approved_broadcast(
        author=drafter, approver=reviewer, now=in_window, audience=Broadcast.Audience.ALL
    )
    result = services.broadcasts_dispatch_due(now=now)
    assert ordinary.pk in result.held
    ordinary.refresh_from_db()
    assert "緊急用の枠" in ordinary.hold_reason
    emergency = approved_broadcast(
        author=drafter,
        approver=supervisor,
        now=in_window,
        audience=Broadcast.Audience.ALL,
        priority=Broadcast.Priority.EMERGENCY,
        categories=["disaster_crime"],
    )
    assert services.broadcast_claim_now(broadcast_id=emergency.pk)
    assert send(emergency).status == "sent"


def test_content_changed_behind_the_services_back_is_not_sent(
    line_sandbox, citizens, drafter, reviewer, in_window
):
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    claim(b)
    Broadcast.objects.filter(pk=b.pk).update(messages=[{"type": "text", "text": "改ざん"}])
    assert send(b).status == "needs_attention"
    assert line_sandbox.state.deliveries() == []


def test_emergency_without_supervisor_approval_in_audit_is_not_sent(
    line_sandbox, citizens, drafter, reviewer, supervisor, in_window
):
    b = approved_broadcast(
        author=drafter,
        approver=supervisor,
        now=in_window,
        priority=Broadcast.Priority.EMERGENCY,
        categories=["childcare_education"],
    )
    # Somebody rewrites the approver in the database to a reviewer (no emergency right).
    Broadcast.objects.filter(pk=b.pk).update(approved_by=reviewer)
    BroadcastEvent.objects.create(
        broadcast=b, actor=reviewer, verb="approve", data={"approved_hash": b.approved_hash}
    )
    assert services.broadcast_claim_now(broadcast_id=b.pk)
    assert send(b).status == "needs_attention"
    assert line_sandbox.state.deliveries() == []
