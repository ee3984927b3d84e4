"""Celery tasks: thin adapters, ids in, one service called (HackSoft styleguide: Celery).

One module per domain, mirroring ``services``. Each task keeps the name it was registered
under before the modules moved here (``broadcasts.tasks.send_broadcast``,
``broadcasts.tasks_citizens.process_webhook_events``, ...): the beat schedule, the task
routes and messages already queued use those names. Importing this package (Celery's
autodiscovery does) registers them all; services enqueue by name through
``services/enqueue.py`` and never import this package."""

from .citizens import (
    process_new_webhook_events,
    process_pending_webhook_events,
    process_webhook_events,
    purge_webhook_events,
)
from .insight import refresh_broadcast_stats, refresh_insight
from .official import poll_official_feeds
from .sending import dispatch_due_broadcasts, send_broadcast, send_emergency_broadcast

__all__ = [
    "dispatch_due_broadcasts",
    "poll_official_feeds",
    "process_new_webhook_events",
    "process_pending_webhook_events",
    "process_webhook_events",
    "purge_webhook_events",
    "refresh_broadcast_stats",
    "refresh_insight",
    "send_broadcast",
    "send_emergency_broadcast",
]
