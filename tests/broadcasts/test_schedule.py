"""Opening days and the send window (broadcasts/schedule.py), against the Cabinet Office list."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from broadcasts import schedule
from broadcasts.schedule import JST, Calendar, Effective, format_jst, jst_date

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLIDAYS_CSV = REPO_ROOT / "tests" / "data" / "jp_holidays_cabinet_office.csv"
# CI clones the repository with ``shared/`` beside it, as on the development machine.
SHARED_HOLIDAYS_CSV = REPO_ROOT.parent / "shared" / "data" / "jp_holidays_cabinet_office.csv"
FIRST_YEAR, LAST_YEAR = 2016, 2027

# Where the Cabinet Office's wording differs from the holidays package's name for the day.
# (Generic 「休日」 rows are checked separately below.)
CABINET_OFFICE_WORDING = {
    date(2019, 5, 1): "天皇の即位の日",  # 「休日（祝日扱い）」
    date(2019, 10, 14): "体育の日",  # 「体育の日（スポーツの日）」
    date(2019, 10, 22): "即位礼正殿の儀が行われる日",  # 「休日（祝日扱い）」
}


def load_cabinet_office_holidays() -> dict[date, str]:
    with HOLIDAYS_CSV.open(encoding="utf-8", newline="") as f:
        return {date.fromisoformat(row["date"]): row["name"] for row in csv.DictReader(f)}


CABINET_OFFICE = load_cabinet_office_holidays()
CAL = Calendar()


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


def every_day(year: int):
    d = date(year, 1, 1)
    while d.year == year:
        yield d
        d += timedelta(days=1)


# --- the calendar against the Cabinet Office list ---------------------------------------------


def test_the_copied_csv_is_the_shared_one():
    if not SHARED_HOLIDAYS_CSV.exists():
        pytest.skip(f"{SHARED_HOLIDAYS_CSV} not present")
    assert HOLIDAYS_CSV.read_bytes() == SHARED_HOLIDAYS_CSV.read_bytes()


def test_the_csv_covers_the_years_we_check():
    years = {d.year for d in CABINET_OFFICE}
    assert years == set(range(FIRST_YEAR, LAST_YEAR + 1))
    assert len(CABINET_OFFICE) > 200


@pytest.mark.parametrize("year", range(FIRST_YEAR, LAST_YEAR + 1))
def test_opening_days_agree_with_the_cabinet_office(year):
    for d in every_day(year):
        year_end = (d.month, d.day) >= (12, 29) or (d.month, d.day) <= (1, 3)
        expected_open = d.weekday() < 5 and d not in CABINET_OFFICE and not year_end
        assert CAL.is_opening_day(d) is expected_open, d
        assert (CAL.closed_reason(d) is None) is expected_open, d


def _after_a_sunday_holiday(d: date) -> bool:
    """振替休日: the run of holidays just before ``d`` contains a Sunday."""
    prev = d - timedelta(days=1)
    while prev in CABINET_OFFICE:
        if prev.weekday() == 6:
            return True
        prev -= timedelta(days=1)
    return False


@pytest.mark.parametrize("year", range(FIRST_YEAR, LAST_YEAR + 1))
def test_closed_reason_names_the_holiday(year):
    for d, name in CABINET_OFFICE.items():
        if d.year != year:
            continue
        reason = CAL.closed_reason(d)
        if name == "休日":
            kind = "振替休日" if _after_a_sunday_holiday(d) else "国民の休日"
            assert reason == f"休日（{kind}）", d
        else:
            assert reason == f"祝日（{CABINET_OFFICE_WORDING.get(d, name)}）", d


@pytest.mark.parametrize(
    ("d", "reason"),
    [
        (date(2026, 9, 22), "休日（国民の休日）"),
        (date(2026, 5, 6), "休日（振替休日）"),
        (date(2026, 11, 3), "祝日（文化の日）"),
        (date(2026, 1, 1), "祝日（元日）"),  # the holiday's name wins over 年末年始
        (date(2025, 12, 29), "年末年始（12/29〜1/3）"),
        (date(2025, 12, 31), "年末年始（12/29〜1/3）"),
        (date(2025, 1, 3), "年末年始（12/29〜1/3）"),
        (date(2026, 1, 3), "年末年始（12/29〜1/3）"),  # a Saturday, still 年末年始
        (date(2026, 11, 28), "土曜日"),
        (date(2026, 11, 29), "日曜日"),
    ],
)
def test_closed_days_and_their_reasons(d, reason):
    assert not CAL.is_opening_day(d)
    assert CAL.closed_reason(d) == reason


@pytest.mark.parametrize("d", [date(2025, 12, 29), date(2025, 12, 31), date(2025, 1, 3)])
def test_year_end_weekdays_are_closed(d):
    assert d.weekday() < 5
    assert not CAL.is_opening_day(d)


@pytest.mark.parametrize("d", [date(2026, 12, 28), date(2026, 1, 5), date(2026, 12, 1)])
def test_ordinary_weekdays_around_the_break_are_open(d):
    assert d.weekday() < 5
    assert CAL.is_opening_day(d)
    assert CAL.closed_reason(d) is None


def test_holidays_are_built_once_per_year(monkeypatch):
    calls: list[object] = []
    real = schedule.holidays.country_holidays

    def counting(*args, **kwargs):
        calls.append(kwargs.get("years"))
        return real(*args, **kwargs)

    schedule._jp_holidays.cache_clear()
    monkeypatch.setattr(schedule.holidays, "country_holidays", counting)
    for d in every_day(2026):
        CAL.is_opening_day(d)
        CAL.closed_reason(d)
    assert calls == [2026]
    schedule._jp_holidays.cache_clear()


# --- overrides ---------------------------------------------------------------------------------


def test_an_override_closes_a_weekday():
    cal = Calendar(overrides={date(2026, 12, 1): (False, "システム更新のため臨時閉庁")})
    assert not cal.is_opening_day(date(2026, 12, 1))
    assert cal.closed_reason(date(2026, 12, 1)) == "システム更新のため臨時閉庁"
    assert not cal.in_window(jst(2026, 12, 1, 10, 0))
    eff = cal.effective_send_time(
        requested=jst(2026, 12, 1, 10, 0), now=jst(2026, 11, 30, 9), emergency=False
    )
    assert eff == Effective(
        at=jst(2026, 12, 2, 8, 30),
        held=True,
        reason="12/1(火)は閉庁日（システム更新のため臨時閉庁）のため 12/2(水) 8:30 に送信されます",
    )


def test_an_override_opens_a_saturday():
    cal = Calendar(overrides={date(2026, 12, 5): (True, "選挙事務のため開庁")})
    assert cal.is_opening_day(date(2026, 12, 5))
    assert cal.closed_reason(date(2026, 12, 5)) is None
    assert cal.in_window(jst(2026, 12, 5, 10, 0))
    # Friday after hours now goes on the Saturday, not the Monday.
    eff = cal.effective_send_time(requested=None, now=jst(2026, 12, 4, 18, 0), emergency=False)
    assert eff.at == jst(2026, 12, 5, 8, 30)
    assert eff.reason == "17:15 以降のため 12/5(土) 8:30 に送信されます"


def test_an_override_can_open_a_holiday_and_the_year_end():
    cal = Calendar(overrides={date(2026, 11, 3): (True, "x"), date(2025, 12, 29): (True, "y")})
    assert cal.is_opening_day(date(2026, 11, 3))
    assert cal.is_opening_day(date(2025, 12, 29))


# --- the window --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "inside"),
    [
        (jst(2026, 12, 1, 8, 29, 59), False),
        (jst(2026, 12, 1, 8, 30, 0), True),
        (jst(2026, 12, 1, 17, 14, 59, 999999), True),
        (jst(2026, 12, 1, 17, 15, 0), False),
        (jst(2026, 11, 29, 10, 0), False),  # Sunday
        (jst(2026, 11, 3, 10, 0), False),  # 文化の日
    ],
)
def test_in_window_is_half_open(t, inside):
    assert CAL.in_window(t) is inside
    assert CAL.in_window(t.astimezone(UTC)) is inside


def test_window_bounds_are_aware_jst():
    start, end = CAL.window_bounds(date(2026, 12, 1))
    assert start == jst(2026, 12, 1, 8, 30)
    assert end == jst(2026, 12, 1, 17, 15)
    assert start.tzinfo is JST
    assert end.tzinfo is JST


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (jst(2026, 12, 1, 10, 0), jst(2026, 12, 1, 10, 0)),  # inside: itself
        (jst(2026, 12, 1, 8, 30), jst(2026, 12, 1, 8, 30)),
        (jst(2026, 12, 1, 6, 0), jst(2026, 12, 1, 8, 30)),
        (jst(2026, 12, 1, 17, 15), jst(2026, 12, 2, 8, 30)),
        (jst(2026, 11, 28, 12, 0), jst(2026, 11, 30, 8, 30)),  # Saturday → Monday
        (jst(2025, 12, 26, 18, 0), jst(2026, 1, 5, 8, 30)),  # Friday before the break
        (jst(2026, 9, 18, 22, 0), jst(2026, 9, 24, 8, 30)),  # silver week
        (jst(2026, 12, 1, 0, 0), jst(2026, 12, 1, 8, 30)),  # midnight JST = 15:00 UTC
    ],
)
def test_next_window_start(t, expected):
    assert CAL.next_window_start(t) == expected
    assert CAL.next_window_start(t.astimezone(UTC)) == expected
    assert CAL.next_window_start(t).tzinfo is JST


# --- the effective send time -------------------------------------------------------------------


def _eff(requested, now, *, emergency=False, duration=timedelta(0), cal=CAL) -> Effective:
    return cal.effective_send_time(
        requested=requested, now=now, emergency=emergency, estimated_duration=duration
    )


@pytest.mark.parametrize(
    ("requested", "now", "emergency", "duration", "expected"),
    [
        pytest.param(
            jst(2026, 12, 1, 17, 15, 0),
            jst(2026, 12, 1, 9, 0),
            False,
            timedelta(0),
            Effective(
                jst(2026, 12, 2, 8, 30), True, "17:15 以降のため 12/2(水) 8:30 に送信されます"
            ),
            id="exactly-17:15-held-to-next-opening-day",
        ),
        pytest.param(
            jst(2026, 12, 1, 8, 30, 0),
            jst(2026, 12, 1, 8, 0),
            False,
            timedelta(0),
            Effective(jst(2026, 12, 1, 8, 30), False, "12/1(火) 8:30 に送信されます"),
            id="exactly-8:30-goes-then",
        ),
        pytest.param(
            None,
            jst(2026, 12, 1, 8, 30, 0),
            False,
            timedelta(0),
            Effective(jst(2026, 12, 1, 8, 30), False, "直ちに送信されます"),
            id="now-8:30-goes-at-once",
        ),
        pytest.param(
            jst(2026, 12, 1, 8, 29, 59),
            jst(2026, 12, 1, 7, 0),
            False,
            timedelta(0),
            Effective(jst(2026, 12, 1, 8, 30), True, "8:30 前のため 8:30 に送信されます"),
            id="8:29:59-waits-for-8:30",
        ),
        pytest.param(
            None,
            jst(2026, 11, 29, 10, 0),
            False,
            timedelta(0),
            Effective(
                jst(2026, 11, 30, 8, 30),
                True,
                "11/29(日)は閉庁日のため 11/30(月) 8:30 に送信されます",
            ),
            id="sunday-held-to-monday",
        ),
        pytest.param(
            None,
            jst(2026, 11, 29, 23, 0),
            True,
            timedelta(0),
            Effective(jst(2026, 11, 29, 23, 0), False, "緊急配信のため直ちに送信されます"),
            id="emergency-sunday-23:00-at-once",
        ),
        pytest.param(
            jst(2026, 11, 29, 23, 30),
            jst(2026, 11, 29, 23, 0),
            True,
            timedelta(0),
            Effective(
                jst(2026, 11, 29, 23, 30), False, "緊急配信のため 11/29(日) 23:30 に送信されます"
            ),
            id="emergency-later-request-is-kept",
        ),
        pytest.param(
            jst(2026, 10, 9, 22, 0),
            jst(2026, 10, 9, 15, 0),
            False,
            timedelta(0),
            Effective(
                jst(2026, 10, 13, 8, 30), True, "17:15 以降のため 10/13(火) 8:30 に送信されます"
            ),
            id="friday-22:00-before-monday-holiday-goes-tuesday",
        ),
        pytest.param(
            jst(2026, 12, 1, 16, 30),
            jst(2026, 12, 1, 9, 0),
            False,
            timedelta(minutes=50),
            Effective(
                jst(2026, 12, 2, 8, 30),
                True,
                "17:15 までに配信が終わらない見込みのため 12/2(水) 8:30 に送信されます",
            ),
            id="duration-crossing-17:15-held-whole",
        ),
        pytest.param(
            jst(2026, 12, 1, 16, 30),
            jst(2026, 12, 1, 9, 0),
            False,
            timedelta(minutes=45),
            Effective(jst(2026, 12, 1, 16, 30), False, "12/1(火) 16:30 に送信されます"),
            id="duration-ending-exactly-17:15-fits",
        ),
        pytest.param(
            jst(2026, 12, 1, 10, 0),
            jst(2026, 12, 1, 9, 0),
            False,
            timedelta(hours=9, minutes=30),
            Effective(
                jst(2026, 12, 2, 8, 30),
                True,
                "配信に約 9 時間 30 分かかる見込みで配信時間（8:30〜17:15）に収まりませんが、"
                "12/2(水) 8:30 から送信を始めます",
            ),
            id="longer-than-a-window-starts-at-next-full-window",
        ),
        pytest.param(
            jst(2026, 12, 1, 10, 0),
            jst(2026, 12, 1, 12, 0),
            False,
            timedelta(0),
            Effective(jst(2026, 12, 1, 12, 0), False, "直ちに送信されます"),
            id="past-request-starts-from-now",
        ),
        pytest.param(
            jst(2026, 11, 30, 20, 0),
            jst(2026, 12, 1, 12, 0),
            False,
            timedelta(0),
            Effective(jst(2026, 12, 1, 12, 0), False, "直ちに送信されます"),
            id="yesterday-evening-request-is-not-held",
        ),
    ],
)
def test_effective_send_time(requested, now, emergency, duration, expected):
    eff = _eff(requested, now, emergency=emergency, duration=duration)
    assert eff == expected
    assert eff.at.tzinfo is JST


def test_a_send_that_exactly_fills_the_window_starts_at_its_start():
    eff = _eff(None, jst(2026, 12, 1, 7, 0), duration=timedelta(hours=8, minutes=45))
    assert eff == Effective(jst(2026, 12, 1, 8, 30), True, "8:30 前のため 8:30 に送信されます")


def test_longer_than_a_window_at_a_window_start_is_not_held():
    eff = _eff(None, jst(2026, 12, 1, 8, 30), duration=timedelta(hours=10))
    assert eff.at == jst(2026, 12, 1, 8, 30)
    assert not eff.held
    assert "収まりません" in eff.reason


@pytest.mark.parametrize(
    ("requested", "now", "emergency", "duration"),
    [
        (jst(2026, 12, 1, 17, 15), jst(2026, 12, 1, 9, 0), False, timedelta(0)),
        (None, jst(2026, 12, 1, 8, 29, 59), False, timedelta(0)),
        (None, jst(2026, 11, 29, 23, 0), True, timedelta(0)),
        (jst(2026, 12, 1, 16, 30), jst(2026, 12, 1, 9), False, timedelta(hours=1)),
        (None, jst(2026, 12, 2, 1, 0), False, timedelta(0)),  # 16:00 UTC the day before
        (jst(2026, 10, 9, 22, 0), jst(2026, 10, 9, 15, 0), False, timedelta(0)),
    ],
)
def test_utc_input_gives_the_same_answer_as_jst(requested, now, emergency, duration):
    in_jst = _eff(requested, now, emergency=emergency, duration=duration)
    in_utc = _eff(
        requested and requested.astimezone(UTC),
        now.astimezone(UTC),
        emergency=emergency,
        duration=duration,
    )
    assert in_utc == in_jst
    assert in_utc.at.tzinfo is JST
    assert in_utc.reason == in_jst.reason


def test_naive_datetimes_are_refused():
    naive = datetime(2026, 12, 1, 10, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        CAL.in_window(naive)
    with pytest.raises(ValueError, match="aware"):
        CAL.effective_send_time(requested=None, now=naive, emergency=False)
    with pytest.raises(ValueError, match="aware"):
        CAL.effective_send_time(requested=naive, now=jst(2026, 12, 1, 9), emergency=False)
    with pytest.raises(ValueError, match="aware"):
        format_jst(naive)


def test_negative_duration_is_refused():
    with pytest.raises(ValueError):
        _eff(None, jst(2026, 12, 1, 9), duration=timedelta(minutes=-1))


# --- formatting and settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "with_date", "text"),
    [
        (jst(2026, 12, 1, 8, 30), True, "12/1(火) 8:30"),
        (jst(2026, 12, 1, 8, 30), False, "8:30"),
        (jst(2026, 11, 29, 23, 5), True, "11/29(日) 23:05"),
        (jst(2027, 1, 4, 0, 0), True, "1/4(月) 0:00"),
        (datetime(2026, 11, 30, 23, 30, tzinfo=UTC), True, "12/1(火) 8:30"),
    ],
)
def test_format_jst(t, with_date, text):
    assert format_jst(t, with_date=with_date) == text


def test_jst_date_crosses_midnight_from_utc():
    assert jst_date(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == date(2026, 12, 1)
    assert jst_date(datetime(2026, 11, 30, 14, 59, tzinfo=UTC)) == date(2026, 11, 30)


def test_from_settings_reads_the_window(settings):
    settings.SEND_WINDOW_START = "09:00"
    settings.SEND_WINDOW_END = "17:00"
    cal = Calendar.from_settings({date(2026, 12, 1): (False, "臨時閉庁")})
    assert cal.window_start == time(9, 0)
    assert cal.window_end == time(17, 0)
    assert not cal.is_opening_day(date(2026, 12, 1))
    assert not cal.in_window(jst(2026, 12, 2, 8, 45))
    assert not cal.in_window(jst(2026, 12, 2, 17, 0))


def test_from_settings_defaults_to_8_30_17_15():
    cal = Calendar.from_settings()
    assert (cal.window_start, cal.window_end) == (time(8, 30), time(17, 15))


@pytest.mark.parametrize(
    ("start", "end"), [("8:30", "nope"), ("17:15", "08:30"), ("25:00", "26:00")]
)
def test_from_settings_fails_loudly_on_a_bad_window(settings, start, end):
    settings.SEND_WINDOW_START = start
    settings.SEND_WINDOW_END = end
    with pytest.raises(ImproperlyConfigured):
        Calendar.from_settings()


# --- 時間外配信 (policy 5(1) 「市が必要と認める場合」, issue 13 item 5) -----------------------------

SATURDAY_NIGHT = datetime(2026, 11, 28, 22, 0, tzinfo=JST)
MONDAY_OPEN = datetime(2026, 11, 30, 8, 30, tzinfo=JST)
HASH = "a" * 64


def grant(**overrides) -> schedule.OutOfHoursApproval:
    """A valid approval: a supervisor, second factor two minutes before approving, this content."""
    fields = {
        "by_supervisor": True,
        "approved_at": SATURDAY_NIGHT,
        "second_factor_verified_at": SATURDAY_NIGHT - timedelta(minutes=2),
        "approved_hash": HASH,
        "content_hash": HASH,
    }
    fields.update(overrides)
    return schedule.OutOfHoursApproval(**fields)


def out_of_hours_at(now: datetime, approval, requested: datetime | None = None) -> Effective:
    return CAL.effective_send_time(
        requested=requested, now=now, emergency=False, out_of_hours=approval
    )


def test_an_approved_out_of_hours_send_goes_at_once_on_a_saturday_night():
    effective = out_of_hours_at(SATURDAY_NIGHT, grant())
    assert effective.at == SATURDAY_NIGHT
    assert not effective.held
    assert "時間外配信" in effective.reason


def test_an_approved_out_of_hours_send_keeps_its_requested_time():
    requested = SATURDAY_NIGHT + timedelta(hours=11)  # Sunday 9:00
    effective = out_of_hours_at(SATURDAY_NIGHT, grant(), requested)
    assert effective.at == requested
    assert not effective.held


@pytest.mark.parametrize(
    ("attack", "overrides"),
    [
        ("a reviewer without the 承認者 role approved", {"by_supervisor": False}),
        ("nobody approved", {"approved_at": None, "approved_hash": ""}),
        ("no second factor", {"second_factor_verified_at": None}),
        (
            "a second factor six minutes old",
            {"second_factor_verified_at": SATURDAY_NIGHT - timedelta(minutes=6)},
        ),
        (
            "a second factor dated after the approval",
            {"second_factor_verified_at": SATURDAY_NIGHT + timedelta(minutes=1)},
        ),
        ("edited after approval", {"content_hash": "b" * 64}),
        ("an approval bound to no content", {"approved_hash": "", "content_hash": ""}),
    ],
)
def test_an_out_of_hours_send_without_a_valid_approval_never_leaves_the_window(attack, overrides):
    effective = out_of_hours_at(SATURDAY_NIGHT, grant(**overrides))
    assert effective.at == MONDAY_OPEN, attack
    assert effective.held
    assert "承認者が二要素認証" in effective.reason


def test_the_window_holds_every_unapproved_out_of_hours_instant_of_a_week():
    """Every quarter hour of a week, with each part of the approval missing in turn: the send
    time always falls inside a window."""
    broken = [
        grant(by_supervisor=False),
        grant(second_factor_verified_at=None),
        grant(content_hash="c" * 64),
    ]
    t = datetime(2026, 11, 23, 0, 7, tzinfo=JST)
    while t < datetime(2026, 11, 30, 0, 0, tzinfo=JST):
        for approval in broken:
            approval = schedule.OutOfHoursApproval(
                by_supervisor=approval.by_supervisor,
                approved_at=t,
                second_factor_verified_at=(
                    t - timedelta(minutes=1) if approval.second_factor_verified_at else None
                ),
                approved_hash=approval.approved_hash,
                content_hash=approval.content_hash,
            )
            assert CAL.in_window(out_of_hours_at(t, approval).at), t
        t += timedelta(minutes=15)


def test_an_ordinary_send_still_waits_for_the_window():
    effective = CAL.effective_send_time(requested=None, now=SATURDAY_NIGHT, emergency=False)
    assert effective.at == MONDAY_OPEN


def test_an_unapproved_out_of_hours_send_inside_the_window_goes_as_an_ordinary_one():
    tuesday = datetime(2026, 12, 1, 10, 0, tzinfo=JST)
    effective = out_of_hours_at(tuesday, grant(by_supervisor=False, approved_at=tuesday))
    assert effective.at == tuesday
    assert not effective.held


def test_an_out_of_hours_approval_refuses_naive_times():
    with pytest.raises(ValueError, match="aware"):
        grant(
            approved_at=datetime(2026, 11, 28, 22, 0),  # noqa: DTZ001
            second_factor_verified_at=datetime(2026, 11, 28, 21, 58),  # noqa: DTZ001
        ).grants()
