"""The calendar as a picture: a month grid and a week grid (issue 6).

Opening and closed days (with the reason), and the scheduled, sending and sent broadcasts of
each day by category colour and name, each a link to the broadcast. No drag and drop: this is
for looking; changes are made on the broadcast. Keyboard users move with Tab through the
links and the previous/next links; each day is a table cell with its date as a header.

Three queries whatever the number of broadcasts: overrides, the first few broadcasts of each
day (a window function), the count per day. A busy day shows its first entries and
"ほか N 件" linking to the list filtered to that day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from ..forms.fields import date_in_range
from ..models import Broadcast, CalendarOverride
from ..schedule import Calendar, format_hm, jst_date
from ..selectors import dashboard as dash
from ..templatetags.kashiwa import WEEKDAYS, display_date

PER_DAY = 4
# Sunday first, as on Japanese wall calendars.
WEEKDAY_ORDER = (6, 0, 1, 2, 3, 4, 5)


@dataclass
class GridDay:
    date: dt.date
    label: str
    in_month: bool
    is_open: bool
    closed_reason: str | None
    is_override: bool
    is_today: bool
    entries: list[Broadcast] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return max(self.total - len(self.entries), 0)

    @property
    def iso(self) -> str:
        return self.date.isoformat()


def _week_start(d: dt.date) -> dt.date:
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def grid_days(
    start: dt.date, end: dt.date, *, today: dt.date, month: int | None = None
) -> list[GridDay]:
    """Every day from ``start`` to ``end`` with its status and its first broadcasts."""
    overrides = {
        o.date: (o.is_open, o.reason)
        for o in CalendarOverride.objects.filter(date__range=(start, end))
    }
    calendar = Calendar.from_settings(overrides)
    by_day, totals = dash.scheduled_per_day(start, end, per_day=PER_DAY)
    days = []
    d = start
    while d <= end:
        reason = calendar.closed_reason(d)
        days.append(
            GridDay(
                date=d,
                label=display_date(d),
                in_month=month is None or d.month == month,
                is_open=reason is None,
                closed_reason=reason,
                is_override=d in overrides,
                is_today=d == today,
                entries=by_day.get(d, []),
                total=totals.get(d, 0),
            )
        )
        d += dt.timedelta(days=1)
    return days


def _weekday_headers() -> list[str]:
    return [str(WEEKDAYS[i]) for i in WEEKDAY_ORDER]


def _window_text() -> str:
    calendar = Calendar.from_settings()
    return f"{format_hm(calendar.window_start)}〜{format_hm(calendar.window_end)}"


def _check(request: HttpRequest) -> None:
    if not request.user.has_perm("broadcasts.view_broadcast"):
        raise PermissionDenied


def _parse_month(value: str) -> dt.date:
    year, month = (int(x) for x in value.split("-"))
    return dt.date(year, month, 1)


def _requested_day(
    request: HttpRequest, name: str, parse: Callable[[str], dt.date], error: str
) -> dt.date | None:
    """The day ``?<name>=`` asks for, or None (with a message) when it is absent, malformed or
    so far off that the grid around it would run past the dates Python can hold."""
    value = request.GET.get(name, "")
    if not value:
        return None
    try:
        day = parse(value)
    except ValueError:
        day = None
    if day is None or not date_in_range(day):
        messages.error(request, error)
        return None
    return day


@require_GET
def calendar_month(request: HttpRequest) -> HttpResponse:
    """``?month=YYYY-MM`` (default: this month in JST)."""
    _check(request)
    today = jst_date(timezone.now())
    error = gettext(
        "表示する月の指定が正しくありません（例: 2026-12、2000年〜2099年）。今月を表示します。"
    )
    first = _requested_day(request, "month", _parse_month, error) or today
    first = first.replace(day=1)
    next_month = (first + dt.timedelta(days=32)).replace(day=1)
    last = next_month - dt.timedelta(days=1)
    start = _week_start(first)
    end = _week_start(last) + dt.timedelta(days=6)
    days = grid_days(start, end, today=today, month=first.month)
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    previous = (first - dt.timedelta(days=1)).replace(day=1)
    return render(
        request,
        "broadcasts/calendar_grid.html",
        {
            "mode": "month",
            "title": date_format(first, "YEAR_MONTH_FORMAT"),
            "weeks": weeks,
            "weekdays": _weekday_headers(),
            "prev_query": f"month={previous:%Y-%m}",
            "next_query": f"month={next_month:%Y-%m}",
            "prev_label": date_format(previous, "YEAR_MONTH_FORMAT"),
            "next_label": date_format(next_month, "YEAR_MONTH_FORMAT"),
            "window": _window_text(),
        },
    )


@require_GET
def calendar_week(request: HttpRequest) -> HttpResponse:
    """``?week=YYYY-MM-DD`` (any day of the week; default: this week in JST)."""
    _check(request)
    today = jst_date(timezone.now())
    error = gettext(
        "表示する週の指定が正しくありません（例: 2026-12-01、2000年〜2099年）。今週を表示します。"
    )
    anchor = _requested_day(request, "week", dt.date.fromisoformat, error) or today
    start = _week_start(anchor)
    end = start + dt.timedelta(days=6)
    days = grid_days(start, end, today=today)
    previous, following = start - dt.timedelta(days=7), start + dt.timedelta(days=7)
    return render(
        request,
        "broadcasts/calendar_grid.html",
        {
            "mode": "week",
            "title": f"{display_date(start)}〜{display_date(end)}",
            "weeks": [days],
            "weekdays": _weekday_headers(),
            "prev_query": f"week={previous.isoformat()}",
            "next_query": f"week={following.isoformat()}",
            "prev_label": gettext("%(d)sの週") % {"d": display_date(previous)},
            "next_label": gettext("%(d)sの週") % {"d": display_date(following)},
            "window": _window_text(),
        },
    )
