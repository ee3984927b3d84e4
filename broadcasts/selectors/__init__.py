"""Every non-trivial read (HackSoft styleguide: selectors).

One module per domain, mirroring ``services``; the dashboard's reads are in ``dashboard``.
The functions below are re-exported: ``from broadcasts import selectors; selectors.X``."""

from .calendar import calendar_load, calendar_overrides_between
from .citizens import (
    followers_active,
    followers_for_audience,
    recipient_count,
    recipient_ids_stream,
)
from .emergency import DRILL_INTERVAL, drill_overdue, last_drill_sent_at
from .sending import broadcast_api_calls_since, next_due_within, oldest_broadcast_api_call_since

__all__ = [
    "DRILL_INTERVAL",
    "broadcast_api_calls_since",
    "calendar_load",
    "calendar_overrides_between",
    "drill_overdue",
    "followers_active",
    "followers_for_audience",
    "last_drill_sent_at",
    "next_due_within",
    "oldest_broadcast_api_call_since",
    "recipient_count",
    "recipient_ids_stream",
]
