"""Approving from a phone (issue 13 item 2): the review queue, a broadcast's page and the
emergency approval at 390 × 844 px — no horizontal scroll, titles readable, filters folded
away, tap targets at least 44 px, and axe finds no serious problem."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from broadcasts import services
from broadcasts.models import Broadcast, Category
from tests.broadcasts.sending.helpers import make_followers
from tests.factories import text_message
from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
MIN_TARGET = 44
LONG_TITLE = (
    "【柏市】利根川の水位上昇に伴う柏第一小学校区・柏第二小学校区への避難指示の発令について"
)

# What a thumb taps: buttons, form controls, disclosure toggles and the rows' title links.
TARGETS = (
    "main button:visible, main a.btn:visible, main input:not([type=hidden]):visible, "
    "main select:visible, main textarea:visible, main summary:visible, "
    "main [data-testid=broadcast-row] a:visible, header button:visible"
)


def _measure(page: Page) -> dict:
    return page.evaluate(
        """(selector) => {
            const doc = document.documentElement;
            const small = [];
            const all = Array.from(document.querySelectorAll(
                'main button, main a.btn, main input:not([type=hidden]), main select, '
                + 'main textarea, main summary, main [data-testid=broadcast-row] a, header button'));
            for (const el of all) {
                const r = el.getBoundingClientRect();
                const style = getComputedStyle(el);
                if (r.width === 0 || r.height === 0 || style.visibility === 'hidden') continue;
                // A visually hidden .btn-check's label is the target, not the input.
                if (el.classList.contains('btn-check')) continue;
                if (el.type === 'checkbox' || el.type === 'radio') {
                    const label = el.closest('label') || document.querySelector(`label[for="${el.id}"]`);
                    const box = (label && label.closest('.form-check')) || label;
                    const lr = box ? box.getBoundingClientRect() : r;
                    if (lr.height < 44) small.push(`${el.outerHTML.slice(0, 80)} ${lr.width}x${lr.height}`);
                    continue;
                }
                if (r.height < 44 || r.width < 44) {
                    small.push(`${el.outerHTML.slice(0, 100)} ${Math.round(r.width)}x${Math.round(r.height)}`);
                }
            }
            return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, small};
        }""",
        TARGETS,
    )


def assert_fits_a_phone(page: Page, name: str) -> None:
    """No horizontal scroll, every target at least 44 px, readable h1, axe clean."""
    page.wait_for_load_state("networkidle")
    measured = _measure(page)
    save_screenshot(page, f"phone-{name}")
    assert measured["scrollWidth"] <= measured["innerWidth"], (
        f"{name}: the page scrolls sideways ({measured['scrollWidth']} > {measured['innerWidth']})"
    )
    assert not measured["small"], f"{name}: tap targets under 44 px:\n" + "\n".join(
        measured["small"]
    )
    heading = page.locator("main h1").first
    box = heading.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    size = float(heading.evaluate("el => parseFloat(getComputedStyle(el).fontSize)"))
    assert size >= 20, f"{name}: the title is {size}px"
    assert_accessible(page)


def title_is_readable(page: Page, text: str) -> None:
    """The whole title is on screen (wrapped, not cut off or scrolled)."""
    title = page.locator("main :is(h1, a)", has_text=text).first
    expect(title).to_be_visible()
    fits = title.evaluate(
        """el => {
            const r = el.getBoundingClientRect();
            const style = getComputedStyle(el);
            return r.left >= 0 && r.right <= window.innerWidth
                && el.scrollWidth <= el.clientWidth + 1
                && style.textOverflow !== 'ellipsis'
                && parseFloat(style.fontSize) >= 14;
        }"""
    )
    assert fits, f"the title 「{text}」 is cut off or too small"


@pytest.fixture
def phone(page: Page) -> Page:
    page.set_viewport_size(PHONE)
    return page


@pytest.fixture
def waiting(drafter, db):
    make_followers([f"U{i:032x}" for i in range(5)], ["disaster_crime", "childcare_education"])
    emergency = services.broadcast_create(
        author=drafter,
        title=LONG_TITLE,
        categories=[Category.objects.get(code="disaster_crime")],
        messages=[text_message("【柏市】利根川の水位上昇により、避難指示を発令しました。")],
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="利根川が氾濫危険水位を超過",
    )
    services.broadcast_submit(broadcast=emergency, actor=drafter)
    ordinary = []
    for n in range(3):
        b = services.broadcast_create(
            author=drafter,
            title=f"令和9年度 保育園・認定こども園の入園申込受付のお知らせ（第{n + 1}回）",
            categories=list(Category.objects.filter(code__in=["childcare_education", "municipal"])),
            messages=[text_message("入園申込を受け付けます。")],
            requested_at=timezone.now() + dt.timedelta(days=3),
        )
        services.broadcast_submit(broadcast=b, actor=drafter)
        ordinary.append(b)
    return emergency, ordinary


def verify_second_factor(page: Page, supervisor) -> None:
    """From the approval screen: follow the link, type the code, come back (as on a phone)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.broadcasts.test_otp import code

    device = TOTPDevice.objects.create(user=supervisor, name="認証アプリ", confirmed=True)
    approval_url = page.url
    page.get_by_role("link", name="二要素認証へ進む").click()
    page.fill("#id_token", code(device))
    page.get_by_role("button", name="確認").click()
    page.wait_for_url(approval_url)


def test_a_reviewer_works_the_queue_on_a_phone(phone, live_server, reviewer, waiting):
    _emergency, ordinary = waiting
    login_as(phone, live_server, reviewer)
    phone.goto(url(live_server, "broadcasts:review_queue"))
    # Filters are folded away until asked for.
    expect(phone.locator("#id_q")).to_be_hidden()
    assert_fits_a_phone(phone, "review-queue")
    title_is_readable(phone, ordinary[0].title)
    phone.get_by_text("絞り込み・検索").click()
    expect(phone.locator("#id_q")).to_be_visible()
    assert_fits_a_phone(phone, "review-queue-filters")

    phone.get_by_role("link", name=ordinary[0].title).click()
    expect(phone.locator("[data-testid=status]")).to_have_text("承認待ち")
    assert_fits_a_phone(phone, "detail")
    title_is_readable(phone, ordinary[0].title)


def test_a_supervisor_approves_an_emergency_on_a_phone(phone, live_server, supervisor, waiting):
    emergency, _ordinary = waiting
    login_as(phone, live_server, supervisor)
    phone.goto(url(live_server, "broadcasts:review_queue"))
    assert_fits_a_phone(phone, "review-queue-supervisor")
    # Emergencies first.
    first = phone.locator("[data-testid=broadcast-row]").first
    expect(first).to_contain_text(LONG_TITLE)

    phone.goto(url(live_server, "broadcasts:detail", emergency.pk))
    assert_fits_a_phone(phone, "emergency-detail")
    title_is_readable(phone, LONG_TITLE)
    phone.get_by_role("link", name="緊急承認へ").click()
    assert_fits_a_phone(phone, "emergency-approve-needs-code")
    verify_second_factor(phone, supervisor)
    expect(phone.locator("[data-testid=second-factor-ok]")).to_be_visible()
    assert_fits_a_phone(phone, "emergency-approve")
    count = phone.locator("[data-testid=recipient-count]").inner_text()
    phone.fill("#id_emergency_typed_count", count)
    phone.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(phone.get_by_text("緊急配信を承認しました。直ちに送信します。")).to_be_visible()
    emergency.refresh_from_db()
    assert emergency.approved_by == supervisor
