"""Reads of the opening-day calendar."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from ..models import CalendarOverride
from ..schedule import Calendar


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
