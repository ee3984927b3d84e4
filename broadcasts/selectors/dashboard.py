"""Reads for the dashboard, the calendar grid, statistics and history (issue 6).

Every function here runs a fixed number of queries whatever the number of rows: lists are
limited and fetched with ``select_related``/``prefetch_related``; counts are one aggregate."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber, TruncDate

from .. import permissions
from ..models import Broadcast, BroadcastEvent, BroadcastStats, Category, DailyStats, User
from ..schedule import JST, Calendar, format_date, jst_date

S = Broadcast.Status
SECTION_LIMIT = 10
PROBLEM_DAYS = 14


def _day_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start 0:00, end+1 0:00)`` in JST."""
    return (
        dt.datetime.combine(start, dt.time(0), tzinfo=JST),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=JST),
    )


# Emergencies (and drills, which follow their path) sort first wherever they appear in a
# section or a short list (issue 13 item 3); then whatever order the list has.
EMERGENCY_FIRST = Case(
    When(priority=Broadcast.Priority.EMERGENCY, then=Value(0)),
    default=Value(1),
    output_field=IntegerField(),
)


def emergency_first(qs: QuerySet[Broadcast], *order: str) -> QuerySet[Broadcast]:
    return qs.order_by(EMERGENCY_FIRST, *order)


def _rows(qs: QuerySet[Broadcast]) -> QuerySet[Broadcast]:
    return qs.select_related("author", "division").prefetch_related("categories")


@dataclass
class Section:
    """A limited list and the full count, for "and N more" links."""

    items: list[Broadcast]
    count: int

    @property
    def more(self) -> int:
        return max(self.count - len(self.items), 0)


def _section(
    qs: QuerySet[Broadcast], order: tuple[str, ...], limit: int = SECTION_LIMIT
) -> Section:
    # Always one count, so the number of queries does not depend on the number of rows.
    return Section(list(_rows(emergency_first(qs, *order))[:limit]), qs.count())


# --- awaiting my action ------------------------------------------------------------------------


def review_queue(user: User) -> Section:
    """Broadcasts awaiting review that this 広報担当 may act on, not their own: ordinary ones,
    and 時間外配信 for a 承認者 (emergencies have their own section)."""
    qs = Broadcast.objects.filter(status=S.PENDING_REVIEW).exclude(
        priority=Broadcast.Priority.EMERGENCY
    )
    if not user.has_perm("broadcasts.approve_emergency_broadcast"):
        qs = qs.filter(priority=Broadcast.Priority.NORMAL)
    return _section(qs.exclude(author=user), ("submitted_at", "id"))


def supervisor_handles(user: User) -> Section:
    """For a 広報担当 who is not a 承認者: what waits for a 承認者 (emergencies, drills and
    時間外配信), shown as 「承認者が対応します」, never as theirs to act on."""
    if user.has_perm("broadcasts.approve_emergency_broadcast"):
        return Section([], 0)
    qs = Broadcast.objects.filter(
        status=S.PENDING_REVIEW,
        priority__in=[Broadcast.Priority.EMERGENCY, Broadcast.Priority.OUT_OF_HOURS],
    )
    return _section(qs, ("submitted_at", "id"))


def emergency_approvals(user: User) -> Section:
    """Emergency broadcasts awaiting a supervisor's approval, not the user's own (承認者)."""
    qs = Broadcast.objects.filter(status=S.PENDING_REVIEW, priority=Broadcast.Priority.EMERGENCY)
    return _section(qs.exclude(author=user), ("submitted_at", "id"))


def my_drafts(user: User) -> Section:
    """The user's drafts and rejected broadcasts, rejected first (they need work)."""
    qs = Broadcast.objects.filter(author=user, status__in=[S.DRAFT, S.REJECTED])
    return _section(qs, ("-status", "-updated_at", "-id"))


def my_pending(user: User) -> Section:
    qs = Broadcast.objects.filter(author=user, status=S.PENDING_REVIEW)
    return _section(qs, ("-submitted_at", "-id"))


# --- the schedule ------------------------------------------------------------------------------


def schedule_between(start: dt.date, end: dt.date, limit: int = 50) -> list[Broadcast]:
    """Scheduled, sending and sent broadcasts whose effective send time falls on a JST day
    from ``start`` to ``end``, in time order."""
    since, until = _day_bounds(start, end)
    qs = Broadcast.objects.filter(
        status__in=[S.SCHEDULED, S.SENDING, S.SENT],
        scheduled_for__gte=since,
        scheduled_for__lt=until,
    )
    return list(_rows(qs.order_by("scheduled_for", "id"))[:limit])


