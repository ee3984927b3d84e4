"""Reads the sender needs: LINE's broadcast-API rate, the next scheduled send."""

from __future__ import annotations

import datetime as dt

from ..models import Broadcast, Delivery


def broadcast_api_calls_since(since: dt.datetime) -> int:
    """Broadcast-API requests LINE accepted since ``since`` (LINE allows 60 an hour)."""
    return Delivery.objects.filter(
        kind=Delivery.Kind.BROADCAST, status=Delivery.Status.ACCEPTED, accepted_at__gte=since
    ).count()


def oldest_broadcast_api_call_since(since: dt.datetime) -> dt.datetime | None:
    return (
        Delivery.objects.filter(
            kind=Delivery.Kind.BROADCAST,
            status=Delivery.Status.ACCEPTED,
            accepted_at__gte=since,
        )
        .order_by("accepted_at")
        .values_list("accepted_at", flat=True)
        .first()
    )


def next_due_within(*, now: dt.datetime, within: dt.timedelta) -> dt.datetime | None:
    """When the first scheduled send falls due in ``(now, now + within]`` (the window's
    opening for held sends), if one does. One indexed query."""
    return (
        Broadcast.objects.filter(
            status=Broadcast.Status.SCHEDULED,
            scheduled_for__gt=now,
            scheduled_for__lte=now + within,
        )
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
        .first()
    )
