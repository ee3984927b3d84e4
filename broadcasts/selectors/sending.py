"""Reads the sender needs: LINE's broadcast-API rate."""

from __future__ import annotations

import datetime as dt

from ..models import Delivery


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
