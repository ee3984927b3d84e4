"""LINE's numbers: message quota, per-broadcast statistics and daily account figures.

Everything here talks to LINE through the gateway and stores what it learns in
``BroadcastStats`` / ``DailyStats``; pages read those rows, never LINE itself (except the quota,
which is cached for a minute). Run in the background by ``tasks/insight.py`` (hourly in beat, and
on demand from the statistics pages).

LINE's rules, which the sandbox imitates: a day's numbers are "unready" until the next day;
numbers under 20 are hidden (``null``) for privacy; message-event statistics exist only for
broadcast/narrowcast requests (not multicast) and only for 14 days after the send.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from ..line.errors import LineError, LineTemporaryError
from ..line.gateway import LineGateway, get_gateway
from ..models import Broadcast, BroadcastStats, DailyStats, Delivery
from ..schedule import jst_date
from . import audiences

logger = logging.getLogger(__name__)

QUOTA_CACHE_KEY = "line:quota:v1"
QUOTA_CACHE_SECONDS = 60
# A failed quota call is remembered briefly so a dashboard poll does not hammer LINE.
QUOTA_ERROR_CACHE_SECONDS = 15
# LINE keeps message-event statistics for 14 days after the send.
STATS_DAYS = 14
# A broadcast's numbers keep changing for a while after the send; refresh at most this often.
STATS_REFRESH_INTERVAL = dt.timedelta(minutes=55)
DAILY_DAYS = 7


# --- the monthly quota -------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaInfo:
    """The month's message quota as the dashboard shows it. ``ok`` False: LINE unreachable."""

    ok: bool
    type: str = ""
    value: int | None = None
    consumption: int | None = None
    error: str = ""
    fetched_at: dt.datetime | None = None

    @property
    def unlimited(self) -> bool:
        return self.ok and self.type == "none"

    @property
    def percent(self) -> int | None:
        if not self.ok or not self.value or self.consumption is None:
            return None
        return min(round(self.consumption * 100 / self.value), 100)

    @property
    def remaining(self) -> int | None:
        if self.value is None or self.consumption is None:
            return None
        return max(self.value - self.consumption, 0)


def line_quota_cached(*, gateway: LineGateway | None = None) -> QuotaInfo:
    """The quota and this month's consumption, from the cache (60 s) or LINE.

    Never raises: when LINE cannot be reached the result says so (``ok=False``)."""
    cached = cache.get(QUOTA_CACHE_KEY)
    if isinstance(cached, QuotaInfo):
        return cached
    now = timezone.now()
    try:
        quota = (gateway or get_gateway()).quota()
    except LineError as exc:
        logger.warning("LINE quota unavailable: %s", exc.describe())
        info = QuotaInfo(ok=False, error=exc.describe(), fetched_at=now)
        cache.set(QUOTA_CACHE_KEY, info, QUOTA_ERROR_CACHE_SECONDS)
        return info
    from .sending.quota import quota_plan_remember

    quota_plan_remember(quota.type)
    info = QuotaInfo(
        ok=True,
        type=quota.type,
        value=quota.value,
        consumption=quota.consumption,
        fetched_at=now,
    )
    cache.set(QUOTA_CACHE_KEY, info, QUOTA_CACHE_SECONDS)
    return info


# --- per broadcast -----------------------------------------------------------------------------


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def broadcast_stats_fetch(
    *, broadcast: Broadcast, gateway: LineGateway | None = None, now: dt.datetime | None = None
) -> BroadcastStats:
    """Ask LINE for one sent broadcast's numbers by its stored request ids and store them.

    Broadcast-API sends get LINE's message-event insight. Multicast sends (category
    subscribers) have no insight on LINE: ``delivered`` is what LINE accepted (our records),
    opens and clicks stay unknown."""
    now = now or timezone.now()
    deliveries = list(
        broadcast.deliveries.filter(status=Delivery.Status.ACCEPTED)
        .exclude(request_id="")
        .order_by("seq")
        .values("kind", "request_id", "recipient_count")
    )
    insight_ids = [d["request_id"] for d in deliveries if d["kind"] == Delivery.Kind.BROADCAST]
    raw: dict[str, Any]
    if insight_ids:
        gateway = gateway or get_gateway()
        events = [gateway.message_event(request_id=rid) for rid in insight_ids]
        delivered = _sum([e.delivered for e in events])
        impression = _sum([e.unique_impression for e in events])
        click = _sum([e.unique_click for e in events])
        ready = all(e.ready for e in events)
        raw = {
            "source": "line",
            "events": {rid: e.raw for rid, e in zip(insight_ids, events, strict=True)},
        }
    else:
        delivered = sum(d["recipient_count"] for d in deliveries) if deliveries else None
        impression = click = None
        ready = True
        raw = {"source": "app", "note": "マルチキャスト配信は LINE の開封数の集計対象外です"}
        # Targeted sends carry a custom aggregation unit: LINE's opens and clicks per unit.
        unit = audiences.unit_stats_fetch(
            broadcast=broadcast, gateway=gateway or get_gateway(), now=now
        )
        if unit is not None:
            impression, click = unit.unique_impression, unit.unique_click
            ready = impression is not None or bool(unit.raw.get("messages"))
            raw = {"source": "line_unit", "unit": unit.raw}
    stats, _ = BroadcastStats.objects.update_or_create(
        broadcast=broadcast,
        defaults={
            "fetched_at": now,
            "ready": ready,
            "delivered": delivered,
            "unique_impression": impression,
            "unique_click": click,
            "raw": raw,
        },
    )
    return stats


