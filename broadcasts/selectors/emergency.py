"""Emergency drills: when the last one went out."""

from __future__ import annotations

import datetime as dt

from ..models import Broadcast

DRILL_INTERVAL = dt.timedelta(days=30)


def last_drill_sent_at() -> dt.datetime | None:
    """When the last emergency drill (訓練) went out, if ever."""
    return (
        Broadcast.objects.filter(kind=Broadcast.Kind.DRILL, status=Broadcast.Status.SENT)
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )


def drill_overdue(now: dt.datetime) -> bool:
    """No drill was sent in the last 30 days: the dashboard reminds staff to run one."""
    return not Broadcast.objects.filter(
        kind=Broadcast.Kind.DRILL,
        status=Broadcast.Status.SENT,
        sent_at__gt=now - DRILL_INTERVAL,
        sent_at__lte=now,
    ).exists()
