"""Delivery rows built in blocks while the send goes (sending/build.py; PostgreSQL).

What an operator relies on: every subscriber is in exactly one request, requests go in
follower order, a run that dies mid-build is resumed by the next with the same rows and
retry keys, and a send is never reported sent (or its quota reserved) before the build is
complete. Who received what is checked in the LINE sandbox's own delivery log."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, transaction
from django.utils import timezone

from broadcasts import services
from broadcasts.models import Broadcast, Delivery, Follower
from broadcasts.services.sending import build, send
from broadcasts.services.sending.finish import _finish
from line_sandbox.state import synthetic_user_id

from .sending.helpers import approved_broadcast, jst, make_followers

S = Broadcast.Status
MULTICAST = "/v2/bot/message/multicast"

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite builds every row before the first request"
)


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def now(time_machine):
    instant = jst(2026, 12, 1, 10, 0)
    time_machine.move_to(instant, tick=True)
    return instant


@pytest.fixture
def small_blocks(settings):
    """A first block of 2 requests, then blocks of 2: a 3,201-subscriber send has 7 rows."""
    settings.MULTICAST_BUILD_FIRST_RECIPIENTS = 1000
    settings.MULTICAST_BUILD_STEP_RECIPIENTS = 1000
    settings.MULTICAST_CONCURRENCY = 2


def subscribers(start: int, n: int) -> list[str]:
    ids = [synthetic_user_id(start + i) for i in range(n)]
    make_followers(ids)
    return ids


def rows(broadcast: Broadcast) -> list[Delivery]:
    return list(Delivery.objects.filter(broadcast=broadcast).order_by("seq"))


def claimed(drafter, reviewer, now, title: str = "お知らせ") -> Broadcast:
    b = approved_broadcast(author=drafter, approver=reviewer, now=now, title=title)
    assert b.pk in services.broadcasts_dispatch_due(now=now).claimed
    return b


@postgresql_only
@pytest.mark.django_db
def test_prepare_builds_only_the_first_block_and_the_send_is_not_yet_counted(
    drafter, reviewer, now, small_blocks
):
    subscribers(90_000, 3201)
    b = claimed(drafter, reviewer, now)

    prepared, outcome = send._prepare(b.pk, now, "host:1:run")

    assert outcome is None and prepared is not None
    assert [d.recipient_count for d in rows(b)] == [500, 500]
    b.refresh_from_db()
    assert b.deliveries_total == 0, "the build is not complete: the send has no total yet"
    assert b.lease_owner == "host:1:run"


@postgresql_only
@pytest.mark.django_db
def test_a_build_interrupted_and_resumed_has_the_same_rows_keys_and_boundaries(
    drafter, reviewer, now, small_blocks
):
    """Run A builds the first block and one more, then dies (its next block's transaction
    rolls back). Run B resumes: the committed rows keep their recipients and retry keys, and
    the boundaries are those of a build that was never interrupted."""
    ids = subscribers(90_000, 3201)
    gone = Follower.objects.get(line_user_id=ids[1700])
    Follower.objects.filter(pk=gone.pk).update(unfollowed_at=now)
    b = claimed(drafter, reviewer, now, "中断")
    send._prepare(b.pk, now, "host:1:a")
    with transaction.atomic():
        assert build.deliveries_build_block(b, now=now, limit=1000) is False
    before = {d.seq: (d.retry_key, d.recipients) for d in rows(b)}
    assert sorted(before) == [1, 2, 3, 4]
    with pytest.raises(RuntimeError), transaction.atomic():  # killed mid-block
        build.deliveries_build_block(b, now=now, limit=1000)
        raise RuntimeError("the process died before its commit")
    assert len(rows(b)) == 4

    while True:  # run B
        with transaction.atomic():
            if build.deliveries_build_block(b, now=now, limit=1000):
                break

    after = rows(b)
    assert {d.seq: (d.retry_key, d.recipients) for d in after if d.seq <= 4} == before
    uninterrupted = claimed(drafter, reviewer, now, "一度に")
    with transaction.atomic():
        assert build.deliveries_build_block(uninterrupted, now=now, limit=5000) is True
    assert [d.recipients for d in after] == [d.recipients for d in rows(uninterrupted)]
    assert [d.recipient_count for d in after] == [500] * 6 + [200]
    flat = [uid for d in after for uid in d.recipients]
    assert len(flat) == len(set(flat)) == 3200, "a subscriber in two requests"
    assert flat == [uid for uid in ids if uid != gone.line_user_id]  # follower order
    assert len({d.retry_key for d in after}) == 7
    b.refresh_from_db()
    assert (b.deliveries_total, b.recipient_count) == (7, 3200)


@pytest.mark.django_db
def test_a_send_whose_build_is_not_complete_is_never_finished_as_sent(
    drafter, reviewer, now, settings
):
    """Every row that exists was accepted, but the build never completed (its builder died):
    the send is released to be resumed, not reported sent. (Both databases: the guard is in
    the finish.)"""
    settings.MULTICAST_BUILD_FIRST_RECIPIENTS = 500
    subscribers(90_000, 1200)
    b = claimed(drafter, reviewer, now)
    send._prepare(b.pk, now, "host:1:run")
    Delivery.objects.filter(broadcast=b, seq=1).update(status=Delivery.Status.ACCEPTED)
    Delivery.objects.filter(broadcast=b, seq__gt=1).delete()  # what an unfinished build left
    Broadcast.objects.filter(pk=b.pk).update(deliveries_total=0, deliveries_accepted=1)

    outcome = _finish(b.pk, None, "", "host:1:run", now)

    b.refresh_from_db()
    assert outcome.status == "retry_later"
    assert b.status == S.SENDING and b.sent_at is None and b.lease_owner == ""
    assert b.events.filter(verb="send_retry_later").exists()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_builder_feeds_the_senders_every_subscriber_once_in_order(
    line_sandbox, drafter, reviewer, now, small_blocks, settings
):
    # One request in flight: the order LINE gets them in is the order the senders took them
    # (with two, a sending thread descheduled for a few requests let the other overtake it).
    settings.MULTICAST_CONCURRENCY = 1
    ids = [synthetic_user_id(91_000 + i) for i in range(3201)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids)
    b = claimed(drafter, reviewer, now)

    outcome = services.broadcast_send(broadcast_id=b.pk, sleep=no_sleep)

    assert outcome.status == "sent"
    b.refresh_from_db()
    assert b.status == S.SENT
    assert (b.deliveries_total, b.deliveries_accepted, b.recipient_count) == (7, 7, 3201)
    logged = line_sandbox.state.deliveries(endpoint=MULTICAST)
    counts = Counter(uid for d in logged for uid in d.recipients)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    seq_of_key = {str(d.retry_key): d.seq for d in rows(b)}
    order = [seq_of_key[str(d.retry_key)] for d in logged]  # in the order LINE accepted them
    assert order == list(range(1, 8))


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_builder_that_fails_leaves_the_send_to_be_resumed_and_nobody_gets_it_twice(
    line_sandbox, drafter, reviewer, now, small_blocks, monkeypatch
):
    ids = [synthetic_user_id(92_000 + i) for i in range(3201)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids)
    b = claimed(drafter, reviewer, now)
    real = build.deliveries_build_block
    calls = {"n": 0}

    def fails_on_the_third_block(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "deliveries_build_block", fails_on_the_third_block)
    first = services.broadcast_send(broadcast_id=b.pk, sleep=no_sleep)

    b.refresh_from_db()
    assert first.status == "retry_later"
    assert b.status == S.SENDING and b.deliveries_total == 0
    assert len(line_sandbox.state.deliveries(endpoint=MULTICAST)) == 4  # the rows built

    monkeypatch.setattr(build, "deliveries_build_block", real)
    Broadcast.objects.filter(pk=b.pk).update(lease_expires_at=timezone.now())
    second = services.broadcast_send(broadcast_id=b.pk, sleep=no_sleep)

    assert second.status == "sent"
    counts = Counter(
        uid for d in line_sandbox.state.deliveries(endpoint=MULTICAST) for uid in d.recipients
    )
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    b.refresh_from_db()
    assert (b.deliveries_total, b.deliveries_accepted) == (7, 7)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_monthly_limit_is_checked_against_every_recipient_not_the_first_block(
    line_sandbox, drafter, reviewer, now, small_blocks
):
    """3,201 messages needed, 2,000 left this month: the first block (1,000) alone would fit.
    The reservation waits for the build and stops the send before its first request."""
    ids = [synthetic_user_id(93_000 + i) for i in range(3201)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids)
    line_sandbox.state.set_quota("limited", value=2000)
    b = claimed(drafter, reviewer, now)

    outcome = services.broadcast_send(broadcast_id=b.pk, sleep=no_sleep)

    assert outcome.status == "needs_attention"
    assert "必要 3,201 通" in outcome.detail
    assert line_sandbox.state.deliveries(endpoint=MULTICAST) == []


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_builder_whose_run_lost_the_lease_adds_no_row(drafter, reviewer, now, small_blocks):
    """Run A was presumed dead and run B took the send over: A's builder, asked to build the
    rest, finds the lease gone and writes nothing (B builds them, with its own blocks)."""
    subscribers(94_000, 3201)
    b = claimed(drafter, reviewer, now)
    prepared, _ = send._prepare(b.pk, now, "host:1:a")
    assert prepared is not None
    Broadcast.objects.filter(pk=b.pk).update(lease_owner="host:2:b")
    builder = build.DeliveryBuilder(prepared, "host:1:a", timezone.now, threading.Event())
    builder.start()

    assert builder.wait_complete() is False
    builder.stop()
    assert [d.seq for d in rows(b)] == [1, 2]


@postgresql_only
@pytest.mark.django_db
def test_the_build_runs_without_nested_loops_and_leaves_them_on_after():
    """The build's statement goes with its ``SET LOCAL`` pair in one round trip: the setting
    holds for that statement only, and the cursor gives that statement's rows."""
    with transaction.atomic(), connection.cursor() as cursor:
        build.execute_without_nested_loops(
            cursor, "SELECT current_setting(%s), %s", ["enable_nestloop", 7]
        )
        assert cursor.fetchall() == [("off", 7)]
        cursor.execute("SHOW enable_nestloop")
        assert cursor.fetchone() == ("on",)
