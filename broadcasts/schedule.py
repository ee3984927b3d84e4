"""Opening days (開庁日) and the send window: pure time logic, no ORM (DESIGN.md §4).

Policy 5(1): ordinary sends go out only on opening days between 8:30 and 17:15 Japan time;
emergencies at any time. An opening day is the admin's ``CalendarOverride`` for that date if
there is one, else a weekday that is not a national holiday (``holidays`` JP, which includes
振替休日 and 国民の休日) and not in the year-end break 12/29–1/3.

Every function takes aware datetimes (any time zone) and returns aware datetimes in JST.
Naive datetimes are refused: a silent guess at the zone is how sends go out at 3 a.m.
The caller supplies ``now``; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays

JST = ZoneInfo("Asia/Tokyo")

WEEKDAY_KANJI = "月火水木金土日"
YEAR_END_REASON = "年末年始（12/29〜1/3）"
EMERGENCY_REASON = "緊急配信のため直ちに送信されます"
OUT_OF_HOURS_REASON = "時間外配信（市が必要と認める場合）のため直ちに送信されます"
OUT_OF_HOURS_NOT_GRANTED = (
    "時間外配信は、承認者が二要素認証のうえこの内容を承認するまで配信時間内にしか送信されません"
)
# How recent the approver's second factor must be when they approve (the same five minutes as
# an emergency approval).
SECOND_FACTOR_MAX_AGE = timedelta(minutes=5)
# Clock skew tolerated between the web process that verified the code and the approval.
_SECOND_FACTOR_SKEW = timedelta(seconds=5)

# How far ahead ``next_window_start`` looks before giving up. Only a calendar whose overrides
# close every day for a year could exhaust it; that is a data error worth a loud failure.
_MAX_DAYS_AHEAD = 400

# The holidays package names the substitute and "sandwiched" days; they are 休日, not 祝日.
_NON_FESTIVAL_HOLIDAYS = frozenset({"振替休日", "国民の休日"})


@lru_cache(maxsize=64)
def _jp_holidays(year: int) -> Mapping[date, str]:
    """The national holidays of one year, names in Japanese.

    Built once per year and frozen into a plain mapping: ``HolidayBase`` lookups are far
    slower than a dict, and the dispatcher asks often."""
    calendar = holidays.country_holidays("JP", years=year, language="ja")
    return MappingProxyType(dict(calendar.items()))


def holiday_name(d: date) -> str | None:
    """The Japanese name of the national holiday on ``d`` (e.g. 「文化の日」, 「振替休日」)."""
    return _jp_holidays(d.year).get(d)


def is_year_end_break(d: date) -> bool:
    """12/29–1/3, when the city office is closed (条例の休日)."""
    return (d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)


def _require_aware(t: datetime, name: str = "t") -> None:
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {t!r}")


def to_jst(t: datetime) -> datetime:
    """``t`` (aware, any zone) as JST."""
    _require_aware(t)
    return t.astimezone(JST)


def jst_date(t: datetime) -> date:
    """The calendar date in Japan at instant ``t``."""
    return to_jst(t).date()


def format_hm(t: time | datetime) -> str:
    """``8:30``: hour without zero padding, two-digit minutes."""
    return f"{t.hour}:{t.minute:02d}"


def format_date(d: date) -> str:
    """``12/1(月)``: month/day without zero padding, weekday kanji in parentheses."""
    return f"{d.month}/{d.day}({WEEKDAY_KANJI[d.weekday()]})"


def format_jst(t: datetime, *, with_date: bool = True) -> str:
    """``12/1(月) 8:30`` (or ``8:30`` without the date), in JST whatever the zone of ``t``."""
    local = to_jst(t)
    if not with_date:
        return format_hm(local)
    return f"{format_date(local.date())} {format_hm(local)}"


def format_duration(d: timedelta) -> str:
    """``約 1 時間 30 分`` / ``約 45 分`` (rounded up to the minute)."""
    minutes = -(-int(d.total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"約 {hours} 時間 {minutes} 分"
    if hours:
        return f"約 {hours} 時間"
    return f"約 {minutes} 分"


def parse_hhmm(value: str) -> time:
    """``"08:30"`` or ``"8:30"`` → ``time(8, 30)``; anything else raises ``ValueError``."""
    hours, sep, minutes = value.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected HH:MM, got {value!r}")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class Effective:
    """When a broadcast will actually go out, and why, for staff to read.

    ``at`` is aware and in JST. ``held`` is True when the window or the calendar moved the
    send later than ``max(requested, now)``."""

    at: datetime
    held: bool
    reason: str


@dataclass(frozen=True)
class OutOfHoursApproval:
    """A 時間外配信's approval as the window sees it (policy 5(1) 「市が必要と認める場合」).

    The caller reads these from the database; this module only decides. The send may leave the
    window only if a 承認者 (supervisor, not a writer of the content) approved exactly the
    current content, having verified their second factor in the five minutes before approving.
    Anything missing or inconsistent keeps the send inside the window."""

    by_supervisor: bool
    approved_at: datetime | None
    second_factor_verified_at: datetime | None
    approved_hash: str
    content_hash: str

    def grants(self) -> bool:
        if not self.by_supervisor or self.approved_at is None:
            return False
        if self.second_factor_verified_at is None:
            return False
        _require_aware(self.approved_at, "approved_at")
        _require_aware(self.second_factor_verified_at, "second_factor_verified_at")
        verified, approved = self.second_factor_verified_at, self.approved_at
        if not (approved - SECOND_FACTOR_MAX_AGE <= verified <= approved + _SECOND_FACTOR_SKEW):
            return False
        return bool(self.approved_hash) and self.approved_hash == self.content_hash


@dataclass(frozen=True)
class Calendar:
    """The city's calendar: overrides by date plus the daily send window ``[start, end)`` JST.

    ``overrides`` maps a date to ``(is_open, reason)``, as loaded from ``CalendarOverride``
    by the caller (this module never touches the database)."""

    overrides: Mapping[date, tuple[bool, str]] = field(default_factory=dict)
    window_start: time = time(8, 30)
    window_end: time = time(17, 15)

    def __post_init__(self) -> None:
        if self.window_start.tzinfo is not None or self.window_end.tzinfo is not None:
            raise ValueError("window times are wall-clock JST; give them without tzinfo")
        if self.window_start >= self.window_end:
            raise ValueError(
                f"send window start {self.window_start} must be before end {self.window_end}"
            )

    @classmethod
    def from_settings(cls, overrides: Mapping[date, tuple[bool, str]] | None = None) -> Calendar:
        """A calendar with the window from ``settings.SEND_WINDOW_START``/``END`` ("HH:MM")."""
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        try:
            start = parse_hhmm(settings.SEND_WINDOW_START)
            end = parse_hhmm(settings.SEND_WINDOW_END)
            return cls(overrides=dict(overrides or {}), window_start=start, window_end=end)
        except ValueError as exc:
            raise ImproperlyConfigured(f"SEND_WINDOW_START/SEND_WINDOW_END: {exc}") from exc

    # --- days -----------------------------------------------------------------------------

    def is_opening_day(self, d: date) -> bool:
        override = self.overrides.get(d)
        if override is not None:
            return override[0]
        return d.weekday() < 5 and not is_year_end_break(d) and holiday_name(d) is None

    def closed_reason(self, d: date) -> str | None:
        """``None`` on an opening day; else why the office is closed, in Japanese.

        Order: the admin's override reason; a national holiday (「祝日（文化の日）」, or
        「休日（振替休日）」/「休日（国民の休日）」, which the law calls 休日 not 祝日); the
        year-end break; 「土曜日」/「日曜日」."""
        override = self.overrides.get(d)
        if override is not None:
            is_open, reason = override
            return None if is_open else (reason or "臨時閉庁日")
        if self.is_opening_day(d):
            return None
        name = holiday_name(d)
        if name is not None:
            kind = "休日" if name in _NON_FESTIVAL_HOLIDAYS else "祝日"
            return f"{kind}（{name}）"
        if is_year_end_break(d):
            return YEAR_END_REASON
        return "土曜日" if d.weekday() == 5 else "日曜日"

    # --- the window -----------------------------------------------------------------------

    @property
    def window_length(self) -> timedelta:
        day = date(2000, 1, 3)
        return datetime.combine(day, self.window_end) - datetime.combine(day, self.window_start)

    def window_bounds(self, d: date) -> tuple[datetime, datetime]:
        """``(start, end)`` of the send window on ``d``, aware JST (whether or not ``d`` opens)."""
        return (
            datetime.combine(d, self.window_start, tzinfo=JST),
            datetime.combine(d, self.window_end, tzinfo=JST),
        )

    def in_window(self, t: datetime) -> bool:
        """Whether ``t`` falls on an opening day within ``[start, end)``: 8:30:00 is in,
        17:15:00 is out."""
        local = to_jst(t)
        if not self.is_opening_day(local.date()):
            return False
        start, end = self.window_bounds(local.date())
        return start <= local < end

    def next_window_start(self, t: datetime) -> datetime:
        """``t`` itself (in JST) when it is inside a window; otherwise the first window start
        at or after ``t``."""
        local = to_jst(t)
        if self.in_window(local):
            return local
        d = local.date()
        if self.is_opening_day(d) and local < self.window_bounds(d)[0]:
            return self.window_bounds(d)[0]
        for _ in range(_MAX_DAYS_AHEAD):
            d += timedelta(days=1)
            if self.is_opening_day(d):
                return self.window_bounds(d)[0]
        raise ValueError(f"no opening day within {_MAX_DAYS_AHEAD} days after {d}")

    def _next_full_window_start(self, t: datetime) -> datetime:
        """The next window start at or after ``t``, never a point in the middle of a window."""
        s = self.next_window_start(t)
        start, end = self.window_bounds(s.date())
        return s if s == start else self.next_window_start(end)

    # --- the decision ---------------------------------------------------------------------

    def effective_send_time(
        self,
        *,
        requested: datetime | None,
        now: datetime,
        emergency: bool,
        estimated_duration: timedelta = timedelta(0),
        out_of_hours: OutOfHoursApproval | None = None,
    ) -> Effective:
        """When a send requested for ``requested`` (``None`` = as soon as possible) goes out.

        A requested time in the past counts as ``now``. Emergencies go at that instant, at
        any hour. Ordinary sends go at that instant if it is inside a window and the send is
        expected to finish (``estimated_duration``) by that day's window end; otherwise at
        the next window start — held whole, never split across days. A send longer than a
        whole window starts at the next full window's start anyway, and the reason says so.

        A 時間外配信 (``out_of_hours`` given) goes at that instant like an emergency only when
        its approval ``grants()`` it; otherwise it is an ordinary send and the reason says
        why it waits.
        """
        _require_aware(now, "now")
        if requested is not None:
            _require_aware(requested, "requested")
        if estimated_duration < timedelta(0):
            raise ValueError("estimated_duration must not be negative")
        now = to_jst(now)
        base = now if requested is None or requested <= now else to_jst(requested)

        if emergency:
            if base == now:
                return Effective(at=base, held=False, reason=EMERGENCY_REASON)
            return Effective(
                at=base, held=False, reason=f"緊急配信のため {format_jst(base)} に送信されます"
            )

        if out_of_hours is not None:
            if out_of_hours.grants():
                if base == now:
                    return Effective(at=base, held=False, reason=OUT_OF_HOURS_REASON)
                return Effective(
                    at=base,
                    held=False,
                    reason=f"時間外配信（市が必要と認める場合）のため {format_jst(base)} に送信されます",
                )
            ordinary = self.effective_send_time(
                requested=requested,
                now=now,
                emergency=False,
                estimated_duration=estimated_duration,
            )
            if not ordinary.held:
                return ordinary
            return Effective(
                at=ordinary.at,
                held=True,
                reason=f"{OUT_OF_HOURS_NOT_GRANTED}（{ordinary.reason}）",
            )

        if estimated_duration > self.window_length:
            at = self._next_full_window_start(base)
            return Effective(
                at=at,
                held=at > base,
                reason=(
                    f"配信に{format_duration(estimated_duration)}かかる見込みで"
                    f"配信時間（{format_hm(self.window_start)}〜{format_hm(self.window_end)}）"
                    f"に収まりませんが、{format_jst(at)} から送信を始めます"
                ),
            )

        at = self.next_window_start(base)
        if at + estimated_duration > self.window_bounds(at.date())[1]:
            at = self.next_window_start(self.window_bounds(at.date())[1])
        if at == base:
            reason = "直ちに送信されます" if base == now else f"{format_jst(at)} に送信されます"
            return Effective(at=at, held=False, reason=reason)
        return Effective(at=at, held=True, reason=self._hold_reason(base, at))

    def _hold_reason(self, base: datetime, at: datetime) -> str:
        d = base.date()
        if not self.is_opening_day(d):
            why = self.closed_reason(d)
            # Weekends need no explanation; holidays and admin closures do.
            detail = "" if why in ("土曜日", "日曜日") else f"（{why}）"
            return f"{format_date(d)}は閉庁日{detail}のため {format_jst(at)} に送信されます"
        start, end = self.window_bounds(d)
        if base >= end:
            return f"{format_hm(self.window_end)} 以降のため {format_jst(at)} に送信されます"
        if base < start and at == start:
            return (
                f"{format_hm(self.window_start)} 前のため "
                f"{format_jst(at, with_date=False)} に送信されます"
            )
        return (
            f"{format_hm(self.window_end)} までに配信が終わらない見込みのため "
            f"{format_jst(at)} に送信されます"
        )
