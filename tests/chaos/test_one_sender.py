"""One sender per broadcast (issue 12 finding 5), with real worker and beat processes.

On the first pass, a worker's pool processes shared one lease identity made at import in the
Celery parent, so the dispatcher's claim and the emergency task's claim could both start a
send; and a sender waiting on a slow LINE lost its lease after SEND_LEASE_SECONDS and the
dispatcher started a second one beside it."""

from __future__ import annotations

import os
from collections import Counter
from itertools import pairwise

import pytest

from broadcasts.models import Broadcast, BroadcastEvent
from line_sandbox.state import synthetic_user_id

from ..broadcasts.sending.helpers import approved_broadcast, make_followers
from .test_processes import MULTICAST, Stack, wait_for, wait_sent

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

S = Broadcast.Status


def _prefork_worker(stack: Stack, name: str, concurrency: int) -> None:
    stack.start(
        name,
        "worker",
        "-Q",
        "default,emergency",
        "-c",
        str(concurrency),
        "-n",
        f"{name}-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
        "-l",
        "INFO",
    )


def test_a_burst_of_emergencies_each_starts_exactly_once(
    line_sandbox, drafter, supervisor, tmp_path
):
    """Prefork worker with two pool processes plus beat; 20 emergencies approved at once. The
    approval enqueues each at once and the dispatcher (every second) races it."""
    ids = [synthetic_user_id(70_000 + i) for i in range(30)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    stack = Stack(tmp_path, line_sandbox.url, os.environ.get("REDIS_URL"))
    try:
        _prefork_worker(stack, "worker", 2)
        stack.start_beat()
        broadcasts = [
            approved_broadcast(
                author=drafter,
                approver=supervisor,
                priority=Broadcast.Priority.EMERGENCY,
                categories=["disaster_crime"],
                text=f"【柏市】避難所のお知らせ その{n + 1}",
            )
            for n in range(20)
        ]

        def all_sent() -> bool:
            return Broadcast.objects.filter(
                pk__in=[b.pk for b in broadcasts], status=S.SENT
            ).count() == len(broadcasts)

        wait_for(all_sent, 120, "20 emergencies sent\n" + stack.log("worker") + stack.log("beat"))
    finally:
        stack.stop_all()
    started = Counter(
        BroadcastEvent.objects.filter(verb="send_started", broadcast__in=broadcasts).values_list(
            "broadcast_id", flat=True
        )
    )
    assert set(started.values()) == {1}, f"send_started per broadcast: {started}"
    # Each emergency is one multicast chunk: exactly one accepted request each, no retries.
    requests = [r for r in line_sandbox.state.requests() if r.path == MULTICAST]
    assert len(requests) == len(broadcasts), [(r.status, r.retry_key, r.note) for r in requests]
    counts = Counter(
        uid for d in line_sandbox.state.deliveries(endpoint=MULTICAST) for uid in d.recipients
    )
    assert set(counts.values()) == {len(broadcasts)}


def test_line_slower_than_the_timeout_never_gets_two_senders(
    line_sandbox, drafter, supervisor, tmp_path
):
    """LINE answers slower than the request timeout for a while; the lease (3 s) would lapse
    many times over if it were renewed only per accepted chunk."""
    ids = [synthetic_user_id(80_000 + i) for i in range(2000)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    chunks = 4
    stack = Stack(tmp_path, line_sandbox.url, os.environ.get("REDIS_URL"))
    stack.env["LINE_REQUEST_TIMEOUT_SECONDS"] = "1"
    slow = line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=1500, count=None)
    try:
        _prefork_worker(stack, "worker", 2)
        stack.start_beat()
        b = approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            text="【柏市】停電情報",
        )
        wait_for(
            lambda: len([r for r in line_sandbox.state.requests() if r.path == MULTICAST]) >= 6,
            60,
            "slow requests under way\n" + stack.log("worker"),
        )
        # Well past several lease lengths while the sender keeps retrying.
        wait_for(
            lambda: b.events.filter(verb="send_retry_later").exists(),
            60,
            "the sender to give up for now\n" + stack.log("worker"),
        )
        line_sandbox.state.clear_faults()
        del slow

        wait_sent(b, 90, "the send to complete\n" + stack.log("worker") + stack.log("beat"))
    finally:
        stack.stop_all()
    assert not b.events.filter(verb="send_resumed").exists(), "a second sender was started"
    # Runs one after another: a run starts again only after the previous one let go of the
    # send (retry later), never beside it.
    verbs = list(
        b.events.filter(verb__in=["send_started", "send_retry_later", "complete"])
        .order_by("created_at", "id")
        .values_list("verb", flat=True)
    )
    for earlier, later in pairwise(verbs):
        assert not (earlier == "send_started" and later == "send_started"), verbs
    assert verbs[-1] == "complete", verbs
    requests = [r for r in line_sandbox.state.requests() if r.path == MULTICAST]
    attempts_per_run = 5  # the first try and four inline retries
    runs = 1 + b.events.filter(verb="send_retry_later").count()
    assert len(requests) <= chunks * attempts_per_run * runs
    # Every request of the send, first or resumed, carried one of the chunks' own retry keys.
    assert len({r.retry_key for r in requests}) == chunks
    counts = Counter(
        uid for d in line_sandbox.state.deliveries(endpoint=MULTICAST) for uid in d.recipients
    )
    assert set(counts) == set(ids) and set(counts.values()) == {1}
