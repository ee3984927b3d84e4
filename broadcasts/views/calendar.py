"""The calendar page: the next 60 days, opening or closed and why, with the sends of each day.

Two reads, whatever the number of days or broadcasts (plus one for the categories)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from broadcasts import selectors
from broadcasts.models import Broadcast, CalendarOverride
from broadcasts.permissions import can_administer
from broadcasts.schedule import Calendar, format_hm, format_jst, jst_date
from broadcasts.selectors.dashboard import scheduled_per_day
from broadcasts.templatetags.kashiwa import display_date

CALENDAR_DAYS = 60
# A busy day shows its first entries and "ほか N 件" (keeps the page fast with many sends).
CALENDAR_PER_DAY = 5


# --- the page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEntry:
    broadcast: Broadcast
    time: str  # 10:00 JST


@dataclass(frozen=True)
class CalendarDay:
    date: date
    label: str  # 12/1(火)
    is_open: bool
    closed_reason: str | None
    override: CalendarOverride | None
    is_today: bool
    entries: list[CalendarEntry] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return max(self.total - len(self.entries), 0)

    @property
    def iso(self) -> str:
        return self.date.isoformat()


def calendar_days(*, today: date, days: int = CALENDAR_DAYS) -> list[CalendarDay]:
    end = today + timedelta(days=days - 1)
    overrides = selectors.calendar_overrides_between(today, end)
    calendar = Calendar.from_settings({d: (o.is_open, o.reason) for d, o in overrides.items()})
    by_day: dict[date, list[CalendarEntry]] = defaultdict(list)
    firsts, totals = scheduled_per_day(today, end, per_day=CALENDAR_PER_DAY)
    for day_broadcasts in firsts.values():
        for broadcast in day_broadcasts:
            if broadcast.scheduled_for is None:  # excluded by the filter; keeps types honest
                continue
            entry = CalendarEntry(broadcast, format_jst(broadcast.scheduled_for, with_date=False))
            by_day[jst_date(broadcast.scheduled_for)].append(entry)
    result = []
    for offset in range(days):
        d = today + timedelta(days=offset)
        reason = calendar.closed_reason(d)
        result.append(
            CalendarDay(
                date=d,
                label=display_date(d),
                is_open=reason is None,
                closed_reason=reason,
                override=overrides.get(d),
                is_today=offset == 0,
                entries=by_day.get(d, []),
                total=totals.get(d, 0),
            )
        )
    return result


def calendar_view(request: HttpRequest) -> HttpResponse:
    today = jst_date(timezone.now())
    days = calendar_days(today=today)
    calendar = Calendar.from_settings()
    is_admin = can_administer(request.user)  # type: ignore[arg-type]
    return render(
        request,
        "broadcasts/calendar.html",
        {
            "days": days,
            "first": days[0],
            "last": days[-1],
            "window": f"{format_hm(calendar.window_start)}〜{format_hm(calendar.window_end)}",
            "can_edit_calendar": is_admin,
            "override_add_url": reverse("admin:broadcasts_calendaroverride_add")
            if is_admin
            else "",
        },
    )
