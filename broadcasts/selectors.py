"""Every non-trivial read (HackSoft styleguide: selectors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from .models import Broadcast, CalendarOverride, Delivery, Follower
from .schedule import Calendar


def calendar_load(*, now: dt.datetime) -> Calendar:
    """The opening-day calendar with the admin overrides from the day before ``now`` (JST) on.

    ``now`` is the caller's clock reading: which overrides matter depends on it, so reading
    the wall clock here made the calendar disagree with the ``now`` it was used with."""
    since = timezone.localdate(now) - dt.timedelta(days=1)
    overrides = {
        o.date: (o.is_open, o.reason) for o in CalendarOverride.objects.filter(date__gte=since)
    }
    return Calendar.from_settings(overrides=overrides)


def calendar_overrides_between(start: dt.date, end: dt.date) -> dict[dt.date, CalendarOverride]:
    """The admins' overrides from ``start`` to ``end`` inclusive, by date: one query."""
    return {o.date: o for o in CalendarOverride.objects.filter(date__range=(start, end))}


def followers_active() -> QuerySet[Follower]:
    return Follower.objects.filter(unfollowed_at__isnull=True)


def followers_for_audience(audience: str, category_ids: Iterable[int]) -> QuerySet[Follower]:
    """Who a broadcast reaches. ALL is sent with the broadcast API, so this is an estimate
    from our follower table; the others are exactly the multicast recipients."""
    active = followers_active()
    if audience == Broadcast.Audience.STAFF_TEST:
        return active.filter(is_staff_test_recipient=True)
    if audience == Broadcast.Audience.SUBSCRIBERS:
        through = Follower.categories.through
        return active.filter(
            Exists(
                through.objects.filter(
                    follower_id=OuterRef("pk"), category_id__in=list(category_ids)
                )
            )
        )
    return active


def recipient_count(audience: str, category_ids: Iterable[int]) -> int:
    return followers_for_audience(audience, category_ids).count()


def recipient_ids_stream(
    audience: str, category_ids: Iterable[int], chunk_size: int = 500
) -> Iterator[list[str]]:
    """Recipient LINE user IDs in chunks, streamed from the database (never all at once)."""
    rows = (
        followers_for_audience(audience, category_ids)
        .order_by("id")
        .values_list("line_user_id", flat=True)
        .iterator(chunk_size=2000)
    )
    chunk: list[str] = []
    for user_id in rows:
        chunk.append(user_id)
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
