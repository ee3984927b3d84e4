"""The dashboard, statistics and calendar grid in a real browser (issue 6's "done when")."""

from __future__ import annotations

import datetime as dt
import struct
import zlib

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastStats, Category, DailyStats
from broadcasts.schedule import JST
from broadcasts.services.insight import QUOTA_CACHE_KEY
from tests.broadcasts.sending.helpers import approved_broadcast
from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url

pytestmark = pytest.mark.browser

# Monday 2026-11-30, just before the window opens at 8:30, then just after (a jump shorter
# than the 30-minute idle session timeout).
EARLY = dt.datetime(2026, 11, 30, 8, 20, tzinfo=JST)
LATER = dt.datetime(2026, 11, 30, 8, 31, tzinfo=JST)
POLL_TIMEOUT_MS = 15_000


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture(autouse=True)
def _fresh_quota():
    """The quota is cached for a minute; each test asks its own sandbox."""
    cache.delete(QUOTA_CACHE_KEY)
    yield
    cache.delete(QUOTA_CACHE_KEY)


def make(author, title, status, **fields) -> Broadcast:
    b = Broadcast.objects.create(title=title, author=author, status=status, **fields)
    b.categories.set(Category.objects.filter(code="childcare_education"))
    return b


@pytest.mark.parametrize(
    ("role_fixture", "present", "absent"),
    [
        ("drafter", ["my-drafts"], ["review-queue", "emergency-approvals"]),
        ("reviewer", ["review-queue", "my-drafts"], ["emergency-approvals"]),
        ("supervisor", ["review-queue", "emergency-approvals", "my-drafts"], []),
        ("admin_user", ["no-actions"], ["review-queue", "emergency-approvals", "my-drafts"]),
    ],
)
def test_each_role_sees_its_sections(
    request, page, live_server, line_sandbox, other_drafter, role_fixture, present, absent
):
    user = request.getfixturevalue(role_fixture)
    now = dt.datetime.now(tz=JST)
    make(other_drafter, "審査待ちの配信", Broadcast.Status.PENDING_REVIEW, submitted_at=now)
    make(
        other_drafter,
        "緊急の申請",
        Broadcast.Status.PENDING_REVIEW,
        submitted_at=now,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="大雨",
    )
    make(user, "自分の下書き", Broadcast.Status.DRAFT)
    login_as(page, live_server, user)

    action = page.locator("[data-testid=dash-action]")
    for testid in present:
        expect(action.locator(f"[data-testid={testid}]")).to_be_visible()
    for testid in absent:
        expect(action.locator(f"[data-testid={testid}]")).to_have_count(0)
    for common in ("quota", "followers", "dash-sending", "dash-schedule", "dash-held"):
        expect(page.locator(f"[data-testid={common}]")).to_be_visible()
    if role_fixture == "supervisor":
        expect(action.locator("[data-testid=emergency-approvals]")).to_contain_text("緊急の申請")
        expect(action.locator("[data-testid=review-queue]")).to_contain_text("審査待ちの配信")
        expect(action.locator("[data-testid=review-queue]")).not_to_contain_text("緊急の申請")


def test_a_broadcast_moves_from_held_to_sending_to_sent_without_a_reload(
    page, live_server, line_sandbox, drafter, reviewer, supervisor, time_machine
):
    time_machine.move_to(EARLY, tick=True)
    login_as(page, live_server, supervisor)
    page.evaluate("window.__kwNoReload = true")
    expect(page.locator("[data-testid=outside-window]")).to_contain_text(
        "現在は配信時間外です。次回の配信開始: 11/30(月) 8:30"
    )

    broadcast = approved_broadcast(
        author=drafter,
        approver=reviewer,
        title="子育てひろばのお知らせ",
        audience=Broadcast.Audience.ALL,
        now=EARLY,
    )
    assert broadcast.hold_reason  # before 8:30: held until the window opens
    held = page.locator("[data-testid=dash-held]")
    expect(held).to_contain_text("子育てひろばのお知らせ", timeout=POLL_TIMEOUT_MS)
    expect(held).to_contain_text("8:30 前のため", timeout=POLL_TIMEOUT_MS)

    time_machine.move_to(LATER, tick=True)
    assert broadcast.pk in services.broadcasts_dispatch_due(now=LATER).claimed
    sending = page.locator(f"[data-testid=sending-{broadcast.pk}]")
    expect(sending).to_contain_text("子育てひろばのお知らせ", timeout=POLL_TIMEOUT_MS)
    expect(sending).to_contain_text("回分の送信を LINE が受け付けました")
    expect(sending.locator("progress")).to_have_count(1)
    expect(held).not_to_contain_text("子育てひろばのお知らせ", timeout=POLL_TIMEOUT_MS)
    expect(page.locator("[data-testid=outside-window]")).to_have_count(0, timeout=40_000)

    outcome = services.broadcast_send(broadcast_id=broadcast.pk, sleep=no_sleep)
    broadcast.refresh_from_db()
    assert outcome.status == "sent", broadcast.last_error
    today = page.locator(f"[data-testid=schedule-today] [data-broadcast='{broadcast.pk}']")
    expect(today).to_contain_text("配信済み", timeout=POLL_TIMEOUT_MS)
    expect(page.locator("[data-testid=sending-empty]")).to_be_visible(timeout=POLL_TIMEOUT_MS)

    assert page.evaluate("window.__kwNoReload") is True
    save_screenshot(page, "dashboard-after-send")


