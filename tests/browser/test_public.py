"""The public verification page in a real browser, without logging in (and without JS)."""

from __future__ import annotations

import pytest

from broadcasts.models import PublicNotice
from tests.fixtures.browser import assert_accessible, save_screenshot, url

pytestmark = pytest.mark.browser


def test_verification_page_without_login(page, live_server):
    PublicNotice.objects.create(
        title="「柏市役所」を名乗る偽アカウントにご注意ください",
        body="アカウントIDが @kashiwa_shi でないアカウントは柏市のものではありません。",
        is_published=True,
    )
    page.goto(url(live_server, "broadcasts:public_account"))
    assert page.url.endswith("/public/")  # not redirected to the login page
    assert page.get_by_role("heading", level=1).inner_text() == "柏市 LINE 公式アカウントの確認"
    assert page.locator(".kw-account-value").all_inner_texts() == ["柏市役所", "@kashiwa_shi"]
    assert page.get_by_text("偽アカウントにご注意ください").is_visible()
    qr = page.get_by_role("img", name="柏市役所（@kashiwa_shi）を友だち追加する QR コード")
    assert qr.is_visible()
    assert page.evaluate("document.querySelector('.kw-qr img').naturalWidth") > 0  # SVG loaded
    link = page.get_by_role("link", name="LINE で友だち追加する")
    assert link.get_attribute("href") == "https://line.me/R/ti/p/@kashiwa_shi"
    assert_accessible(page)
    save_screenshot(page, "public-account")

    page.get_by_role("link", name="運用ポリシー", exact=True).click()
    page.wait_for_url("**/public/policy/")
    assert page.get_by_role("heading", name="5 運用方法等").is_visible()
    assert page.get_by_role("heading", name="変更履歴").is_visible()
    assert_accessible(page)


def test_verification_page_works_without_javascript(browser, live_server):
    context = browser.new_context(java_script_enabled=False, locale="ja-JP")
    try:
        page = context.new_page()
        page.goto(url(live_server, "broadcasts:public_account"))
        assert page.get_by_text("@kashiwa_shi").first.is_visible()
        page.goto(url(live_server, "broadcasts:public_policy"))
        assert page.get_by_role("heading", name="10 個人情報の取扱いについて").is_visible()
        page.goto("about:blank")
    finally:
        context.close()
