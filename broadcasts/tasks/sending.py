"""Thin Celery adapters: ids in, call one service (HackSoft styleguide: Celery).

No task carries a long ETA or countdown: the database is the schedule (DESIGN.md §5)."""

from __future__ import annotations

from celery import shared_task

from .. import services


@shared_task(name="broadcasts.tasks.dispatch_due_broadcasts", ignore_result=True)
def dispatch_due_broadcasts() -> dict[str, list[int]]:
    result = services.broadcasts_dispatch_due()
    return {"claimed": result.claimed, "held": result.held, "resumed": result.resumed}


@shared_task(
    name="broadcasts.tasks.send_broadcast",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_broadcast(broadcast_id: int) -> str:
    return services.broadcast_send(broadcast_id=broadcast_id).status


@shared_task(
    name="broadcasts.tasks.send_emergency_broadcast",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_emergency_broadcast(broadcast_id: int) -> str:
    """Routed to the ``emergency`` queue, served by its own worker (settings). The claim and
    the send are one run (one lease owner); if the dispatcher claimed it first, whichever run
    takes the lease sends and the other finds it leased."""
    owner = services.lease_owner_new()
    services.broadcast_claim_now(broadcast_id=broadcast_id, owner=owner)
    return services.broadcast_send(broadcast_id=broadcast_id, owner=owner).status