def test_dashboard_with_every_section_filled_is_accessible(
    page, live_server, line_sandbox, drafter, supervisor
):
    now = dt.datetime.now(tz=JST)
    make(drafter, "審査待ち", Broadcast.Status.PENDING_REVIEW, submitted_at=now)
    make(supervisor, "差し戻し", Broadcast.Status.REJECTED)
    make(
        drafter,
        "保留中",
        Broadcast.Status.SCHEDULED,
        scheduled_for=now + dt.timedelta(days=1),
        hold_reason="閉庁日のため送信を保留",
    )
    make(
        drafter,
        "配信中",
        Broadcast.Status.SENDING,
        deliveries_total=4,
        deliveries_accepted=1,
        recipient_count=2000,
    )
    make(drafter, "要対応", Broadcast.Status.NEEDS_ATTENTION, last_error="月間上限")
    make(drafter, "送信済み", Broadcast.Status.SENT, scheduled_for=now, sent_at=now)
    line_sandbox.state.set_quota(type="limited", value=5000)
    login_as(page, live_server, supervisor)
    expect(page.locator("#kw-quota-meter")).to_be_visible()
    expect(page.locator("[data-testid=problem-list]")).to_contain_text("月間上限")
    assert_accessible(page)
    save_screenshot(page, "dashboard-filled")


# --- charts ------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of raw pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = color_type = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color_type = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color_type in (2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 4 if color_type == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filter_type, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if filter_type == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filter_type == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, bpp, rows


def non_white_share(png: bytes) -> float:
    width, bpp, rows = png_pixels(png)
    coloured = total = 0
    for row in rows:
        for x in range(0, width * bpp, bpp):
            total += 1
            if min(row[x], row[x + 1], row[x + 2]) < 235:
                coloured += 1
    return coloured / total


def test_statistics_charts_render(page, live_server, reviewer):
    today = dt.datetime.now(tz=JST).replace(hour=10, minute=0, second=0, microsecond=0)
    codes = ["childcare_education", "events", "health_welfare"]
    for i in range(12):
        at = today - dt.timedelta(days=i + 1)
        b = Broadcast.objects.create(
            title=f"配信{i}",
            author=reviewer,
            status=Broadcast.Status.SENT,
            scheduled_for=at,
            sent_at=at,
            recipient_count=1000 + 150 * i,
        )
        b.categories.set(Category.objects.filter(code=codes[i % 3]))
        BroadcastStats.objects.create(
            broadcast=b,
            fetched_at=at,
            ready=True,
            delivered=1000 + 150 * i,
            unique_impression=400 + 20 * i,
        )
        DailyStats.objects.create(date=at.date(), fetched_at=at, followers=50_000 + 40 * i)
    login_as(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:stats"))

    for kind in ("days", "categories"):
        canvas = page.locator(f"canvas[data-kw-chart={kind}]")
        expect(canvas).to_have_attribute("data-kw-chart-ready", "true")
        png = canvas.screenshot()
        share = non_white_share(png)
        # Bars, a line, axes and labels: far from blank, far from a solid block.
        assert 0.02 < share < 0.9, f"{kind} chart looks blank or broken ({share:.3f})"
    # A blank canvas of the same page is white: the check can tell.
    page.evaluate(
        "document.querySelector('canvas[data-kw-chart=days]').getContext('2d')"
        ".clearRect(0, 0, 4000, 4000)"
    )
    blank = non_white_share(page.locator("canvas[data-kw-chart=days]").screenshot())
    assert blank < 0.005
    assert_accessible(page)
    save_screenshot(page, "stats")


def test_month_calendar_is_keyboard_navigable_and_accessible(page, live_server, reviewer):
    now = dt.datetime.now(tz=JST)
    b = make(reviewer, "カレンダーの配信", Broadcast.Status.SCHEDULED, scheduled_for=now)
    login_as(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:calendar_month"))
    link = page.locator(f"[data-broadcast='{b.pk}'] a")
    link.focus()
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(url(live_server, "broadcasts:detail", b.pk))
    page.go_back()
    assert_accessible(page)
    page.goto(url(live_server, "broadcasts:calendar_week"))
    expect(page.locator(f"[data-broadcast='{b.pk}']")).to_contain_text("子育て・教育")
    assert_accessible(page)
