"""Compose and review in a real browser (issue 4's "done when")."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from broadcasts.models import Broadcast, Category
from broadcasts.schedule import JST
from broadcasts.services import broadcast_approve, broadcast_create, broadcast_submit
from tests.factories import text_message
from tests.fixtures.browser import login_as, save_screenshot, url

pytestmark = pytest.mark.browser

STATUS = "[data-testid=status]"


def next_sunday() -> dt.date:
    today = timezone.now().astimezone(JST).date()
    return today + dt.timedelta(days=(6 - today.weekday()) or 7)


def switch_user(page, live_server, user) -> None:
    page.context.clear_cookies()
    login_as(page, live_server, user)


def post_approval_behind_the_screen(page, live_server, broadcast) -> int:
    """POST the approval form as the signed-in user would, though the screen offers no
    button (an insider crafting the request); returns the HTTP status."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        url(live_server, "broadcasts:approve", broadcast.pk),
        form={"seen_hash": broadcast.content_hash, "csrfmiddlewaretoken": csrf},
        headers={"X-CSRFToken": csrf, "Referer": live_server.url + "/"},
    )
    return response.status


def pending_broadcast(author, title="保育園入園申込のお知らせ") -> Broadcast:
    broadcast = broadcast_create(
        author=author,
        title=title,
        categories=[Category.objects.get(code="childcare_education")],
        messages=[text_message("令和9年度の保育園入園申込を受け付けます。")],
    )
    return broadcast_submit(broadcast=broadcast, actor=author)


def test_drafter_composes_three_messages_and_a_reviewer_approves(
    page, live_server, drafter, reviewer, line_sandbox
):
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))

    page.fill("#id_title", "子育て応援フェア")
    page.get_by_text("子育てや教育に関する情報", exact=True).click()
    text = "子育て応援フェアを開催します👶"
    page.fill("#id_m-0-text", text)
    # Emoji outside the BMP count 2 UTF-16 units, as LINE counts them.
    expect(page.locator("[data-kw-message]").first.locator("[data-kw-count]")).to_have_text(
        str(len(text) + 1)
    )

    page.get_by_role("button", name="＋ 画像").click()
    page.fill("#id_m-1-image_url", "https://www.city.kashiwa.lg.jp/images/fair.jpg")
    page.get_by_role("button", name="＋ カード").click()
    page.fill("#id_m-2-card_title", "参加申込")
    page.fill("#id_m-2-card_text", "申込は専用ページから")
    page.fill("#id_m-2-action1_label", "申請する")
    page.fill("#id_m-2-action1_uri", "https://www.city.kashiwa.lg.jp/fair/apply")

    preview = page.locator("#kw-preview")
    expect(preview.locator(".kw-chat-row")).to_have_count(3)
    expect(preview.locator(".kw-bubble-text")).to_have_text(text)
    expect(preview.locator(".kw-bubble-image img")).to_have_attribute(
        "src", "https://www.city.kashiwa.lg.jp/images/fair.jpg"
    )
    expect(preview.locator(".kw-card-title")).to_have_text("参加申込")
    expect(preview.locator(".kw-card-button")).to_have_text("申請する")

    # Reorder with the keyboard-accessible buttons: the card moves up, names follow.
    page.get_by_role("button", name=re.compile(r"上へ移動\s*（メッセージ 3）")).click()
    expect(preview.locator(".kw-chat-row").nth(1).locator(".kw-card")).to_have_count(1)
    expect(page.locator("#id_m-1-card_title")).to_have_value("参加申込")
    page.get_by_role("button", name=re.compile(r"下へ移動\s*（メッセージ 2）")).click()
    expect(page.locator("#id_m-2-card_title")).to_have_value("参加申込")

    # The effective time and why, next to the time field.
    sunday = next_sunday()
    page.check("#id_timing_1")
    page.fill("#id_requested_at", f"{sunday.isoformat()}T10:00")
    page.locator("#id_requested_at").dispatch_event("change")
    expect(page.locator("#kw-effective")).to_contain_text(
        f"{sunday.month}/{sunday.day}(日)は閉庁日のため"
    )

    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("下書き")
    broadcast = Broadcast.objects.get()
    assert [m["type"] for m in broadcast.messages] == ["text", "image", "template"]
    expect(page.locator("[data-testid=checklist]")).to_contain_text(
        "LINE が受け付けられる形式であることを確認しました"
    )
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.locator(STATUS)).to_have_text("承認待ち")
    save_screenshot(page, "compose-submitted")

    switch_user(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:review_queue"))
    page.get_by_role("link", name="子育て応援フェア").click()
    expect(page.locator("[data-testid=line-preview] .kw-chat-row")).to_have_count(3)
    page.get_by_role("button", name="この内容で承認する").click()
    expect(page.locator(STATUS)).to_have_text("配信予定")
    broadcast.refresh_from_db()
    assert broadcast.approved_by == reviewer


def test_script_in_text_is_shown_escaped_in_the_preview(page, live_server, drafter):
    login_as(page, live_server, drafter)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url(live_server, "broadcasts:create"))
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    page.fill("#id_m-0-text", evil)
    expect(page.locator("#kw-preview .kw-bubble-text")).to_have_text(evil)
    assert dialogs == []


