"""A send is completed in the transaction that records its last replies (issue 18, window
opening), but only when the row itself says every request is accepted and the run still
holds the lease; otherwise ``_finish`` decides, as before. Checked against the LINE sandbox
through the real line-bot-sdk client."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broadcasts import services
from broadcasts.models import Broadcast
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers, send_while_the_lease_moves

S = Broadcast.Status
MULTICAST = "/v2/bot/message/multicast"
BROADCAST_ROW_READ = 'SELECT "broadcasts_broadcast"."id", '


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)


def subscribers(line_sandbox, count: int) -> list[str]:
    ids = [synthetic_user_id(40_000 + i) for i in range(count)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["events"])
    return ids


def claimed(drafter, reviewer) -> Broadcast:
    broadcast = approved_broadcast(
        author=drafter, approver=reviewer, categories=["events"], text="【柏市】朝市のお知らせ"
    )
    assert broadcast.pk in services.broadcasts_dispatch_due(now=broadcast.scheduled_for).claimed
    return broadcast


def verbs(broadcast: Broadcast) -> list[str]:
    return list(broadcast.events.order_by("created_at", "id").values_list("verb", flat=True))


@pytest.mark.parametrize("followers", [20, 1200])  # one request; three (replies one by one)
def test_the_last_replies_complete_the_send_in_the_same_commit(
    line_sandbox, drafter, reviewer, in_window, settings, followers
):
    settings.MULTICAST_CONCURRENCY = 1  # three requests: three recordings, the last completes
    subscribers(line_sandbox, followers)
    b = claimed(drafter, reviewer)
    with CaptureQueriesContext(connection) as queries:
        outcome = services.broadcast_send(broadcast_id=b.pk)
    assert outcome.status == "sent"
    b.refresh_from_db()
    requests = line_sandbox.state.deliveries(endpoint=MULTICAST)
    assert (b.status, b.deliveries_accepted, b.deliveries_total) == (
        S.SENT,
        len(requests),
        len(requests),
    )
    assert b.lease_owner == "" and b.lease_expires_at is None and b.sent_at is not None
    assert verbs(b)[-3:] == ["claim", "send_started", "complete"]
    complete = b.events.get(verb="complete")
    assert (complete.from_status, complete.to_status) == (S.SENDING, S.SENT)
    assert complete.data == {
        "accepted": len(requests),
        "total": len(requests),
        "request_ids": list(b.deliveries.order_by("seq").values_list("request_id", flat=True)),
    }
    assert all(complete.data["request_ids"])
    # The row was read (with its lock, on PostgreSQL) once, to prepare; not again to finish.
    reads = [q for q in queries.captured_queries if q["sql"].startswith(BROADCAST_ROW_READ)]
    assert len(reads) == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_lease_moved_while_line_answered_does_not_complete_the_send(
    line_sandbox, drafter, reviewer, in_window
):
    """LINE accepts the one request, and meanwhile the send is handed to another run (this
    one presumed dead): the reply is recorded, but this run neither marks the send SENT nor
    writes its completion; the run now holding the lease does, without a second request."""
    subscribers(line_sandbox, 20)
    b = claimed(drafter, reviewer)
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=400, count=1)
    outcome = send_while_the_lease_moves(b, line_sandbox, owner="run-a", new_owner="run-b")
    assert outcome.status == "skipped"
    b.refresh_from_db()
    assert (b.status, b.lease_owner, b.deliveries_accepted) == (S.SENDING, "run-b", 1)
    assert "complete" not in verbs(b)

    assert services.broadcast_send(broadcast_id=b.pk, owner="run-b").status == "sent"
    b.refresh_from_db()
    assert b.status == S.SENT and verbs(b).count("complete") == 1
    assert len(line_sandbox.state.deliveries(endpoint=MULTICAST)) == 1


def test_a_send_with_a_request_still_to_retry_is_not_completed_by_its_accepted_ones(
    line_sandbox, drafter, reviewer, in_window, settings
):
    """Three requests; LINE takes the first but answers 500, and accepts the other two: the
    send is not completed by those two replies. It completes once, after the retry (LINE's
    409 for the known key counts as accepted), each citizen reached exactly once."""
    settings.MULTICAST_CONCURRENCY = 1
    ids = subscribers(line_sandbox, 1200)
    b = claimed(drafter, reviewer)
    line_sandbox.state.set_fault(MULTICAST, 500, mode="accept_then_fail", count=1)
    outcome = services.broadcast_send(broadcast_id=b.pk, sleep=lambda _s: None)
    assert outcome.status == "sent"
    b.refresh_from_db()
    assert (b.status, b.deliveries_accepted, b.deliveries_total) == (S.SENT, 3, 3)
    assert verbs(b).count("complete") == 1
    got = [uid for d in line_sandbox.state.deliveries(endpoint=MULTICAST) for uid in d.recipients]
    assert sorted(got) == sorted(ids)