def scheduled_per_day(
    start: dt.date, end: dt.date, *, per_day: int
) -> tuple[dict[dt.date, list[Broadcast]], dict[dt.date, int]]:
    """The first ``per_day`` scheduled/sending/sent broadcasts of each JST day from ``start``
    to ``end`` (time order, categories prefetched) and the number on each day.

    Three queries whatever the number of broadcasts (a window function ranks each day's
    rows), so a busy calendar stays fast; pages show "ほか N 件" for the rest."""
    since, until = _day_bounds(start, end)
    in_range = Broadcast.objects.filter(
        status__in=[S.SCHEDULED, S.SENDING, S.SENT],
        scheduled_for__gte=since,
        scheduled_for__lt=until,
    )
    day = TruncDate("scheduled_for", tzinfo=JST)
    totals = dict(in_range.annotate(day=day).values_list("day").annotate(n=Count("id")).order_by())
    first = (
        in_range.annotate(
            day=day,
            rank=Window(
                RowNumber(),
                partition_by=[day],
                order_by=[F("scheduled_for").asc(), F("id").asc()],
            ),
        )
        .filter(rank__lte=per_day)
        .prefetch_related("categories")
        .order_by("scheduled_for", "id")
    )
    by_day: dict[dt.date, list[Broadcast]] = defaultdict(list)
    for b in first:
        by_day[b.day].append(b)  # type: ignore[attr-defined]
    return dict(by_day), totals


def next_opening_day(calendar: Calendar, after: dt.date) -> dt.date:
    d = after + dt.timedelta(days=1)
    for _ in range(400):
        if calendar.is_opening_day(d):
            return d
        d += dt.timedelta(days=1)
    return d


def held_sends() -> Section:
    """Approved sends the window, the calendar or LINE's hourly limit moved later."""
    qs = Broadcast.objects.filter(status=S.SCHEDULED).exclude(hold_reason="")
    return _section(qs, ("scheduled_for", "id"))


def sending_now() -> list[Broadcast]:
    qs = Broadcast.objects.filter(status=S.SENDING)
    return list(_rows(emergency_first(qs, "sending_started_at", "id")))


def problems(now: dt.datetime) -> Section:
    """Every NEEDS_ATTENTION send and the failures of the last two weeks."""
    since = now - dt.timedelta(days=PROBLEM_DAYS)
    qs = Broadcast.objects.filter(
        Q(status=S.NEEDS_ATTENTION) | Q(status=S.FAILED, updated_at__gte=since)
    )
    return _section(qs, ("-status", "-updated_at", "-id"))


# --- the whole dashboard -----------------------------------------------------------------------


@dataclass
class WindowState:
    in_window: bool
    next_start: dt.datetime | None


def window_state(calendar: Calendar, now: dt.datetime) -> WindowState:
    if calendar.in_window(now):
        return WindowState(True, None)
    return WindowState(False, calendar.next_window_start(now))


@dataclass
class Roles:
    drafter: bool
    reviewer: bool
    supervisor: bool


def roles_of(user: User) -> Roles:
    return Roles(
        drafter=permissions.can_draft(user),
        reviewer=permissions.can_review(user),
        supervisor=user.is_active and user.has_perm("broadcasts.approve_emergency_broadcast"),
    )


@dataclass
class ScheduleDays:
    today: dt.date
    today_items: list[Broadcast]
    next_day: dt.date
    next_items: list[Broadcast]
    today_label: str = ""
    next_label: str = ""
    today_closed: str | None = None


def schedule_days(calendar: Calendar, now: dt.datetime) -> ScheduleDays:
    today = jst_date(now)
    nxt = next_opening_day(calendar, today)
    items = schedule_between(today, nxt, limit=100)
    by_day: dict[dt.date, list[Broadcast]] = defaultdict(list)
    for b in items:
        if b.scheduled_for is not None:
            by_day[jst_date(b.scheduled_for)].append(b)
    return ScheduleDays(
        today=today,
        today_items=by_day.get(today, []),
        next_day=nxt,
        next_items=by_day.get(nxt, []),
        today_label=format_date(today),
        next_label=format_date(nxt),
        today_closed=calendar.closed_reason(today),
    )


def followers_latest() -> DailyStats | None:
    """LINE's latest known follower figures (from the hourly insight job)."""
    return DailyStats.objects.filter(followers__isnull=False).order_by("-date").first()


# --- statistics --------------------------------------------------------------------------------


