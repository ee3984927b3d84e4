"""The emergency task's path to LINE (issue 18 part 4): the claim and the send's preparation
are one transaction; an emergency reads no opening-day calendar, does not count 100,000
followers again (the supervisor's typed count, checked at approval, is on the audit row) and
asks LINE nothing before its request on a plan without a monthly limit. Effectively once
still holds when the dispatcher and two emergency tasks race for it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broadcasts import services, tasks
from broadcasts.models import Broadcast, Delivery
from broadcasts.services.sending import lease, quota
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers

S = Broadcast.Status
BROADCAST = "/v2/bot/message/broadcast"
QUOTA_PATHS = ("/v2/bot/message/quota", "/v2/bot/message/quota/consumption")


@pytest.fixture
def friends(db, line_sandbox):
    ids = [synthetic_user_id(70_000 + i) for i in range(40)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    return ids


def all_friends_emergency(drafter, supervisor, now=None) -> Broadcast:
    return approved_broadcast(
        author=drafter,
        approver=supervisor,
        audience=Broadcast.Audience.ALL,
        priority=Broadcast.Priority.EMERGENCY,
        categories=["disaster_crime"],
        text="【柏市】避難指示を発令しました。",
        now=now,
    )


def quota_requests(sandbox) -> int:
    return len([r for r in sandbox.state.requests() if r.path in QUOTA_PATHS])


def test_the_task_claims_prepares_and_sends_with_the_typed_count_and_no_calendar(
    line_sandbox, friends, drafter, supervisor, time_machine
):
    time_machine.move_to(jst(2026, 11, 29, 3, 0), tick=True)  # Sunday 3 a.m.: no window
    b = all_friends_emergency(drafter, supervisor)
    approval = b.events.get(verb="approve")
    assert approval.data["recipient_count"] == 40
    quota.quota_plan_remember("none")  # as a pool process learns at its start
    with CaptureQueriesContext(connection) as queries:
        assert tasks.send_emergency_broadcast(b.pk) == "sent"
    sql = "\n".join(q["sql"] for q in queries.captured_queries)
    assert "broadcasts_follower" not in sql  # the typed count, not a count of followers
    assert "broadcasts_calendaroverride" not in sql  # emergencies go at any hour
    b.refresh_from_db()
    assert (b.status, b.recipient_count, b.deliveries_total) == (S.SENT, 40, 1)
    verbs = list(b.events.order_by("created_at", "id").values_list("verb", flat=True))
    assert verbs[-4:] == ["approve", "claim", "send_started", "complete"]
    started = b.events.get(verb="send_started")
    assert started.data["recipients"] == 40
    assert quota_requests(line_sandbox) == 0
    assert len(line_sandbox.state.deliveries(endpoint=BROADCAST)) == 1


def test_a_typed_count_from_an_older_approval_is_not_used(
    line_sandbox, friends, drafter, supervisor
):
    """The count is taken from the approval that approved exactly this content: a forged
    approval row for other content stops the emergency instead."""
    b = all_friends_emergency(drafter, supervisor)
    Broadcast.objects.filter(pk=b.pk).update(approved_hash="0" * 64)
    assert tasks.send_emergency_broadcast(b.pk) == "needs_attention"
    assert line_sandbox.state.deliveries() == []
    assert not Delivery.objects.filter(broadcast=b).exists()


def test_the_task_after_the_dispatcher_sends_once(line_sandbox, friends, drafter, supervisor):
    b = all_friends_emergency(drafter, supervisor)
    assert b.pk in services.broadcasts_dispatch_due(now=b.scheduled_for).claimed
    assert tasks.send_emergency_broadcast(b.pk) == "sent"
    assert tasks.send_emergency_broadcast(b.pk) != "sent"  # the dispatcher's own task
    assert services.broadcast_send(broadcast_id=b.pk).status != "sent"
    assert b.events.filter(verb="claim").count() == 1
    assert b.events.filter(verb="send_started").count() == 1
    assert len(line_sandbox.state.deliveries(endpoint=BROADCAST)) == 1


def test_a_not_yet_due_emergency_is_not_claimed_by_the_task(
    line_sandbox, friends, drafter, supervisor
):
    b = all_friends_emergency(drafter, supervisor)
    later = b.scheduled_for.replace(year=b.scheduled_for.year + 1)
    Broadcast.objects.filter(pk=b.pk).update(scheduled_for=later)
    outcome = services.broadcast_send(broadcast_id=b.pk, claim=True)
    assert outcome.status == "skipped"
    b.refresh_from_db()
    assert b.status == S.SCHEDULED and line_sandbox.state.deliveries() == []


@pytest.mark.django_db(transaction=True)
def test_two_emergency_tasks_and_the_dispatcher_at_once_send_once(
    line_sandbox, friends, drafter, supervisor
):
    """The approval's task, a redelivered copy of it (acks_late) and the dispatcher's claim
    all start together: one request reaches LINE, one send_started is recorded."""
    b = all_friends_emergency(drafter, supervisor)
    barrier = threading.Barrier(3)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def task() -> None:
        try:
            barrier.wait()
            outcomes.append(
                services.broadcast_send(
                    broadcast_id=b.pk, owner=lease.lease_owner_new(), claim=True
                ).status
            )
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    def dispatcher() -> None:
        try:
            barrier.wait()
            services.broadcasts_dispatch_due(now=b.scheduled_for)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=f) for f in (task, task, dispatcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    # The dispatcher's claim enqueued a copy too (eager in tests, or the run it started).
    assert outcomes.count("sent") <= 1
    b.refresh_from_db()
    if b.status != S.SENT:  # the dispatcher claimed last: its task (or the next run) sends
        assert services.broadcast_send(broadcast_id=b.pk, claim=True).status == "sent"
        b.refresh_from_db()
    assert b.status == S.SENT
    assert b.events.filter(verb="claim").count() == 1
    assert b.events.filter(verb="send_started").count() == 1
    assert len(line_sandbox.state.deliveries(endpoint=BROADCAST)) == 1


def test_an_approver_who_lost_the_permission_since_stops_the_emergency(
    line_sandbox, friends, drafter, supervisor
):
    """The locked read's shortcut only ever says yes; the 承認者 removed from their group
    after approving (the insider's account revoked) is caught as before."""
    b = all_friends_emergency(drafter, supervisor)
    supervisor.groups.clear()
    supervisor.user_permissions.clear()
    assert tasks.send_emergency_broadcast(b.pk) == "needs_attention"
    assert line_sandbox.state.deliveries() == []


def test_the_approvers_permission_is_read_with_the_lock(line_sandbox, friends, drafter, supervisor):
    b = all_friends_emergency(drafter, supervisor)
    quota.quota_plan_remember("none")
    with CaptureQueriesContext(connection) as queries:
        assert tasks.send_emergency_broadcast(b.pk) == "sent"
    reading = [q["sql"] for q in queries.captured_queries if "auth_permission" in q["sql"]]
    assert len(reading) == 1 and "broadcasts_broadcastevent" in reading[0]  # the locked read
