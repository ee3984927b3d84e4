"""One sender per broadcast, in one process (issue 12 finding 5): lease owners are per send
run, not per process, and a run whose lease moved stops before its next request. The same
guarantees with real worker processes: tests/chaos/test_one_sender.py."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection

from broadcasts import services
from broadcasts.models import Broadcast
from broadcasts.services.sending import lease, send
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, make_followers, send_while_the_lease_moves

S = Broadcast.Status
MULTICAST = "/v2/bot/message/multicast"


@pytest.fixture
def emergency(line_sandbox, drafter, supervisor):
    ids = [synthetic_user_id(90_000 + i) for i in range(1500)]  # three chunks
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    return approved_broadcast(
        author=drafter,
        approver=supervisor,
        priority=Broadcast.Priority.EMERGENCY,
        categories=["disaster_crime"],
        text="【柏市】給水所を開設しました。",
    )


def test_owners_are_new_for_every_run():
    assert lease.lease_owner_new() != lease.lease_owner_new()


def test_two_runs_in_one_process_do_not_share_a_lease(
    emergency, django_capture_on_commit_callbacks
):
    """Siblings of one prefork parent once had one identity: the second run took the first
    one's lease for its own. Now the second run finds the send leased and stays out."""
    assert services.broadcast_claim_now(broadcast_id=emergency.pk)
    now = emergency.scheduled_for
    first, _ = send._prepare(emergency.pk, now, "host:1:run-a")
    assert first is not None
    second, outcome = send._prepare(emergency.pk, now, "host:1:run-b")
    assert second is None and outcome.status == "skipped"
    assert "run-a" in outcome.detail
    assert emergency.events.filter(verb="send_started").count() == 1


def test_a_run_taking_over_an_expired_lease_says_so_in_the_audit_trail(emergency):
    """A run died (its lease expired) and a task still queued for the send takes it over
    before the dispatcher resumes it: the history shows the takeover all the same, once."""
    assert services.broadcast_claim_now(broadcast_id=emergency.pk)
    now = emergency.scheduled_for
    first, _ = send._prepare(emergency.pk, now, "host:1:run-dead")
    assert first is not None
    later = now + send._lease_seconds() + dt.timedelta(seconds=1)
    second, outcome = send._prepare(emergency.pk, later, "host:2:run-next")
    assert second is not None and outcome is None
    resumed = emergency.events.filter(verb="send_resumed")
    assert resumed.count() == 1
    assert resumed.get().data["previous_worker"] == "host:1:run-dead"
    again, _ = send._prepare(emergency.pk, later, "host:2:run-next")  # its own lease: no row
    assert again is not None
    assert emergency.events.filter(verb="send_resumed").count() == 1


def test_the_emergency_task_and_the_dispatcher_start_one_send(emergency, line_sandbox):
    """The dispatcher claims the row between the approval's commit and the emergency task's
    claim; both tasks then run. Exactly one sends."""
    services.broadcasts_dispatch_due(now=emergency.scheduled_for)  # the dispatcher was first
    a, b = lease.lease_owner_new(), lease.lease_owner_new()
    assert not services.broadcast_claim_now(broadcast_id=emergency.pk, owner=a)
    assert services.broadcast_send(broadcast_id=emergency.pk, owner=a).status == "sent"
    assert services.broadcast_send(broadcast_id=emergency.pk, owner=b).status != "sent"
    assert emergency.events.filter(verb="send_started").count() == 1
    assert len(line_sandbox.state.deliveries(endpoint=MULTICAST)) == 3


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_renewed_while_line_is_slow(emergency, line_sandbox, settings):
    settings.SEND_LEASE_SECONDS = 1
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=700, count=None)
    settings.MULTICAST_CONCURRENCY = 1
    services.broadcasts_dispatch_due(now=emergency.scheduled_for)
    resumed: list[int] = []
    done = threading.Event()

    def send() -> None:
        try:
            services.broadcast_send(broadcast_id=emergency.pk, sleep=lambda s: None)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=send)
    thread.start()
    from django.utils import timezone

    while not done.is_set():  # the dispatcher's beat, every 0.2 s, during a 2.1 s send
        resumed += services.broadcasts_dispatch_due(now=timezone.now()).resumed
        time.sleep(0.2)
    thread.join()
    emergency.refresh_from_db()
    assert emergency.status == S.SENT
    assert resumed == [], "the dispatcher resumed a send whose sender was alive"
    assert len([r for r in line_sandbox.state.requests() if r.path == MULTICAST]) == 3


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_lease_moved_stops_before_its_next_request(emergency, line_sandbox, settings):
    settings.SEND_LEASE_SECONDS = 0.6
    settings.MULTICAST_CONCURRENCY = 1
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=500, count=None)
    services.broadcasts_dispatch_due(now=emergency.scheduled_for)
    outcome = send_while_the_lease_moves(emergency, line_sandbox, owner="run-a", new_owner="run-b")
    assert outcome.status == "skipped"
    requests = [r for r in line_sandbox.state.requests() if r.path == MULTICAST]
    assert len(requests) < 3, "the run kept sending after its lease moved"
    emergency.refresh_from_db()
    assert emergency.status == S.SENDING and emergency.lease_owner == "run-b"
