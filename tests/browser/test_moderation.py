"""The moderation inbox walked by a 広報担当 in Chromium, at desktop width and at 390 px:
flagged first, personal data masked, then flag, stop replies and record a 措置 on a message."""

from __future__ import annotations

import datetime as dt

import pytest

from broadcasts.models import BroadcastEvent, CitizenMessage, ModerationMeasure, ReplySuppression
from broadcasts.services import moderation
from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url

pytestmark = pytest.mark.browser

NOW = dt.datetime(2027, 2, 26, 1, 30, tzinfo=dt.UTC)
SPAMMER = "U" + "f6" * 16
CITIZEN = "U" + "a7" * 16


def keep(text: str, *, user: str, minutes: int, event_id: str) -> None:
    moderation.citizen_message_receive(
        webhook_event_id=event_id,
        line_user_id=user,
        message_type="text",
        text=text,
        at=NOW + dt.timedelta(minutes=minutes),
    )


@pytest.fixture
def inbox(db):
    keep("副業で月50万稼げる！連絡は 090-1234-5678 まで", user=SPAMMER, minutes=0, event_id="s1")
    keep("ごみの収集日を教えてください", user=CITIZEN, minutes=5, event_id="c1")
    keep("市長は無能", user=CITIZEN, minutes=10, event_id="c2")


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_a_reviewer_walks_the_inbox(page, live_server, reviewer, inbox, width):
    page.set_viewport_size({"width": width, "height": 900})
    login_as(page, live_server, reviewer)
    if width < 768:
        page.get_by_role("button", name="メニュー").click()
    page.get_by_test_id("main-nav").get_by_role("link", name="市民からのメッセージ").click()
    page.wait_for_url(url(live_server, "broadcasts:moderation_inbox"))

    items = page.locator("[data-testid=inbox-list] > li")
    assert items.count() == 3
    # flagged first (newest of them first), then the rest
    flags = [items.nth(i).get_attribute("data-flagged") for i in range(3)]
    assert flags == ["yes", "yes", "no"]
    assert "市長は無能" in items.nth(0).inner_text()
    spam = items.nth(1)
    assert "090-1234-5678" not in spam.inner_text()
    assert "＊＊＊" in spam.inner_text()
    assert "ポリシー6(5) 広告・営利目的" in spam.inner_text()
    assert_accessible(page)
    save_screenshot(page, f"moderation-inbox-{width}")

    # search and filter
    page.get_by_label("検索（本文・メモ・ユーザーID）").fill("ごみ")
    page.get_by_role("button", name="絞り込む").click()
    assert page.locator("[data-testid=inbox-list] > li").count() == 1
    page.goto(url(live_server, "broadcasts:moderation_inbox"))

    # act on the spammer's message
    spam = page.locator("[data-testid=inbox-list] > li").nth(1)
    spam.get_by_role("link", name="詳細・対応").click()
    assert page.get_by_test_id("message-text").inner_text().endswith("090-1234-5678 まで")
    assert "ブロックできません" in page.get_by_test_id("cannot-block").inner_text()
    assert_accessible(page)

    page.get_by_label("停止する日数").fill("14")
    page.get_by_label("理由").fill("勧誘の繰り返し")
    page.get_by_role("button", name="自動応答を停止する").click()
    assert "自動応答を" in page.locator(".kw-messages .alert-success").inner_text()
    assert page.get_by_test_id("suppression-active").is_visible()

    page.locator("#id_kind").select_option(label="LINE 公式アカウント管理画面でブロック済み")
    page.get_by_role("button", name="措置を記録する").click()
    assert (
        "LINE 公式アカウント管理画面でブロック済み" in page.get_by_test_id("measures").inner_text()
    )

    page.get_by_label("該当する禁止事項（ポリシー6）").select_option(index=5)  # 6(5)
    page.get_by_role("button", name="フラグを付ける").click()
    assert "6(5)" in page.get_by_test_id("flag-state").inner_text()
    assert_accessible(page)
    save_screenshot(page, f"moderation-message-{width}")

    message = CitizenMessage.objects.get(webhook_event_id="s1")
    assert message.flagged_by == reviewer
    assert ReplySuppression.objects.get().line_user_id == SPAMMER
    assert ModerationMeasure.objects.get().kind == ModerationMeasure.Kind.BLOCKED
    assert set(
        BroadcastEvent.objects.filter(actor=reviewer)
        .exclude(verb="login")
        .values_list("verb", flat=True)
    ) == {"reply_suppressed", "moderation_measure_recorded", "citizen_message_flagged"}
