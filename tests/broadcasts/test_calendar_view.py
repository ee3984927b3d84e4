"""The calendar page: 60 days from today (JST), opening or closed and why, and each day's sends."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.urls import reverse

from broadcasts.models import Broadcast, CalendarOverride, Category, User
from broadcasts.schedule import JST
from broadcasts.views.calendar import calendar_days

# Friday 2026-11-27 10:00 JST; the page covers 11/27 .. 1/25/2027.
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=JST)
URL = "/calendar/"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def make_broadcast(
    author: User,
    title: str,
    scheduled_for: datetime | None,
    *,
    status: str = Broadcast.Status.SCHEDULED,
    categories: tuple[str, ...] = ("childcare_education",),
) -> Broadcast:
    broadcast = Broadcast.objects.create(
        title=title, author=author, status=status, scheduled_for=scheduled_for
    )
    broadcast.categories.set(Category.objects.filter(code__in=categories))
    return broadcast


def row(html: str, d: date) -> str:
    match = re.search(rf'<tr id="day-{d.isoformat()}".*?</tr>', html, re.S)
    assert match, f"no row for {d}"
    return match.group(0)


def test_the_url_is_named():
    assert reverse("broadcasts:calendar") == URL


def test_anonymous_users_are_sent_to_log_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_shows_sixty_days_from_today_in_jst(client, drafter, frozen):
    client.force_login(drafter)
    response = client.get(URL)
    assert response.status_code == 200
    days = response.context["days"]
    assert len(days) == 60
    assert days[0].date == date(2026, 11, 27)
    assert days[-1].date == date(2027, 1, 25)
    html = response.content.decode()
    assert 'id="day-2027-01-26"' not in html
    assert "11/27(金)" in html
    assert 'aria-current="date"' in row(html, date(2026, 11, 27))


def test_today_is_the_jst_date_even_when_utc_is_still_yesterday(client, drafter):
    # 2026-11-26 20:00 UTC is 11/27 05:00 in Japan.
    with time_machine.travel(datetime(2026, 11, 26, 20, 0, tzinfo=UTC), tick=False):
        client.force_login(drafter)
        response = client.get(URL)
    assert response.context["days"][0].date == date(2026, 11, 27)


def test_opening_and_closed_days_say_why(client, drafter, frozen):
    client.force_login(drafter)
    html = client.get(URL).content.decode()
    friday = row(html, date(2026, 11, 27))
    assert "開庁日" in friday
    assert "閉庁日" not in friday
    for d, reason in [
        (date(2026, 11, 28), "土曜日"),
        (date(2026, 11, 29), "日曜日"),
        (date(2026, 12, 29), "年末年始（12/29〜1/3）"),
        (date(2027, 1, 1), "祝日（元日）"),
        (date(2027, 1, 11), "祝日（成人の日）"),
    ]:
        closed = row(html, d)
        assert "閉庁日" in closed, d
        assert reason in closed, d


def test_an_overrides_reason_shows(client, drafter, admin_user, frozen):
    CalendarOverride.objects.create(
        date=date(2026, 12, 1),
        is_open=False,
        reason="庁舎停電のため臨時閉庁",
        created_by=admin_user,
    )
    CalendarOverride.objects.create(
        date=date(2026, 12, 5), is_open=True, reason="選挙事務のため開庁", created_by=admin_user
    )
    client.force_login(drafter)
    html = client.get(URL).content.decode()
    closed = row(html, date(2026, 12, 1))
    assert "閉庁日" in closed
    assert "庁舎停電のため臨時閉庁" in closed
    opened = row(html, date(2026, 12, 5))
    assert "開庁日" in opened
    assert "選挙事務のため開庁" in opened


def test_scheduled_sending_and_sent_broadcasts_show_on_their_jst_day(client, drafter, frozen):
    make_broadcast(drafter, "子育て応援フェア", datetime(2026, 12, 2, 10, 0, tzinfo=JST))
    make_broadcast(
        drafter,
        "健康診断のお知らせ",
        datetime(2026, 12, 2, 9, 5, tzinfo=JST),
        status=Broadcast.Status.SENT,
        categories=("health_welfare", "municipal"),
    )
    # 12/2 15:30 UTC is 12/3 0:30 JST.
    make_broadcast(drafter, "深夜の配信", datetime(2026, 12, 2, 15, 30, tzinfo=UTC))
    make_broadcast(
        drafter, "下書き", datetime(2026, 12, 2, 11, 0, tzinfo=JST), status=Broadcast.Status.DRAFT
    )
    make_broadcast(
        drafter,
        "取消済み",
        datetime(2026, 12, 2, 11, 0, tzinfo=JST),
        status=Broadcast.Status.CANCELLED,
    )
    make_broadcast(drafter, "範囲外", datetime(2027, 1, 26, 9, 0, tzinfo=JST))
    client.force_login(drafter)
    html = client.get(URL).content.decode()

    dec2 = row(html, date(2026, 12, 2))
    assert "子育て応援フェア" in dec2
    assert "10:00" in dec2
    assert "子育て・教育" in dec2
    assert "配信予定" in dec2
    assert "健康診断のお知らせ" in dec2
    assert "9:05" in dec2
    assert "配信済み" in dec2
    assert "健康・福祉・医療" in dec2
    assert "市政" in dec2
    assert dec2.index("健康診断のお知らせ") < dec2.index("子育て応援フェア")  # time order
    assert "深夜の配信" not in dec2
    assert "下書き" not in html
    assert "取消済み" not in html
    assert "範囲外" not in html

    dec3 = row(html, date(2026, 12, 3))
    assert "深夜の配信" in dec3
    assert "0:30" in dec3


def test_query_count_does_not_grow_with_rows(
    client, drafter, admin_user, frozen, django_assert_max_num_queries
):
    """Overrides: one query; broadcasts: one plus one for categories; the rest is the site's
    chrome (session, user, permissions for the menu), which does not depend on the rows."""
    make_broadcast(drafter, "配信", datetime(2026, 11, 30, 9, 0, tzinfo=JST))
    CalendarOverride.objects.create(date=date(2026, 11, 30), is_open=False, reason="例外")
    client.force_login(drafter)
    with django_assert_max_num_queries(15) as one_row:
        client.get(URL)
    for i in range(30):
        make_broadcast(
            drafter,
            f"配信{i}",
            datetime(2026, 12, 1 + i % 20, 9 + i % 8, 0, tzinfo=JST),
            categories=("events", "tourism_pr"),
        )
        CalendarOverride.objects.create(
            date=date(2026, 12, 1 + i), is_open=i % 2 == 0, reason=f"例外{i}"
        )
    with django_assert_max_num_queries(len(one_row.captured_queries)) as many_rows:
        response = client.get(URL)
    assert response.status_code == 200
    assert "配信29" in response.content.decode()
    assert len(many_rows.captured_queries) == len(one_row.captured_queries)
    tables = [
        q["sql"].split(" FROM ")[1].split()[0]
        for q in many_rows.captured_queries
        if " FROM " in q["sql"]
    ]
    assert tables.count('"broadcasts_calendaroverride"') == 1
    assert tables.count('"broadcasts_broadcast"') == 1
    assert tables.count('"broadcasts_category"') == 1


def test_admins_see_links_to_add_and_change_overrides(client, admin_user, frozen):
    override = CalendarOverride.objects.create(
        date=date(2026, 12, 1), is_open=False, reason="臨時閉庁"
    )
    client.force_login(admin_user)
    html = client.get(URL).content.decode()
    add_url = reverse("admin:broadcasts_calendaroverride_add")
    assert f'href="{add_url}"' in html
    assert f'href="{add_url}?date=2026-12-02"' in row(html, date(2026, 12, 2))
    change_url = reverse("admin:broadcasts_calendaroverride_change", args=[override.pk])
    assert change_url in row(html, date(2026, 12, 1))
    # The link works for them.
    assert client.get(f"{add_url}?date=2026-12-02").status_code == 200


def test_drafters_see_no_override_links(client, drafter, frozen):
    client.force_login(drafter)
    html = client.get(URL).content.decode()
    assert reverse("admin:broadcasts_calendaroverride_add") not in html
    assert 'data-testid="override-add"' not in html


def test_calendar_days_uses_the_configured_window_and_overrides(db, settings):
    CalendarOverride.objects.create(date=date(2026, 12, 5), is_open=True, reason="臨時開庁")
    days = calendar_days(today=date(2026, 12, 4), days=3)
    assert [(d.label, d.is_open, d.closed_reason) for d in days] == [
        ("12/4(金)", True, None),
        ("12/5(土)", True, None),
        ("12/6(日)", False, "日曜日"),
    ]
    assert days[1].override is not None
