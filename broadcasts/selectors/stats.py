"""Reads of the statistics screens (``views/stats.py``): sends and people reached per day and
per category, from ``BroadcastStats`` and ``DailyStats`` (fetched by ``tasks/insight.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from ..models import Category
from ..schedule import JST, format_date
from . import dashboard as dash

DELIVERED = Coalesce("stats__delivered", "recipient_count", Value(0))


def percent(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part * 100 / whole, 1)


def sent_between(start: dt.date, end: dt.date, *, include_drills: bool = False) -> Any:
    """Sent broadcasts of the range; drills only when asked (issue 13 item 6)."""
    return dash.sent_between(start, end, include_drills=include_drills)


def per_day(start: dt.date, end: dt.date, *, include_drills: bool = False) -> list[dict[str, Any]]:
    """Sends and people reached per JST day (one aggregate query, plus DailyStats)."""
    rows = {
        r["day"]: r
        for r in sent_between(start, end, include_drills=include_drills)
        .order_by()
        .annotate(day=TruncDate("sent_at", tzinfo=JST))
        .values("day")
        .annotate(sends=Count("id"), delivered=Sum(DELIVERED))
    }
    daily = {d.date: d for d in dash.daily_between(start, end)}
    out = []
    d = start
    while d <= end:
        row, line = rows.get(d, {}), daily.get(d)
        out.append(
            {
                "date": d,
                "label": format_date(d),
                "sends": row.get("sends", 0),
                "delivered": row.get("delivered") or 0,
                "followers": line.followers if line else None,
                "blocks": line.blocks if line else None,
                "line_delivered": (
                    (line.broadcast_delivered or 0) + (line.multicast_delivered or 0)
                    if line and (line.broadcast_delivered is not None)
                    else None
                ),
            }
        )
        d += dt.timedelta(days=1)
    return out


def per_category(
    start: dt.date, end: dt.date, *, include_drills: bool = False
) -> list[dict[str, Any]]:
    """Sends, people reached and open rate per category: one aggregate over the range's sends
    (from the broadcast side, so only those rows are joined), plus the categories."""
    known = Q(stats__unique_impression__isnull=False)
    totals = {
        r["categories"]: r
        for r in sent_between(start, end, include_drills=include_drills)
        .order_by()
        .values("categories")
        .annotate(
            sends=Count("id"),
            delivered=Sum(DELIVERED),
            impressions=Sum("stats__unique_impression"),
            known_delivered=Sum(DELIVERED, filter=known),
        )
    }
    rows = []
    for c in Category.objects.order_by("sort_order", "id"):
        t = totals.get(c.pk, {})
        rows.append(
            {
                "category": c,
                "sends": t.get("sends", 0),
                "delivered": t.get("delivered") or 0,
                "impressions": t.get("impressions"),
                "open_rate": percent(t.get("impressions"), t.get("known_delivered")),
            }
        )
    return rows
