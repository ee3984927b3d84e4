"""The month's message quota is reserved before a send's first request (issue 12 finding 8).

On the first pass two sends starting together both passed one cached reading, then both hit
LINE's monthly-limit 429 half-way. Now a send that cannot fit waits, or is 要対応, before its
first request; when the quota cannot be read, ordinary sends wait and emergencies go."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from broadcasts import services
from broadcasts.models import Broadcast
from broadcasts.services.sending import finish, quota, send
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers

S = Broadcast.Status
MULTICAST = "/v2/bot/message/multicast"
QUOTA = "/v2/bot/message/quota"


@pytest.fixture
def six_hundred(db, line_sandbox):
    ids = [synthetic_user_id(60_000 + i) for i in range(600)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["childcare_education", "disaster_crime"])
    return ids


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)
    return jst(2026, 12, 1, 10, 0)


def two_claimed(drafter, reviewer, now):
    a = approved_broadcast(author=drafter, approver=reviewer, now=now, title="A")
    b = approved_broadcast(author=drafter, approver=reviewer, now=now, title="B")
    services.broadcasts_dispatch_due(now=now)
    return a, b


def test_the_second_of_two_sends_that_do_not_both_fit_waits_before_its_first_request(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    line_sandbox.state.set_quota("limited", 1000, 0)
    a, b = two_claimed(drafter, reviewer, in_window)
    # Both are prepared (deliveries created) before either reserves: they start together.
    prepared_a, _ = send._prepare(a.pk, in_window, "run-a")
    prepared_b, _ = send._prepare(b.pk, in_window, "run-b")
    gateway = send.get_gateway()
    assert quota._reserve_quota(prepared_a, gateway, in_window) is None
    action, why = quota._reserve_quota(prepared_b, gateway, in_window)
    assert action == "retry_later" and "使用中のため待機" in why
    assert line_sandbox.state.deliveries() == []


def test_two_sends_starting_together_never_hit_the_monthly_limit_half_way(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    line_sandbox.state.set_quota("limited", 1000, 0)
    a, b = two_claimed(drafter, reviewer, in_window)
    first = services.broadcast_send(broadcast_id=a.pk, sleep=lambda s: None)
    assert first.status == "sent"
    second = services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None)
    b.refresh_from_db()
    # 400 left for 600: 要対応 with the numbers before any request, never half-way.
    assert second.status == "needs_attention", second
    assert b.status == S.NEEDS_ATTENTION
    assert "配信可能数が足りません（残り 400 通、必要 600 通）" in b.last_error
    assert b.deliveries.filter(status="accepted").count() == 0
    assert not [r for r in line_sandbox.state.requests() if r.path == MULTICAST and r.status == 429]


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_in_threads_reserve_atomically(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    line_sandbox.state.set_quota("limited", 1000, 0)
    a, b = two_claimed(drafter, reviewer, in_window)
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(2)

    def run(pk: int) -> None:
        try:
            barrier.wait()
            outcomes[pk] = services.broadcast_send(broadcast_id=pk, sleep=lambda s: None).status
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(pk,)) for pk in (a.pk, b.pk)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes.values()) in (
        ["needs_attention", "sent"],
        ["retry_later", "sent"],
    ), outcomes
    assert not [r for r in line_sandbox.state.requests() if r.path == MULTICAST and r.status == 429]
    assert len(line_sandbox.state.deliveries(endpoint=MULTICAST)) == 2  # one send's 2 chunks


def test_an_unreadable_quota_makes_ordinary_sends_wait(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    line_sandbox.state.set_quota("limited", 100_000, 0)
    line_sandbox.state.set_fault(QUOTA, 500, count=None)
    b = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    services.broadcasts_dispatch_due(now=in_window)
    outcome = services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None)
    b.refresh_from_db()
    assert outcome.status == "retry_later"
    assert b.status == S.SENDING and "配信可能数を確認できない" in b.last_error
    assert line_sandbox.state.deliveries() == []
    # LINE answers again: the dispatcher hands it over after the wait, and it goes.
    line_sandbox.state.clear_faults()
    later = in_window + dt.timedelta(seconds=finish.RETRY_LATER_SECONDS + 1)
    assert b.pk in services.broadcasts_dispatch_due(now=later).resumed
    assert services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None).status == "sent"


def test_an_unreadable_quota_does_not_hold_an_emergency(
    line_sandbox, six_hundred, drafter, supervisor
):
    line_sandbox.state.set_fault(QUOTA, 500, count=None)
    b = approved_broadcast(
        author=drafter,
        approver=supervisor,
        priority=Broadcast.Priority.EMERGENCY,
        categories=["disaster_crime"],
        text="【柏市】避難指示",
    )
    assert services.broadcast_claim_now(broadcast_id=b.pk)
    assert services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None).status == "sent"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's lock_timeout")
def test_without_a_monthly_limit_a_reservation_locks_no_other_send(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    """The local-government plan has no monthly limit: there is nothing to share out, so a
    send starting does not lock every send in progress (at the window's opening 50 sends
    queued on that lock, and an emergency waited for the row of the multicast being sent)."""
    a, b = two_claimed(drafter, reviewer, in_window)
    gateway = send.get_gateway()
    assert gateway.quota().type == "none"
    prepared_b, _ = send._prepare(b.pk, in_window, "run-b")
    holding, release = threading.Event(), threading.Event()

    def hold_a() -> None:  # another worker, mid-batch on send A's row
        from django.db import connection as other
        from django.db import transaction

        with transaction.atomic():
            Broadcast.objects.select_for_update().get(pk=a.pk)
            holding.set()
            release.wait(30)
        other.close()

    holder = threading.Thread(target=hold_a)
    holder.start()
    try:
        assert holding.wait(30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")  # a lock wait fails instead of waiting
        assert quota._reserve_quota(prepared_b, gateway, in_window) is None
    finally:
        release.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    prepared_b.refresh_from_db()
    assert prepared_b.quota_reserved_at == in_window


def quota_reads(sandbox) -> int:
    return len([r for r in sandbox.state.requests() if r.path == QUOTA])


def test_without_a_monthly_limit_sends_stop_reading_the_quota(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    """Whether there is a limit at all is the plan's, not the month's: once LINE has said
    "none", later sends (an emergency above all) ask LINE nothing before their request."""
    a, b = two_claimed(drafter, reviewer, in_window)
    assert services.broadcast_send(broadcast_id=a.pk, sleep=lambda s: None).status == "sent"
    assert quota_reads(line_sandbox) == 1
    assert services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None).status == "sent"
    assert quota_reads(line_sandbox) == 1
    b.refresh_from_db()
    assert b.quota_reserved_at is not None


def test_with_a_monthly_limit_every_send_reads_the_quota_fresh(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    line_sandbox.state.set_quota("limited", 100_000, 0)
    a, b = two_claimed(drafter, reviewer, in_window)
    assert services.broadcast_send(broadcast_id=a.pk, sleep=lambda s: None).status == "sent"
    assert services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None).status == "sent"
    assert quota_reads(line_sandbox) == 2


def test_a_plan_read_as_unlimited_that_gains_a_limit_is_read_again_when_it_expires(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    quota.quota_plan_remember("none")
    line_sandbox.state.set_quota("limited", 1000, 900)
    from django.core.cache import cache

    cache.delete(quota.QUOTA_PLAN_CACHE_KEY)  # the hour is over
    a = approved_broadcast(author=drafter, approver=reviewer, now=in_window)
    services.broadcasts_dispatch_due(now=in_window)
    outcome = services.broadcast_send(broadcast_id=a.pk, sleep=lambda s: None)
    assert outcome.status == "needs_attention"
    assert "残り 100 通、必要 600 通" in outcome.detail
    assert line_sandbox.state.deliveries() == []


def accepted_a_moment_ago(broadcast: Broadcast, now: dt.datetime, ago: dt.timedelta) -> None:
    """Send A's first chunk was accepted ``ago`` (LINE's consumption may not show it yet)."""
    from broadcasts.models import Delivery

    first = broadcast.deliveries.order_by("seq").first()
    Delivery.objects.filter(pk=first.pk).update(
        status="accepted", accepted_at=now - ago, request_id="req-a-1"
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(deliveries_accepted=1)


def test_a_chunk_another_send_had_accepted_a_moment_ago_counts_as_used(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    """The race: send A reserved and its first chunk (500) was just accepted, so A has 100
    pending; LINE's consumption does not count the 500 yet. Send B (600) must not take 1,000
    − 100 as free: it waits."""
    line_sandbox.state.set_quota("limited", 1000, 0)
    a, b = two_claimed(drafter, reviewer, in_window)
    prepared_a, _ = send._prepare(a.pk, in_window, "run-a")
    gateway = send.get_gateway()
    assert quota._reserve_quota(prepared_a, gateway, in_window) is None
    accepted_a_moment_ago(a, in_window, dt.timedelta(seconds=2))
    prepared_b, _ = send._prepare(b.pk, in_window, "run-b")
    action, why = quota._reserve_quota(prepared_b, gateway, in_window)
    assert action == "retry_later" and "使用中のため待機" in why
    assert "600 通を使用予定" in why  # A's 100 pending + the 500 accepted a moment ago


def test_a_chunk_accepted_long_ago_is_left_to_lines_count(
    line_sandbox, six_hundred, drafter, reviewer, in_window
):
    """Past ``QUOTA_SETTLE`` LINE's consumption includes the chunk: counting it again
    would hold sends back for nothing."""
    line_sandbox.state.set_quota("limited", 2000, 500)
    a, b = two_claimed(drafter, reviewer, in_window)
    prepared_a, _ = send._prepare(a.pk, in_window, "run-a")
    gateway = send.get_gateway()
    assert quota._reserve_quota(prepared_a, gateway, in_window) is None
    accepted_a_moment_ago(a, in_window, quota.QUOTA_SETTLE + dt.timedelta(seconds=5))
    prepared_b, _ = send._prepare(b.pk, in_window, "run-b")
    assert quota._reserve_quota(prepared_b, gateway, in_window) is None  # 1,500 − 100 ≥ 600
