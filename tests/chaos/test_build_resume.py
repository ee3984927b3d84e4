"""A worker killed while it is still building a send's rows (sending/build.py: PostgreSQL
builds them in blocks ahead of the requests), with real worker and beat processes. Another
worker takes the send over when the lease lapses, resumes the build after the committed rows,
keeps their retry keys, and every recipient gets the message exactly once — checked in the
sandbox's own delivery log."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from broadcasts.models import Broadcast, Delivery
from line_sandbox.state import synthetic_user_id

from ..broadcasts.sending.helpers import approved_broadcast, make_followers
from .test_processes import MULTICAST, Stack, recipients_counter, wait_for, wait_sent

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="SQLite builds every row before the first request",
    ),
]


def test_worker_killed_mid_build_the_next_resumes_with_the_same_rows_and_keys(
    line_sandbox, drafter, supervisor, tmp_path, settings
):
    settings.SEND_LEASE_SECONDS = 3
    ids = [synthetic_user_id(60_000 + i) for i in range(5000)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    # 10 requests of 500, built one at a time ahead of the (slow) requests.
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=400, count=None)
    stack = Stack(tmp_path, line_sandbox.url, os.environ.get("REDIS_URL"))
    stack.env["MULTICAST_BUILD_FIRST_RECIPIENTS"] = "500"
    stack.env["MULTICAST_BUILD_STEP_RECIPIENTS"] = "500"
    try:
        stack.start_worker("worker1")
        stack.start_beat()
        b = approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            text="【柏市】避難所を開設しました。",
        )
        wait_for(
            lambda: len(line_sandbox.state.deliveries(endpoint=MULTICAST)) >= 3,
            60,
            "three requests accepted before the kill\n" + stack.log("worker1"),
        )
        stack.kill("worker1")  # SIGKILL to the worker and its pool, builder and all
        built = {
            d.seq: (d.retry_key, d.recipients)
            for d in Delivery.objects.filter(broadcast=b).order_by("seq")
        }
        b.refresh_from_db()
        assert b.deliveries_total == 0 and len(built) < 10, (
            "the build was complete before the kill; the test proves nothing"
        )
        stack.start_worker("worker2")

        wait_sent(
            b, 90, "the send to complete after restart\n" + stack.log("worker2") + stack.log("beat")
        )
    finally:
        stack.stop_all()
    counts = recipients_counter(line_sandbox)
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}, "somebody received the message twice"
    rows = list(Delivery.objects.filter(broadcast=b).order_by("seq"))
    assert [d.seq for d in rows] == list(range(1, 11))
    assert {d.seq: (d.retry_key, d.recipients) for d in rows if d.seq in built} == built
    flat = [uid for d in rows for uid in d.recipients]
    assert flat == ids, "rows in follower order, each follower in one row"
    assert {d.status for d in rows} == {"accepted"}
    assert (b.deliveries_total, b.deliveries_accepted, b.recipient_count) == (10, 10, 5000)
    assert b.events.filter(verb="send_resumed").exists()
