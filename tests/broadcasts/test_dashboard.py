"""The dashboard (issue 6): role-aware sections, schedule, holds, progress, problems, quota,
followers and the out-of-window banner, at a constant number of queries; its htmx fragments;
the calendar grid; the statistics and history pages and their CSV exports."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse

from broadcasts.models import (
    Broadcast,
    BroadcastEvent,
    BroadcastStats,
    CalendarOverride,
    Category,
    DailyStats,
    Follower,
    User,
)
from broadcasts.schedule import JST
from broadcasts.services.insight import QUOTA_CACHE_KEY

S = Broadcast.Status
# Friday 2026-11-27 10:00 JST: inside the window. The next opening day is Monday 11/30.
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=JST)
EVENING = datetime(2026, 11, 27, 18, 0, tzinfo=JST)
DASH = "/"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.delete(QUOTA_CACHE_KEY)
    yield
    cache.delete(QUOTA_CACHE_KEY)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def make(
    author: User,
    title: str,
    status: str = S.SCHEDULED,
    *,
    scheduled_for: datetime | None = None,
    categories: tuple[str, ...] = ("childcare_education",),
    **fields,
) -> Broadcast:
    b = Broadcast.objects.create(
        title=title, author=author, status=status, scheduled_for=scheduled_for, **fields
    )
    b.categories.set(Category.objects.filter(code__in=categories))
    return b


def section(html: str, testid: str) -> str:
    start = html.find(f'data-testid="{testid}"')
    assert start != -1, f"no {testid}"
    return html[start : start + 4000]


# --- roles -------------------------------------------------------------------------------------


def test_reviewer_sees_the_review_queue_but_not_emergency_approvals(
    client, reviewer, drafter, line_sandbox, frozen
):
    make(drafter, "子育て講座のお知らせ", S.PENDING_REVIEW, submitted_at=NOW)
    make(reviewer, "自分の申請", S.PENDING_REVIEW, submitted_at=NOW)
    client.force_login(reviewer)
    html = client.get(DASH).content.decode()
    queue = section(html, "review-queue")
    assert "子育て講座のお知らせ" in queue
    assert "自分の申請" not in html.split('data-testid="review-queue"')[1].split("</ul>")[0]
    assert "緊急配信の承認待ち" not in html


def test_supervisor_sees_emergency_approvals(client, supervisor, drafter, line_sandbox, frozen):
    make(
        drafter,
        "避難指示",
        S.PENDING_REVIEW,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="大雨",
        submitted_at=NOW,
    )
    client.force_login(supervisor)
    html = client.get(DASH).content.decode()
    assert "避難指示" in section(html, "emergency-approvals")
    # An emergency is not in the ordinary review queue.
    assert 'data-testid="review-queue-empty"' in html


def test_drafter_sees_own_drafts_and_rejections_only(
    client, drafter, other_drafter, line_sandbox, frozen
):
    make(drafter, "下書きA", S.DRAFT)
    make(drafter, "差し戻されたB", S.REJECTED)
    make(other_drafter, "他人の下書き", S.DRAFT)
    client.force_login(drafter)
    html = client.get(DASH).content.decode()
    mine = section(html, "my-drafts")
    assert "下書きA" in mine and "差し戻されたB" in mine
    assert "差し戻されました" in mine
    assert "他人の下書き" not in html
    assert "承認待ち（審査）" not in html
    assert "緊急配信の承認待ち" not in html


def test_admin_without_drafting_sees_overview_only(client, admin_user, line_sandbox, frozen):
    client.force_login(admin_user)
    html = client.get(DASH).content.decode()
    assert 'data-testid="no-actions"' in html
    assert 'data-testid="quota"' in html


# --- schedule, held, sending, problems ---------------------------------------------------------


def test_schedule_today_and_next_opening_day_in_time_order(client, reviewer, line_sandbox, frozen):
    make(reviewer, "午後の配信", scheduled_for=NOW.replace(hour=15))
    make(reviewer, "朝の配信", S.SENT, scheduled_for=NOW.replace(hour=9), sent_at=NOW)
    make(reviewer, "月曜の配信", scheduled_for=datetime(2026, 11, 30, 9, 0, tzinfo=JST))
    make(reviewer, "土曜には出ない", scheduled_for=datetime(2026, 11, 28, 9, 0, tzinfo=JST))
    client.force_login(reviewer)
    html = client.get(DASH).content.decode()
    today = section(html, "schedule-today")
    assert today.index("朝の配信") < today.index("午後の配信")
    assert "9:00" in today and "15:00" in today
    assert "配信済み" in today
    assert "次の開庁日 11/30(月)" in html
    assert "月曜の配信" in section(html, "schedule-next")


def test_held_sends_say_why(client, reviewer, line_sandbox, frozen):
    make(
        reviewer,
        "夜に承認された配信",
        scheduled_for=datetime(2026, 11, 30, 8, 30, tzinfo=JST),
        hold_reason="17:15 以降のため 11/30(月) 8:30 に送信されます",
    )
    client.force_login(reviewer)
    held = section(client.get(DASH).content.decode(), "held-list")
    assert "夜に承認された配信" in held
    assert "11/30(月) 8:30 に送信予定" in held
    assert "17:15 以降のため" in held


def test_sending_shows_progress_in_words(client, reviewer, line_sandbox, frozen):
    b = make(
        reviewer,
        "配信中のお知らせ",
        S.SENDING,
        scheduled_for=NOW,
        sending_started_at=NOW,
        deliveries_total=8,
        deliveries_accepted=3,
        recipient_count=3900,
    )
    client.force_login(reviewer)
    html = client.get(DASH).content.decode()
    part = section(html, f"sending-{b.pk}")
    assert '<progress class="kw-progress"' in part
    assert 'max="8" value="3"' in part
    assert "3 / 8 回分の送信を LINE が受け付けました（38%）" in part
    assert "宛先 3,900 人" in part


def test_failures_and_needs_attention_say_what_to_do(client, reviewer, line_sandbox, frozen):
    a = make(reviewer, "上限で止まった", S.NEEDS_ATTENTION, last_error="月間上限に達しました")
    make(reviewer, "拒否された", S.FAILED, last_error="LINE API 400: invalid")
    client.force_login(reviewer)
    part = section(client.get(DASH).content.decode(), "problem-list")
    assert "月間上限に達しました" in part and "LINE API 400: invalid" in part
    assert "対応：" in part
    assert reverse("broadcasts:detail", args=[a.pk]) in part


# --- quota, followers, window ------------------------------------------------------------------


def test_unlimited_quota_is_shown_as_the_local_government_plan(
    client, reviewer, line_sandbox, frozen
):
    client.force_login(reviewer)
    html = client.get(DASH).content.decode()
    assert "上限なし（自治体プラン）" in html


def test_limited_quota_is_a_gauge_with_numbers(client, reviewer, line_sandbox, frozen):
    line_sandbox.state.set_quota(type="limited", value=5000)
    client.force_login(reviewer)
    html = client.get(DASH).content.decode()
    assert '<meter id="kw-quota-meter"' in html
    assert "/ 5,000 通" in html


def test_quota_is_cached_for_a_minute(client, reviewer, line_sandbox, frozen):
    client.force_login(reviewer)
    client.get(DASH)
    line_sandbox.state.set_quota(type="limited", value=5000)
    assert "上限なし（自治体プラン）" in client.get(DASH).content.decode()


def test_line_unreachable_is_a_warning_not_an_error(client, reviewer, settings, frozen):
    settings.LINE_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    client.force_login(reviewer)
    response = client.get(DASH)
    assert response.status_code == 200
    assert 'data-testid="quota-error"' in response.content.decode()


def test_followers_from_our_table_and_from_line(client, reviewer, line_sandbox, frozen):
    Follower.objects.bulk_create([Follower(line_user_id=f"U{i:032x}") for i in range(7)])
    Follower.objects.create(line_user_id="Ublocked", unfollowed_at=NOW)
    DailyStats.objects.create(
        date=NOW.date() - timedelta(days=1), fetched_at=NOW, followers=1234, blocks=56
    )
    client.force_login(reviewer)
    html = section(client.get(DASH).content.decode(), "followers")
    assert ">7</span>" in html
    assert "友だち追加 1,234 人・ブロック 56 人" in html


def test_banner_outside_the_window_names_the_next_start(client, reviewer, line_sandbox):
    with time_machine.travel(EVENING, tick=False):
        client.force_login(reviewer)
        html = client.get(DASH).content.decode()
    assert "現在は配信時間外です。次回の配信開始: 11/30(月) 8:30" in html


def test_banner_respects_calendar_overrides(client, reviewer, line_sandbox):
    CalendarOverride.objects.create(date=date(2026, 11, 30), is_open=False, reason="臨時")
    with time_machine.travel(EVENING, tick=False):
        client.force_login(reviewer)
        html = client.get(DASH).content.decode()
    assert "次回の配信開始: 12/1(火) 8:30" in html


def test_no_banner_inside_the_window(client, reviewer, line_sandbox, frozen):
    client.force_login(reviewer)
    assert "配信時間外" not in client.get(DASH).content.decode()


# --- constant queries --------------------------------------------------------------------------


def _populate(n: int, author: User, other: User) -> None:
    for i in range(n):
        make(other, f"審査待ち{i}", S.PENDING_REVIEW, submitted_at=NOW)
        make(author, f"下書き{i}", S.DRAFT)
        make(other, f"今日{i}", scheduled_for=NOW + timedelta(minutes=i))
        make(other, f"保留{i}", scheduled_for=NOW + timedelta(days=3), hold_reason="閉庁日")
        make(other, f"配信中{i}", S.SENDING, deliveries_total=2, deliveries_accepted=1)
        make(other, f"失敗{i}", S.FAILED, last_error="x")


@pytest.mark.parametrize(
    "part", [None, "status", "action", "sending", "schedule", "held", "problems"]
)
def test_query_count_does_not_grow_with_broadcasts(
    client, supervisor, drafter, line_sandbox, frozen, django_assert_max_num_queries, part
):
    url = DASH if part is None else reverse("broadcasts:dashboard_part", args=[part])
    client.force_login(supervisor)
    _populate(5, supervisor, drafter)
    client.get(url)  # warm the quota cache and the session
    with django_assert_max_num_queries(40) as small:
        client.get(url)
    _populate(45, supervisor, drafter)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(url)
    assert response.status_code == 200


# --- fragments ---------------------------------------------------------------------------------


def test_fragments_are_polled_by_htmx(client, reviewer, line_sandbox, frozen):
    client.force_login(reviewer)
    html = client.get(DASH).content.decode()
    for part in ("status", "action", "sending", "schedule", "held", "problems"):
        assert f'hx-get="{reverse("broadcasts:dashboard_part", args=[part])}"' in html
    assert 'hx-trigger="every 3s, kw:refresh"' in html
    response = client.get(reverse("broadcasts:dashboard_part", args=["sending"]))
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert client.get("/dashboard/nope/").status_code == 404


def test_category_css_has_each_colour(client, reviewer):
    client.force_login(reviewer)
    css = client.get(reverse("broadcasts:category_css")).content.decode()
    assert ".kw-cat-childcare_education { --kw-cat-color: #e67e22; }" in css


# --- calendar grid -----------------------------------------------------------------------------


def test_month_grid_places_broadcasts_and_closed_days(client, reviewer, frozen):
    b = make(reviewer, "月間の配信", scheduled_for=datetime(2026, 11, 30, 9, 0, tzinfo=JST))
    client.force_login(reviewer)
    response = client.get(reverse("broadcasts:calendar_month") + "?month=2026-11")
    html = response.content.decode()
    assert "2026年11月" in html
    cell = html.split('id="grid-2026-11-30"')[1].split("</td>")[0]
    assert "月間の配信" in cell and reverse("broadcasts:detail", args=[b.pk]) in cell
    assert "kw-cat-childcare_education" in cell and "子育て・教育" in cell
    holiday = html.split('id="grid-2026-11-23"')[1].split("</td>")[0]
    assert "勤労感謝の日" in holiday
    assert 'data-open="false"' in html.split('id="grid-2026-11-23"')[1][:60]


def test_month_grid_caps_busy_days(client, reviewer, frozen, django_assert_max_num_queries):
    url = reverse("broadcasts:calendar_month")
    client.force_login(reviewer)
    make(reviewer, "一件", scheduled_for=datetime(2026, 11, 2, 9, 0, tzinfo=JST))
    client.get(url)
    with django_assert_max_num_queries(20) as few:
        client.get(url)
    for i in range(9):
        make(reviewer, f"多い{i}", scheduled_for=datetime(2026, 11, 30, 9, i, tzinfo=JST))
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = client.get(url).content.decode()
    cell = html.split('id="grid-2026-11-30"')[1].split("</td>")[0]
    assert cell.count("data-broadcast=") == 4
    assert "ほか 5 件" in cell


def test_week_grid(client, reviewer, frozen):
    make(reviewer, "週の配信", scheduled_for=datetime(2026, 11, 26, 9, 0, tzinfo=JST))
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:calendar_week")).content.decode()
    assert "11/22(日)〜11/28(土)" in html
    assert "週の配信" in html
    assert "week=2026-11-29" in html


# --- statistics and history --------------------------------------------------------------------


def _sent(author: User, title: str, at: datetime, delivered: int, opened: int | None) -> Broadcast:
    b = make(author, title, S.SENT, scheduled_for=at, sent_at=at, recipient_count=delivered)
    BroadcastStats.objects.create(
        broadcast=b, fetched_at=at, ready=True, delivered=delivered, unique_impression=opened
    )
    return b


def test_stats_page_charts_and_totals(client, reviewer, frozen):
    _sent(reviewer, "配信1", NOW - timedelta(days=1), 1000, 500)
    _sent(reviewer, "配信2", NOW - timedelta(days=2), 3000, None)
    client.force_login(reviewer)
    response = client.get(reverse("broadcasts:stats"))
    html = response.content.decode()
    assert 'id="kw-chart-data"' in html and "chart.umd.min.js" in html
    assert response.context["totals"]["delivered"] == 4000
    assert response.context["open_rate"] == 50.0
    cats = {c["category"].code: c for c in response.context["categories"]}
    assert cats["childcare_education"]["sends"] == 2


def test_stats_csv_has_bom_and_japanese_header(client, reviewer, frozen):
    _sent(reviewer, "広報かしわ 12月号", NOW - timedelta(days=1), 1000, 420)
    client.force_login(reviewer)
    response = client.get(
        reverse("broadcasts:stats_csv") + "?date_from=2026-11-01&date_to=2026-11-30"
    )
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "配信ID" and rows[0][11] == "開封数"
    assert rows[1][1] == "広報かしわ 12月号" and rows[1][11] == "420" and rows[1][12] == "42.0"


def test_broadcast_stats_panel_fragment_and_page(client, reviewer, frozen):
    b = _sent(reviewer, "統計つき", NOW - timedelta(days=1), 1000, 420)
    client.force_login(reviewer)
    url = reverse("broadcasts:broadcast_stats", args=[b.pk])
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and "420" in fragment and "42.0%" in fragment
    page = client.get(url).content.decode()
    assert "<html" in page and "「統計つき」の統計" in page


def test_history_filters_and_csv(client, reviewer, drafter, frozen, django_assert_max_num_queries):
    b = make(drafter, "監査対象", S.DRAFT)
    BroadcastEvent.objects.create(broadcast=b, actor=drafter, verb="create", to_status="draft")
    BroadcastEvent.objects.create(
        broadcast=b,
        actor=reviewer,
        verb="approve",
        from_status="pending_review",
        to_status="scheduled",
        comment="問題なし",
    )
    client.force_login(reviewer)
    url = reverse("broadcasts:history")
    html = client.get(url + "?verb=approve").content.decode()
    assert "問題なし" in html and "承認" in html
    assert "監査対象" in html
    assert client.get(url + f"?actor={drafter.pk}").context["page"].paginator.count == 1
    for _ in range(30):
        BroadcastEvent.objects.create(broadcast=b, actor=drafter, verb="edit")
    with django_assert_max_num_queries(12):
        client.get(url)
    body = b"".join(
        client.get(reverse("broadcasts:history_csv") + "?verb=approve").streaming_content
    )
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "日時（日本時間）"
    assert len(rows) == 2 and rows[1][1] == "承認" and rows[1][3] == str(reviewer)


def test_history_needs_the_audit_permission(client, drafter):
    client.force_login(drafter)
    assert client.get(reverse("broadcasts:history")).status_code == 403


@pytest.mark.parametrize("title_ids_max", [1000, 0], ids=["titles looked up", "common word"])
def test_history_search_finds_events_by_title_and_by_comment(
    client, reviewer, drafter, frozen, monkeypatch, title_ids_max
):
    from broadcasts.selectors import dashboard as dash

    monkeypatch.setattr(dash, "EVENTS_TITLE_IDS_MAX", title_ids_max)
    titled = make(drafter, "児童手当の申請について", S.DRAFT)
    other = make(drafter, "ごみ収集日の変更", S.DRAFT)
    BroadcastEvent.objects.create(broadcast=titled, actor=drafter, verb="create")
    BroadcastEvent.objects.create(
        broadcast=other, actor=reviewer, verb="reject", comment="児童手当の件と重複"
    )
    BroadcastEvent.objects.create(broadcast=other, actor=drafter, verb="create")
    client.force_login(reviewer)

    page = client.get(reverse("broadcasts:history") + "?q=児童手当").context["page"]

    found = {(e.broadcast_id, e.verb) for e in page.object_list}
    assert found == {(titled.pk, "create"), (other.pk, "reject")}
    assert page.paginator.count == 2


def test_history_and_list_counts_stop_at_the_cap(client, reviewer, drafter, frozen, monkeypatch):
    from broadcasts.views import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 5)
    b = make(drafter, "監査対象", S.DRAFT)
    for _ in range(7):
        BroadcastEvent.objects.create(broadcast=b, actor=drafter, verb="edit")
    client.force_login(reviewer)

    many = client.get(reverse("broadcasts:history"))
    few = client.get(reverse("broadcasts:history") + "?verb=create")

    assert many.context["page"].paginator.count == 5
    assert "5 件以上" in many.content.decode()
    assert few.context["page"].paginator.count == 0
    for i in range(6):
        make(drafter, f"お知らせ {i}", S.SCHEDULED)
    listing = client.get(reverse("broadcasts:list"))
    assert "5 件以上" in listing.content.decode()
