"""When a broadcast may go out: effective send times, holds, and the emergency enqueue."""

from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.db import transaction

from .. import selectors
from ..models import Broadcast
from ..schedule import Calendar, Effective
from . import enqueue

MULTICAST_CHUNK = 500


def estimated_duration(broadcast: Broadcast, recipients: int | None = None) -> dt.timedelta:
    """How long the send will take: one call for the broadcast API, else one call per
    500 recipients at the multicast rate, plus a margin."""
    if broadcast.audience == Broadcast.Audience.ALL:
        return dt.timedelta(seconds=30)
    if recipients is None:
        recipients = selectors.recipient_count(
            broadcast.audience, broadcast.categories.values_list("id", flat=True)
        )
    calls = math.ceil(recipients / MULTICAST_CHUNK)
    return dt.timedelta(seconds=30 + calls / max(settings.MULTICAST_MAX_PER_SECOND, 1))


def schedule_for(
    broadcast: Broadcast, *, now: dt.datetime, calendar: Calendar | None = None
) -> Effective:
    calendar = calendar or selectors.calendar_load(now=now)
    return calendar.effective_send_time(
        requested=broadcast.requested_at,
        now=now,
        emergency=broadcast.is_emergency,
        estimated_duration=estimated_duration(broadcast),
    )


def enqueue_send(broadcast_id: int, *, emergency: bool) -> None:
    """Enqueue the send task after the surrounding transaction commits.

    Robust: with the broker down, the approval (already committed) must not turn into an
    error page; the failure is logged and the dispatcher, which re-reads the database every
    second once the broker is back, sends it."""
    name = enqueue.SEND_EMERGENCY_BROADCAST if emergency else enqueue.SEND_BROADCAST
    transaction.on_commit(lambda: enqueue.task_send(name, args=(broadcast_id,)), robust=True)


def enqueue_emergency_send(broadcast_id: int) -> None:
    enqueue_send(broadcast_id, emergency=True)
