"""Operational health for administrators: Celery queue depths, sends that stopped making
progress, webhook events nobody processed, and when the dispatcher last ran."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone

from .models import Broadcast, WebhookEvent

DISPATCHER_HEARTBEAT_KEY = "ops:dispatcher-last-run"
QUEUES = ("emergency", "default")
STUCK_AFTER = dt.timedelta(minutes=2)
SLOW_SEND = dt.timedelta(minutes=30)


def dispatcher_heartbeat(now: dt.datetime) -> None:
    """Called by every dispatcher run (kept a day: beat runs it every second)."""
    cache.set(DISPATCHER_HEARTBEAT_KEY, now.isoformat(), 24 * 3600)


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue (None when the broker cannot be asked)."""
    from kashiwa.celery import app

    depths: dict[str, int | None] = {}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            channel = conn.default_channel
            for name in QUEUES:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # an undeclared queue has nothing waiting
                    depths[name] = 0
    except Exception:
        return dict.fromkeys(QUEUES)
    return depths


@dataclass
class OpsStatus:
    queues: dict[str, int | None]
    dispatcher_last_run: dt.datetime | None
    dispatcher_late: bool
    stuck: list[Broadcast] = field(default_factory=list)
    slow: list[Broadcast] = field(default_factory=list)
    needs_attention: int = 0
    webhook_backlog: int = 0
    #: events of the last day whose reply was not attempted: the token had expired
    webhook_replies_expired: int = 0
    #: events of the last day whose reply LINE did not accept
    webhook_replies_failed: int = 0

    @property
    def healthy(self) -> bool:
        return not (
            self.dispatcher_late
            or self.stuck
            or self.webhook_backlog
            or None in self.queues.values()
        )


def ops_status(now: dt.datetime | None = None) -> OpsStatus:
    now = now or timezone.now()
    raw = cache.get(DISPATCHER_HEARTBEAT_KEY)
    last_run = dt.datetime.fromisoformat(raw) if raw else None
    sending = Broadcast.objects.filter(status=Broadcast.Status.SENDING).select_related("author")
    return OpsStatus(
        queues=queue_depths(),
        dispatcher_last_run=last_run,
        dispatcher_late=last_run is None or now - last_run > dt.timedelta(seconds=30),
        stuck=list(sending.filter(lease_expires_at__lt=now - STUCK_AFTER).order_by("id")[:50]),
        slow=list(sending.filter(sending_started_at__lt=now - SLOW_SEND).order_by("id")[:50]),
        needs_attention=Broadcast.objects.filter(status=Broadcast.Status.NEEDS_ATTENTION).count(),
        webhook_backlog=WebhookEvent.objects.filter(
            processed_at__isnull=True, received_at__lt=now - dt.timedelta(minutes=2)
        ).count(),
        **_reply_problems(now),
    )


def _reply_problems(now: dt.datetime) -> dict[str, int]:
    """Replies of the last 24 hours that did not reach the citizen (issue 12, finding 7)."""
    from .services.replies import EXPIRED

    counts = (
        WebhookEvent.objects.filter(processed_at__gte=now - dt.timedelta(days=1))
        .exclude(error="")
        .aggregate(
            expired=Count("pk", filter=Q(error__startswith=EXPIRED)),
            failed=Count("pk", filter=~Q(error__startswith=EXPIRED)),
        )
    )
    return {
        "webhook_replies_expired": counts["expired"],
        "webhook_replies_failed": counts["failed"],
    }


def as_json(status: OpsStatus) -> dict[str, Any]:
    return {
        "healthy": status.healthy,
        "queues": status.queues,
        "dispatcher_last_run": status.dispatcher_last_run.isoformat()
        if status.dispatcher_last_run
        else None,
        "dispatcher_late": status.dispatcher_late,
        "stuck_sends": [b.pk for b in status.stuck],
        "slow_sends": [b.pk for b in status.slow],
        "needs_attention": status.needs_attention,
        "webhook_backlog": status.webhook_backlog,
        "webhook_replies_expired": status.webhook_replies_expired,
        "webhook_replies_failed": status.webhook_replies_failed,
    }