def sent_between(
    start: dt.date, end: dt.date, *, include_drills: bool = False
) -> QuerySet[Broadcast]:
    """SENT broadcasts sent on a JST day from ``start`` to ``end``, with their stats. Drills
    reach staff only: they count only when asked for (issue 13 item 6)."""
    since, until = _day_bounds(start, end)
    qs = Broadcast.objects.filter(status=S.SENT, sent_at__gte=since, sent_at__lt=until)
    if not include_drills:
        qs = qs.exclude(kind=Broadcast.Kind.DRILL)
    return (
        qs.select_related("author", "division", "stats")
        .prefetch_related("categories")
        .order_by("sent_at", "id")
    )


def daily_between(start: dt.date, end: dt.date) -> list[DailyStats]:
    return list(DailyStats.objects.filter(date__range=(start, end)).order_by("date"))


@dataclass
class CategoryRow:
    category: Category
    sends: int = 0
    delivered: int = 0
    impressions: int = 0
    known_impressions: int = 0  # delivered of the sends whose opens LINE reported

    @property
    def open_rate(self) -> float | None:
        if not self.known_impressions:
            return None
        return round(self.impressions * 100 / self.known_impressions, 1)


@dataclass
class StatsSummary:
    sends: int = 0
    delivered: int = 0
    impressions: int = 0
    clicks: int = 0
    by_category: list[CategoryRow] = field(default_factory=list)
    by_day: dict[dt.date, dict[str, int]] = field(default_factory=dict)


def stats_summary(broadcasts: list[Broadcast]) -> StatsSummary:
    """Totals, per category and per day, from already-fetched broadcasts (no queries but the
    categories list)."""
    rows = {c.pk: CategoryRow(c) for c in Category.objects.all()}
    summary = StatsSummary()
    for b in broadcasts:
        stats: BroadcastStats | None = getattr(b, "stats", None)
        delivered = (stats.delivered if stats else None) or b.recipient_count or 0
        impression = stats.unique_impression if stats else None
        summary.sends += 1
        summary.delivered += delivered
        summary.impressions += impression or 0
        summary.clicks += (stats.unique_click if stats else None) or 0
        if b.sent_at is not None:
            day = summary.by_day.setdefault(jst_date(b.sent_at), {"sends": 0, "delivered": 0})
            day["sends"] += 1
            day["delivered"] += delivered
        for c in b.categories.all():
            row = rows.setdefault(c.pk, CategoryRow(c))
            row.sends += 1
            row.delivered += delivered
            if impression is not None:
                row.impressions += impression
                row.known_impressions += delivered
    summary.by_category = list(rows.values())
    return summary


# --- history -----------------------------------------------------------------------------------


# A title search that matches more broadcasts than this is a common word: most events match
# it, and the newest come first in created_at order without an index on the title.
EVENTS_TITLE_IDS_MAX = 1000


def _events_matching(q: str) -> Q:
    """Events whose broadcast's title or whose comment contains ``q``. The broadcasts are
    looked up first (a trigram index on PostgreSQL), so that the events are found by their
    ``broadcast_id`` index or their comment's trigram index (one bitmap OR), not by reading
    every event and its broadcast: an OR across the join can use neither index (2.4 s at
    1,000,000 events)."""
    titled = list(
        Broadcast.objects.filter(title__icontains=q)
        .order_by()
        .values_list("pk", flat=True)[: EVENTS_TITLE_IDS_MAX + 1]
    )
    if len(titled) > EVENTS_TITLE_IDS_MAX:
        return Q(broadcast__title__icontains=q) | Q(comment__icontains=q)
    return Q(broadcast_id__in=titled) | Q(comment__icontains=q)


def events_filtered(filters: dict[str, Any]) -> QuerySet[BroadcastEvent]:
    qs = BroadcastEvent.objects.select_related("actor", "broadcast")
    if filters.get("verb"):
        qs = qs.filter(verb=filters["verb"])
    if filters.get("actor"):
        qs = qs.filter(actor=filters["actor"])
    if filters.get("broadcast"):
        qs = qs.filter(broadcast_id=filters["broadcast"])
    if filters.get("q"):
        qs = qs.filter(_events_matching(filters["q"].strip()))
    if filters.get("date_from"):
        qs = qs.filter(created_at__gte=_day_bounds(filters["date_from"], filters["date_from"])[0])
    if filters.get("date_to"):
        qs = qs.filter(created_at__lt=_day_bounds(filters["date_to"], filters["date_to"])[1])
    return qs.order_by("-created_at", "-id")
