"""Celery tasks of the citizen side (imported by ``tasks/__init__.py`` so autodiscovery finds them)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from ..services import citizens

__all__ = [
    "process_new_webhook_events",
    "process_pending_webhook_events",
    "process_webhook_events",
    "purge_webhook_events",
]


@shared_task(
    name="broadcasts.tasks_citizens.process_webhook_events",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def process_webhook_events(webhook_event_ids: list[str]) -> int:
    """Enqueued by the webhook once the events are committed; each event runs at most once."""
    return citizens.webhook_events_process(webhook_event_ids=webhook_event_ids, now_fn=timezone.now)


@shared_task(
    name="broadcasts.tasks_citizens.process_new_webhook_events",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def process_new_webhook_events(stream: int = 0) -> int:
    """Woken by the webhook (one wake-up per stream while its processor runs)."""
    return citizens.webhook_events_process_new(stream=stream, now_fn=timezone.now)


@shared_task(name="broadcasts.tasks_citizens.process_pending_webhook_events", ignore_result=True)
def process_pending_webhook_events() -> int:
    """Backstop: events that were stored while the broker was down, or whose worker died
    (with coalesced wake-ups, the processor itself: it takes back a dead one's events)."""
    if settings.WEBHOOK_COALESCE_WAKEUPS:
        return citizens.webhook_events_wake_all(now_fn=timezone.now)
    now = timezone.now()
    return citizens.webhook_events_process(
        webhook_event_ids=citizens.webhook_events_pending(now=now), now_fn=timezone.now
    )


@shared_task(name="broadcasts.tasks_citizens.purge_webhook_events", ignore_result=True)
def purge_webhook_events() -> int:
    return citizens.webhook_events_purge()
