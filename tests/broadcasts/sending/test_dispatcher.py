"""The dispatcher: the database is the schedule; due rows are claimed once, held rows wait."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from django.db import connection

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastEvent, CalendarOverride

from .helpers import approved_broadcast, jst, make_followers

S = Broadcast.Status


def test_approval_outside_window_is_held_to_next_opening(
    drafter, reviewer, django_capture_on_commit_callbacks
):
    # Friday 2026-11-27 22:00 JST; Monday 11/30 is an opening day.
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 11, 27, 22, 0))
    assert b.status == S.SCHEDULED
    assert b.scheduled_for == jst(2026, 11, 30, 8, 30)
    assert "8:30" in b.hold_reason

    # Saturday: nothing is claimed.
    result = services.broadcasts_dispatch_due(now=jst(2026, 11, 28, 10, 0))
    assert result.claimed == []
    # Monday 08:29:59: still not.
    assert services.broadcasts_dispatch_due(now=jst(2026, 11, 30, 8, 29, 59)).claimed == []
    # Monday 08:30:00: claimed, and the send is enqueued only on commit.
    with django_capture_on_commit_callbacks() as callbacks:
        result = services.broadcasts_dispatch_due(now=jst(2026, 11, 30, 8, 30))
    assert result.claimed == [b.pk]
    assert len(callbacks) == 1
    b.refresh_from_db()
    assert b.status == S.SENDING


def test_holiday_approval_waits_for_next_opening_day(drafter, reviewer):
    # 2026-11-23 is 勤労感謝の日 (Monday).
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 11, 23, 10, 0))
    assert b.scheduled_for == jst(2026, 11, 24, 8, 30)
    assert "11/23(月)は閉庁日" in b.hold_reason


def test_calendar_change_after_approval_rehold(drafter, reviewer, admin_user):
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 9, 0))
    assert b.scheduled_for == jst(2026, 12, 1, 9, 0)
    # An admin closes the day (e.g. a system outage) after approval.
    services.calendar_override_save(
        actor=admin_user, date=jst(2026, 12, 1, 0, 0).date(), is_open=False, reason="臨時閉庁"
    )
    result = services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 9, 0, 5))
    assert result.claimed == []
    assert result.held == [b.pk]
    b.refresh_from_db()
    assert b.status == S.SCHEDULED
    assert b.scheduled_for == jst(2026, 12, 2, 8, 30)
    assert "臨時閉庁" in b.hold_reason
    assert BroadcastEvent.objects.filter(broadcast=b, verb="held").count() == 1
    # Dispatching again does not add audit noise.
    services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 9, 0, 10))
    assert BroadcastEvent.objects.filter(broadcast=b, verb="held").count() == 1


def test_saturday_opened_by_override_sends(drafter, reviewer, admin_user):
    CalendarOverride.objects.create(
        date=jst(2026, 11, 28, 0).date(), is_open=True, reason="選挙事務"
    )
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 11, 28, 9, 0))
    assert b.scheduled_for == jst(2026, 11, 28, 9, 0)
    assert services.broadcasts_dispatch_due(now=jst(2026, 11, 28, 9, 0, 1)).claimed == [b.pk]


def test_emergency_goes_at_any_hour(drafter, supervisor, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        b = approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            now=jst(2026, 11, 29, 23, 0),  # Sunday night
        )
    assert b.scheduled_for == jst(2026, 11, 29, 23, 0)
    assert b.hold_reason == ""
    # Enqueued at once on approval, on the emergency queue.
    assert len(callbacks) == 1
    assert services.broadcast_claim_now(broadcast_id=b.pk, now=jst(2026, 11, 29, 23, 0, 1))
    b.refresh_from_db()
    assert b.status == S.SENDING
    # The dispatcher (backstop) does not claim it a second time.
    assert services.broadcasts_dispatch_due(now=jst(2026, 11, 29, 23, 0, 2)).claimed == []


def test_stalled_send_is_handed_to_another_worker(drafter, reviewer, settings):
    settings.SEND_LEASE_SECONDS = 60
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 9, 0))
    services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 9, 0))
    # Lease still valid: nothing to resume.
    assert services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 9, 0, 30)).resumed == []
    # Lease expired (the worker died): resumed once.
    assert services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 9, 1, 1)).resumed == [b.pk]
    assert services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 9, 1, 2)).resumed == []


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_over_200_due_broadcasts_send_each_once(
    drafter, reviewer, line_sandbox, time_machine, django_capture_on_commit_callbacks
):
    now = jst(2026, 12, 1, 10, 0)
    time_machine.move_to(now, tick=True)
    staff = line_sandbox.staff_ids()
    make_followers(staff, ["childcare_education"], staff=len(staff))
    ids = [
        approved_broadcast(
            author=drafter,
            approver=reviewer,
            now=now,
            title=f"#{i}",
            text=f"お知らせ {i}",
            audience=Broadcast.Audience.STAFF_TEST,
        ).pk
        for i in range(200)
    ]
    claimed: list[list[int]] = []
    barrier = threading.Barrier(2)

    def dispatcher() -> None:
        """One dispatcher that sends what it claims, as its worker would."""
        barrier.wait()
        mine: list[int] = []
        for _ in range(10):
            mine += services.broadcasts_dispatch_due(now=now, limit=25).claimed
        for pk in mine:
            services.broadcast_send(broadcast_id=pk)
        claimed.append(mine)
        connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed[0] + claimed[1]
    assert sorted(everything) == sorted(ids)  # every one claimed...
    assert len(set(everything)) == len(everything)  # ...exactly once
    if connection.vendor == "postgresql":
        assert claimed[0] and claimed[1]  # both did work side by side (skip_locked)
    assert Broadcast.objects.filter(status=S.SENT).count() == 200
    # The sandbox saw each broadcast's text exactly once per staff recipient.
    texts = Counter(
        (uid, d.messages[0]["text"]) for d in line_sandbox.deliveries() for uid in d.recipients
    )
    assert len(texts) == 200 * len(staff)
    assert set(texts.values()) == {1}


def test_send_that_would_run_past_1715_is_held_whole_to_the_next_window(drafter, reviewer):
    make_followers([f"U{i:032x}" for i in range(10)], ["childcare_education"])
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 9, 0))
    # 17:14:45: in the window, but the send (estimated ≥ 30 s) would end after 17:15.
    result = services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 17, 14, 45))
    assert result.held == [b.pk]
    b.refresh_from_db()
    assert b.scheduled_for == jst(2026, 12, 2, 8, 30)
    assert "17:15 までに配信が終わらない見込み" in b.hold_reason
    # Earlier in the afternoon the same send goes at once.
    Broadcast.objects.filter(pk=b.pk).update(scheduled_for=jst(2026, 12, 2, 16, 0))
    assert services.broadcasts_dispatch_due(now=jst(2026, 12, 2, 16, 0)).claimed == [b.pk]


def test_the_dispatch_run_before_the_opening_claims_held_sends_at_8_30_not_a_tick_later(
    drafter, reviewer, time_machine
):
    """Issue 18 part 5: a run 0.4 s before the window opens waits for 8:30:00 and claims
    what was held for it then — never earlier (adversarial: the claim's own clock reading is
    at or after the opening)."""
    from broadcasts import tasks

    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 11, 27, 22, 0))
    assert b.scheduled_for == jst(2026, 11, 30, 8, 30)
    time_machine.move_to(jst(2026, 11, 30, 8, 29, 59, 600_000), tick=True)
    claimed = tasks.dispatch_due_broadcasts()["claimed"]
    assert claimed == [b.pk]
    b.refresh_from_db()
    assert b.status == S.SENDING
    assert jst(2026, 11, 30, 8, 30) <= b.sending_started_at < jst(2026, 11, 30, 8, 30, 1)
    assert not BroadcastEvent.objects.filter(
        broadcast=b, verb="claim", created_at__lt=b.scheduled_for
    )


def test_a_dispatch_run_does_not_wait_for_sends_due_after_the_next_run(
    drafter, reviewer, time_machine
):
    from broadcasts import tasks

    approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 11, 27, 22, 0))
    time_machine.move_to(jst(2026, 11, 30, 8, 29, 55), tick=True)
    assert services.broadcasts_dispatch_due().next_due_at is None
    assert tasks.dispatch_due_broadcasts()["claimed"] == []


def test_a_closed_day_holds_even_the_sends_a_run_waited_for(drafter, reviewer, time_machine):
    """The run waits for the scheduled instant, but the window decides: an admin closed
    Monday after the approval, so the send is held to Tuesday, not claimed at 8:30."""
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 11, 27, 22, 0))
    CalendarOverride.objects.create(date=dt.date(2026, 11, 30), is_open=False, reason="臨時休庁")
    from broadcasts import tasks

    time_machine.move_to(jst(2026, 11, 30, 8, 29, 59, 700_000), tick=True)
    assert tasks.dispatch_due_broadcasts()["claimed"] == []
    b.refresh_from_db()
    assert b.status == S.SCHEDULED and b.scheduled_for == jst(2026, 12, 1, 8, 30)


def test_window_opening_claims_many_with_one_audit_row_each_in_few_statements(
    drafter, reviewer, django_capture_on_commit_callbacks
):
    """The sends held for 8:30 are claimed together: each gets exactly one 配信処理の開始 row
    and its own send task, in priority order, and the claim's statements do not grow with
    the number of sends (the last of fifty used to wait ~0.2 s for the others' claims)."""
    from django.test.utils import CaptureQueriesContext

    def claim(count: int, approved: dt.datetime, opening: dt.datetime) -> tuple[int, int]:
        held = [
            approved_broadcast(author=drafter, approver=reviewer, now=approved, title=f"#{i}")
            for i in range(count)
        ]
        assert {b.scheduled_for for b in held} == {opening}
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks() as callbacks,
        ):
            result = services.broadcasts_dispatch_due(now=opening)
        assert sorted(result.claimed) == sorted(b.pk for b in held)
        for b in held:
            b.refresh_from_db()
            assert b.status == S.SENDING
            assert b.sending_started_at == opening
            assert b.lease_owner == ""
            assert b.hold_reason == ""
            claims = BroadcastEvent.objects.filter(broadcast=b, verb="claim")
            assert [(e.from_status, e.to_status, e.actor_id) for e in claims] == [
                (S.SCHEDULED, S.SENDING, None)
            ]
        # As if their sends had finished: the second opening has only its own to claim.
        Broadcast.objects.filter(pk__in=[b.pk for b in held]).update(status=S.SENT)
        return len(queries), len(callbacks)

    few = claim(2, jst(2026, 11, 27, 22, 0), jst(2026, 11, 30, 8, 30))
    many = claim(12, jst(2026, 11, 30, 22, 0), jst(2026, 12, 1, 8, 30))
    assert (few[1], many[1]) == (2, 12)  # one send task each, after the commit
    assert many[0] == few[0], "claiming 12 took more statements than claiming 2"


def test_claim_of_many_refuses_a_row_not_scheduled(drafter, reviewer):
    """The bulk claim checks the transition table for every row, as ``transition`` does."""
    from broadcasts.services.errors import InvalidTransition
    from broadcasts.services.lifecycle import transition_many

    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 9, 0))
    other = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 9, 0))
    other.status = S.SENT
    with pytest.raises(InvalidTransition):
        transition_many([b, other], "claim", now=jst(2026, 12, 1, 9, 0, 1), values={})
    b.refresh_from_db()
    assert b.status == S.SCHEDULED
    assert not BroadcastEvent.objects.filter(broadcast=b, verb="claim").exists()
