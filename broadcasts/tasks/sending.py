"""Thin Celery adapters: ids in, call one service (HackSoft styleguide: Celery).

No task carries a long ETA or countdown: the database is the schedule (DESIGN.md §5)."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, shared_task
from django.utils import timezone

from .. import services

logger = logging.getLogger(__name__)


# A dispatcher run waits at most this long for a send falling due before the next run.
DISPATCH_AHEAD_MAX_SECONDS = 2.0


@shared_task(name="broadcasts.tasks.dispatch_due_broadcasts", ignore_result=True)
def dispatch_due_broadcasts() -> dict[str, list[int]]:
    """Claim what is due; then, if a send falls due before the next run (the window's
    opening, for the sends held for it), wait for that instant and claim again: held sends
    start at 8:30:00, not up to a dispatch interval later (half a second on average at
    ``DISPATCH_INTERVAL_SECONDS=1``). The wait is bounded by the interval: no long ETA."""
    result = services.broadcasts_dispatch_due()
    if result.next_due_at is not None:
        wait = (result.next_due_at - timezone.now()).total_seconds()
        if wait <= DISPATCH_AHEAD_MAX_SECONDS:
            time.sleep(max(wait, 0.0) + 0.005)
            more = services.broadcasts_dispatch_due()
            result.claimed += more.claimed
            result.held += more.held
            result.resumed += more.resumed
    return {"claimed": result.claimed, "held": result.held, "resumed": result.resumed}


@shared_task(
    name="broadcasts.tasks.send_broadcast",
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_broadcast(self: Task, broadcast_id: int) -> str:
    return _send_timed(self, broadcast_id, claim=False, label="send")


@shared_task(
    name="broadcasts.tasks.send_emergency_broadcast",
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_emergency_broadcast(self: Task, broadcast_id: int) -> str:
    """Routed to the ``emergency`` queue, served by its own worker (settings). The claim and
    the send's preparation are one transaction of one run (one lease owner); if the
    dispatcher claimed it first, whichever run takes the lease sends and the other finds it
    leased."""
    return _send_timed(self, broadcast_id, claim=True, label="emergency")


def _send_timed(task: Task, broadcast_id: int, *, claim: bool, label: str) -> str:
    """Run the send and log where its time went, as wall-clock readings other processes'
    can be set against: enqueued (the enqueuer's header, emergencies), started (this task),
    prepared (lease, checks and deliveries committed), calling (the first request about to
    leave). bench/ reads these lines; an operator can too."""
    started = time.time()
    marks: dict[str, float] = {}
    outcome = services.broadcast_send(
        broadcast_id=broadcast_id,
        owner=services.lease_owner_new(),
        claim=claim,
        mark=lambda step: marks.setdefault(step, time.time()),
    )
    enqueued = _header_time(task.request, "enqueued_at")
    nan = float("nan")
    logger.info(
        "%s timing broadcast=%s status=%s enqueued=%.6f started=%.6f prepared=%.6f calling=%.6f",
        label,
        broadcast_id,
        outcome.status,
        enqueued if enqueued is not None else nan,
        started,
        marks.get("prepared", nan),
        marks.get("calling", nan),
    )
    return outcome.status


def _header_time(request: Any, name: str) -> float | None:
    """A wall-clock time the enqueuer put in the message's headers, if any."""
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
