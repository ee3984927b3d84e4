"""Operational health for administrators: Celery queue depths, sends that stopped making
progress, webhook events nobody processed, when the dispatcher last ran, and which processes
of the embedded stack died and were restarted (``manage.py runstack``)."""

from __future__ import annotations

import datetime as dt
import signal
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext

from .models import Broadcast, OfficialFeed, WebhookEvent
from .selectors import official as official_selectors

DISPATCHER_HEARTBEAT_KEY = "ops:dispatcher-last-run"
QUEUES = ("emergency", "default")
STUCK_AFTER = dt.timedelta(minutes=2)
SLOW_SEND = dt.timedelta(minutes=30)
PROCESS_RESTARTS_KEY = "ops:process-restarts"
RESTARTS_KEPT_PER_PROCESS = 5
RESTARTS_SHOWN_FOR = dt.timedelta(days=1)


def dispatcher_heartbeat(now: dt.datetime) -> None:
    """Called by every dispatcher run (kept a day: beat runs it every second)."""
    cache.set(DISPATCHER_HEARTBEAT_KEY, now.isoformat(), 24 * 3600)


@dataclass(frozen=True)
class ProcessRestart:
    """A process of the embedded stack that exited and was started again by runstack."""

    name: str
    died_at: dt.datetime
    returncode: int
    restart_in: float

    @property
    def exit_text(self) -> str:
        """「終了コード 1」, or the signal that killed it (a negative code)."""
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return gettext("シグナル %(signal)s") % {"signal": name}
        return gettext("終了コード %(code)s") % {"code": self.returncode}


def process_restart_record(
    *, name: str, returncode: int, died_at: dt.datetime, restart_in: float
) -> None:
    """Called by runstack's supervisor (one writer) each time one of its processes exits:
    the last few deaths per process, kept a day."""
    records = cache.get(PROCESS_RESTARTS_KEY) or []
    death = {
        "name": name,
        "died_at": died_at.isoformat(),
        "returncode": returncode,
        "restart_in": restart_in,
    }
    mine = [r for r in records if r["name"] == name] + [death]
    others = [r for r in records if r["name"] != name]
    kept = others + mine[-RESTARTS_KEPT_PER_PROCESS:]
    cache.set(PROCESS_RESTARTS_KEY, kept, int(RESTARTS_SHOWN_FOR.total_seconds()))


def process_restarts(now: dt.datetime) -> list[ProcessRestart]:
    """Deaths of the last day, newest first."""
    restarts = [
        ProcessRestart(
            name=r["name"],
            died_at=dt.datetime.fromisoformat(r["died_at"]),
            returncode=r["returncode"],
            restart_in=r["restart_in"],
        )
        for r in cache.get(PROCESS_RESTARTS_KEY) or []
    ]
    recent = [r for r in restarts if r.died_at > now - RESTARTS_SHOWN_FOR]
    return sorted(recent, key=lambda r: r.died_at, reverse=True)


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
    #: processes of the embedded stack restarted in the last day (not a problem by itself:
    #: each is running again; shown so that a crash does not go unnoticed)
    restarts: list[ProcessRestart] = field(default_factory=list)
    #: JMA feeds whose last poll failed (issue 15), and official messages refused in a day
    official_feed_problems: list[OfficialFeed] = field(default_factory=list)
    official_refused: int = 0

    @property
    def healthy(self) -> bool:
        return not (
            self.dispatcher_late
            or self.official_feed_problems
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
        restarts=process_restarts(now),
        official_feed_problems=official_selectors.official_feed_problems(),
        official_refused=official_selectors.official_refused_count(now),
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
        "official_feed_problems": [
            {
                "url": f.url,
                "error": f.last_error,
                "since": f.last_error_at.isoformat() if f.last_error_at else None,
                "failures": f.consecutive_failures,
            }
            for f in status.official_feed_problems
        ],
        "official_refused": status.official_refused,
        "process_restarts": [
            {"name": r.name, "died_at": r.died_at.isoformat(), "returncode": r.returncode}
            for r in status.restarts
        ],
    }
