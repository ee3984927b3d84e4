"""The delivery rows of a send (built before the first request, on PostgreSQL by one
``INSERT … SELECT``, on SQLite streamed through Python): chunks of 500 in follower order,
every subscriber in exactly one chunk, those who unfollowed or did not subscribe in none, and
a distinct v4 retry key per chunk made at the send's ``now``."""

from __future__ import annotations

import uuid

import pytest

from broadcasts import services
from broadcasts.models import Delivery, Follower
from broadcasts.services.sending import send
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers

pytestmark = pytest.mark.django_db


@pytest.fixture
def now(time_machine):
    instant = jst(2026, 12, 1, 10, 0)
    time_machine.move_to(instant, tick=False)
    return instant


def test_chunks_hold_every_subscriber_once_in_follower_order(drafter, reviewer, now):
    subscribers = make_followers([synthetic_user_id(70_000 + i) for i in range(1201)])
    make_followers([synthetic_user_id(80_000 + i) for i in range(7)], ["events"])  # not theirs
    gone = subscribers[600]
    Follower.objects.filter(pk=gone.pk).update(unfollowed_at=now)
    broadcast = approved_broadcast(author=drafter, approver=reviewer, now=now)
    services.broadcasts_dispatch_due(now=now)

    prepared, outcome = send._prepare(broadcast.pk, now, "host:1:run")

    assert outcome is None and prepared is not None
    rows = list(Delivery.objects.filter(broadcast=broadcast).order_by("seq"))
    assert [d.seq for d in rows] == [1, 2, 3]
    assert [d.recipient_count for d in rows] == [500, 500, 200]
    assert [len(d.recipients) for d in rows] == [500, 500, 200]
    expected = [f.line_user_id for f in sorted(subscribers, key=lambda f: f.pk) if f != gone]
    assert [uid for d in rows for uid in d.recipients] == expected
    keys = [d.retry_key for d in rows]
    assert len(set(keys)) == 3 and all(uuid.UUID(str(k)).version == 4 for k in keys)
    assert {d.key_created_at for d in rows} == {now}
    assert {(d.kind, d.status, d.attempts) for d in rows} == {("multicast", "pending", 0)}
    prepared.refresh_from_db()
    assert (prepared.recipient_count, prepared.deliveries_total) == (1200, 3)


def test_a_send_to_nobody_creates_no_rows_and_stops(drafter, reviewer, now):
    make_followers([synthetic_user_id(81_000 + i) for i in range(3)], ["events"])
    broadcast = approved_broadcast(author=drafter, approver=reviewer, now=now)
    services.broadcasts_dispatch_due(now=now)

    prepared, outcome = send._prepare(broadcast.pk, now, "host:1:run")

    assert prepared is None and outcome.status == "needs_attention"
    assert not Delivery.objects.filter(broadcast=broadcast).exists()