def broadcasts_needing_stats(*, now: dt.datetime) -> list[int]:
    """Sent in the last 14 days and never fetched, not ready yet, or fetched over ~1 h ago."""
    return list(
        Broadcast.objects.filter(
            status=Broadcast.Status.SENT, sent_at__gte=now - dt.timedelta(days=STATS_DAYS)
        )
        .filter(
            Q(stats__isnull=True)
            | Q(stats__ready=False)
            | Q(stats__fetched_at__lt=now - STATS_REFRESH_INTERVAL)
        )
        .order_by("-sent_at")
        .values_list("pk", flat=True)[:500]
    )


def broadcasts_stats_refresh(
    *, gateway: LineGateway | None = None, now: dt.datetime | None = None
) -> int:
    """Refresh the numbers of recently sent broadcasts. Stops at LINE's temporary errors
    (the next run continues); a permanent error for one broadcast is logged and skipped."""
    now = now or timezone.now()
    gateway = gateway or get_gateway()
    done = 0
    for broadcast in Broadcast.objects.filter(pk__in=broadcasts_needing_stats(now=now)):
        try:
            broadcast_stats_fetch(broadcast=broadcast, gateway=gateway, now=now)
        except LineTemporaryError as exc:
            logger.warning("insight: LINE unavailable, stopping: %s", exc.describe())
            break
        except LineError as exc:
            logger.warning("insight: broadcast %s: %s", broadcast.pk, exc.describe())
            continue
        done += 1
    return done


# --- per day -----------------------------------------------------------------------------------


def daily_stats_fetch(
    *, day: dt.date, gateway: LineGateway | None = None, now: dt.datetime | None = None
) -> DailyStats:
    """Followers and messages delivered on one JST day, from LINE."""
    gateway = gateway or get_gateway()
    date = day.strftime("%Y%m%d")
    followers = gateway.follower_stats(date=date)
    broadcast = gateway.delivery_count(endpoint="broadcast", date=date)
    multicast = gateway.delivery_count(endpoint="multicast", date=date)
    stats, _ = DailyStats.objects.update_or_create(
        date=day,
        defaults={
            "fetched_at": now or timezone.now(),
            "followers": followers.followers,
            "targeted_reaches": followers.targeted_reaches,
            "blocks": followers.blocks,
            "broadcast_delivered": broadcast.success,
            "multicast_delivered": multicast.success,
            "raw": {
                "followers": followers.status,
                "broadcast": broadcast.status,
                "multicast": multicast.status,
            },
        },
    )
    return stats


def daily_stats_refresh(
    *, gateway: LineGateway | None = None, now: dt.datetime | None = None, days: int = DAILY_DAYS
) -> int:
    """Fetch the last ``days`` JST days (up to yesterday) that are missing or were unready."""
    now = now or timezone.now()
    today = jst_date(now)
    wanted = [today - dt.timedelta(days=n) for n in range(1, days + 1)]
    complete = set(
        DailyStats.objects.filter(date__in=wanted, raw__followers="ready")
        .filter(raw__broadcast__in=["ready", "unavailable_for_privacy"])
        .values_list("date", flat=True)
    )
    gateway = gateway or get_gateway()
    done = 0
    for day in wanted:
        if day in complete:
            continue
        try:
            daily_stats_fetch(day=day, gateway=gateway, now=now)
        except LineTemporaryError as exc:
            logger.warning("insight: LINE unavailable, stopping: %s", exc.describe())
            break
        except LineError as exc:
            logger.warning("insight: %s: %s", day, exc.describe())
            continue
        done += 1
    return done


def insight_refresh(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The hourly job: recent broadcasts' numbers, then the last week's daily figures."""
    now = now or timezone.now()
    return {
        "broadcasts": broadcasts_stats_refresh(now=now),
        "days": daily_stats_refresh(now=now),
    }