def test_errors_keep_everything_typed(page, live_server, drafter):
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    page.fill("#id_title", "カテゴリなし")
    page.fill("#id_m-0-text", "本文はこのまま残ります")
    page.get_by_role("button", name="＋ 画像").click()
    page.fill("#id_m-1-image_url", "http://www.city.kashiwa.lg.jp/a.jpg")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator("#id_categories_error")).to_have_text("カテゴリを1つ以上選んでください。")
    expect(page.locator("#id_m-1-image_url")).to_have_value("http://www.city.kashiwa.lg.jp/a.jpg")
    expect(page.get_by_text("画像は https:// の URL で指定してください。")).to_be_visible()
    expect(page.locator("#id_m-0-text")).to_have_value("本文はこのまま残ります")
    expect(page.locator("#id_title")).to_have_value("カテゴリなし")


def test_the_author_cannot_approve_their_own(page, live_server, reviewer):
    broadcast = pending_broadcast(reviewer)
    login_as(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:detail", broadcast.pk))
    expect(page.locator(STATUS)).to_have_text("承認待ち")
    expect(page.get_by_role("button", name="この内容で承認する")).to_have_count(0)
    assert post_approval_behind_the_screen(page, live_server, broadcast) == 403
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW


def test_an_edit_after_approval_sends_it_back_to_review(page, live_server, drafter, reviewer):
    broadcast = broadcast_approve(broadcast=pending_broadcast(drafter), actor=reviewer)
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:detail", broadcast.pk))
    expect(page.locator(STATUS)).to_have_text("配信予定")
    page.get_by_role("link", name="編集する").click()
    page.fill("#id_m-0-text", "申込期間を訂正しました。")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("承認待ち")
    expect(page.get_by_role("alert").filter(has_text="もう一度承認が必要です")).to_be_visible()
    switch_user(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:detail", broadcast.pk))
    expect(page.locator("[data-testid=diff]")).to_contain_text("申込期間を訂正しました。")


def test_rejection_with_a_comment_returns_it_to_the_author(page, live_server, drafter, reviewer):
    broadcast = pending_broadcast(drafter)
    login_as(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:detail", broadcast.pk))
    page.get_by_role("button", name="差し戻す").click()
    expect(page.get_by_text("差し戻しの理由を入力してください。")).to_be_visible()
    page.fill("#id_reject_comment", "申込期限を追記してください。")
    page.get_by_role("button", name="差し戻す").click()
    expect(page.locator(STATUS)).to_have_text("差し戻し")

    switch_user(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:list") + "?tab=mine")
    page.get_by_role("link", name="保育園入園申込のお知らせ").click()
    expect(page.locator("[data-testid=rejection]")).to_contain_text("申込期限を追記してください。")
    page.get_by_role("link", name="編集する").click()
    expect(page).to_have_url(re.compile(rf"/broadcasts/{broadcast.pk}/edit/$"))


def test_compose_and_review_pages_are_accessible(
    page, live_server, drafter, reviewer, line_sandbox
):
    from tests.fixtures.browser import assert_accessible

    broadcast = pending_broadcast(drafter)
    login_as(page, live_server, reviewer)
    for target in (
        url(live_server, "broadcasts:create"),
        url(live_server, "broadcasts:detail", broadcast.pk),
        url(live_server, "broadcasts:list"),
        url(live_server, "broadcasts:review_queue"),
        url(live_server, "broadcasts:templates"),
        url(live_server, "broadcasts:cancel", broadcast.pk),
    ):
        page.goto(target)
        assert_accessible(page)


def test_a_reviewer_who_rewrites_a_broadcast_cannot_approve_it(
    page, live_server, drafter, reviewer
):
    """Four eyes over authorship (issue 11 finding 2): 赤入れ is allowed, approving it is not."""
    broadcast = pending_broadcast(drafter)
    login_as(page, live_server, reviewer)
    page.goto(url(live_server, "broadcasts:edit", broadcast.pk))
    expect(page.locator("[data-testid=editor-note]")).to_be_visible()
    page.fill("#id_m-0-text", "詳しくは https://evil.example/ をご覧ください。")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator("[data-testid=edited-by-me]")).to_be_visible()
    expect(page.get_by_role("button", name="この内容で承認する")).to_have_count(0)
    broadcast.refresh_from_db()
    assert post_approval_behind_the_screen(page, live_server, broadcast) == 403
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW and broadcast.approved_by is None


def test_choosing_the_emergency_category_switches_the_priority_on_screen(
    page, live_server, drafter
):
    """Issue 13 item 4: 緊急情報 and the priority agree visibly (the server makes it an
    emergency anyway; the screen must not say 通常 meanwhile)."""
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    normal = page.locator("input[name=priority][value=normal]")
    emergency = page.locator("input[name=priority][value=emergency]")
    expect(normal).to_be_checked()
    page.get_by_text(
        "自然災害や緊急事象発生時など市民生活に特に影響を与える緊急情報", exact=True
    ).click()
    expect(emergency).to_be_checked()
    expect(normal).to_be_disabled()
    expect(page.locator("[data-kw-priority-note]")).to_contain_text("優先度を「緊急」にしました")
    expect(page.locator("#kw-effective")).to_contain_text("緊急配信のため")
    # Unticking it puts back what the drafter had.
    page.get_by_text(
        "自然災害や緊急事象発生時など市民生活に特に影響を与える緊急情報", exact=True
    ).click()
    expect(normal).to_be_checked()
    expect(normal).to_be_enabled()


def test_choosing_out_of_hours_asks_for_the_reason_and_explains_the_approval(
    page, live_server, drafter
):
    """Issue 13 item 5: 時間外配信 is a choice of its own, with its reason, never red."""
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    reason = page.locator("#id_out_of_hours_reason")
    expect(reason).to_be_hidden()
    page.locator("input[name=priority][value=out_of_hours]").check()
    expect(reason).to_be_visible()
    expect(page.locator("#kw-effective")).to_contain_text("承認者が二要素認証のうえ承認すると")
    page.fill("#id_title", "日曜日のごみ収集は中止します")
    page.get_by_text("市政に関する情報", exact=True).click()
    page.fill("#id_m-0-text", "台風接近のため、日曜日のごみ収集は中止します。")
    reason.fill("台風接近に伴い前日夜に周知する必要があるため")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("下書き")
    expect(page.locator("[data-testid=out-of-hours-reason]")).to_contain_text("台風接近")
    broadcast = Broadcast.objects.get()
    assert broadcast.priority == Broadcast.Priority.OUT_OF_HOURS
    expect(page.locator(".kw-emergency-badge")).to_have_count(0)


def test_the_composer_and_the_checklist_count_the_same(page, live_server, drafter):
    """Issue 13 item 7: line breaks count once in the composer, in the checklist and at LINE
    (the browser sends them as CRLF)."""
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    page.fill("#id_title", "改行を含むお知らせ")
    page.get_by_text("市政に関する情報", exact=True).click()
    page.fill("#id_m-0-text", "一行目\n二行目\n\n三行目")
    counter = page.locator("[data-kw-message]").first.locator("[data-kw-count]")
    expect(counter).to_have_text("12")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("下書き")
    expect(page.locator("[data-testid=checklist]")).to_contain_text("メッセージ1: 12 / 5,000 文字")
    page.get_by_role("link", name="編集する").click()
    expect(page.locator("[data-kw-message]").first.locator("[data-kw-count]")).to_have_text("12")
