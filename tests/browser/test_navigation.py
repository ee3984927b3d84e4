"""The page chrome in a real browser: login, role-aware navigation, header, language, a11y."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url

pytestmark = pytest.mark.browser

NAV = "[data-testid=main-nav] .nav-link"


@pytest.fixture
def all_nav_urls(settings):
    """Every nav target resolves, so the menu shows exactly what each role may use."""
    settings.ROOT_URLCONF = "tests.browser.nav_urls"


def nav_labels(page) -> list[str]:
    return [text.strip() for text in page.locator(NAV).all_inner_texts()]


def test_anonymous_visitor_is_sent_to_login(page, live_server):
    page.goto(live_server.url + "/")

    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.locator("h1")).to_have_text("ログイン")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator(NAV)).to_have_count(0)


def test_bad_password_shows_japanese_error(page, live_server, drafter):
    page.goto(url(live_server, "login"))
    page.fill("#id_username", drafter.username)
    page.fill("#id_password", "wrong-password")
    page.click("#kw-login-form button[type=submit]")

    error = page.locator("[data-testid=login-error]")
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("正しいユーザー名とパスワードを入力してください")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


@pytest.mark.parametrize(
    ("role_fixture", "expected_nav", "expected_role"),
    [
        ("drafter", ["ダッシュボード", "配信一覧", "新規作成", "カレンダー", "統計"], "起案者"),
        (
            "reviewer",
            [
                "ダッシュボード",
                "配信一覧",
                "新規作成",
                "承認待ち",
                "受信した防災情報",
                "市民からのメッセージ",
                "カレンダー",
                "統計",
                "操作履歴",
            ],
            "広報担当",
        ),
        (
            "supervisor",
            [
                "ダッシュボード",
                "配信一覧",
                "新規作成",
                "承認待ち",
                "受信した防災情報",
                "市民からのメッセージ",
                "カレンダー",
                "統計",
                "操作履歴",
            ],
            "承認者",
        ),
        (
            "admin_user",
            [
                "ダッシュボード",
                "配信一覧",
                "受信した防災情報",
                "市民からのメッセージ",
                "カレンダー",
                "統計",
                "操作履歴",
                "リッチメニュー",
                "運用状況",
                "管理",
            ],
            "管理者",
        ),
    ],
)
def test_each_role_sees_exactly_its_navigation(
    request, page, live_server, all_nav_urls, role_fixture, expected_nav, expected_role
):
    user = request.getfixturevalue(role_fixture)
    login_as(page, live_server, user)

    assert nav_labels(page) == expected_nav
    expect(page.locator("[data-testid=current-user]")).to_contain_text(str(user))
    expect(page.locator("[data-testid=current-user] .kw-role")).to_have_text([expected_role])
    dashboard = page.locator(NAV, has_text="ダッシュボード")
    expect(dashboard).to_have_attribute("aria-current", "page")


def test_nav_omits_pages_that_do_not_exist_yet(page, live_server, reviewer, settings):
    settings.ROOT_URLCONF = "kashiwa.urls"
    login_as(page, live_server, reviewer)

    from broadcasts.templatetags.kashiwa import url_if_exists

    for name, label in [
        ("broadcasts:list", "配信一覧"),
        ("broadcasts:create", "新規作成"),
        ("broadcasts:review_queue", "承認待ち"),
        ("broadcasts:calendar", "カレンダー"),
    ]:
        expected = 1 if url_if_exists(name) else 0
        expect(page.locator(NAV, has_text=label)).to_have_count(expected)


def test_admin_link_opens_django_admin(page, live_server, admin_user):
    login_as(page, live_server, admin_user)
    page.locator(NAV, has_text="管理").click()

    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name")).to_contain_text("柏市役所")


def test_header_shows_account_name_and_id(page, live_server, drafter):
    page.goto(url(live_server, "login"))
    brand = page.locator("header .kw-brand")
    expect(brand).to_contain_text("柏市役所")
    expect(brand).to_contain_text("@kashiwa_shi")

    login_as(page, live_server, drafter)
    expect(page.locator("header")).to_contain_text("柏市役所")
    expect(page.locator("header")).to_contain_text("@kashiwa_shi")
    expect(page).to_have_title(re.compile("ダッシュボード.*柏市役所"))


def test_sandbox_banner_links_to_the_sandbox(page, live_server, drafter):
    assert django_settings.LINE_USES_SANDBOX  # no channel token in the test environment
    login_as(page, live_server, drafter)

    banner = page.locator(".kw-sandbox-banner")
    expect(banner).to_contain_text("サンドボックス接続中（実際の LINE には送信されません）")
    expect(banner.locator("a")).to_have_attribute("href", django_settings.SANDBOX_URL)


def test_switch_language_to_english_and_back(page, live_server, all_nav_urls, reviewer):
    login_as(page, live_server, reviewer)

    page.locator("[data-testid=language-switcher] button", has_text="English").click()

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(NAV).first).to_have_text("Dashboard")
    expect(page.locator(NAV, has_text="Awaiting approval")).to_have_count(1)
    expect(page.locator("[data-testid=current-user] .kw-role")).to_have_text(["PR reviewer"])
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page).to_have_url(url(live_server, "broadcasts:dashboard"))

    page.locator("[data-testid=language-switcher] button", has_text="日本語").click()

    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator(NAV).first).to_have_text("ダッシュボード")


def test_logout_is_a_post_and_returns_to_login(page, live_server, drafter):
    login_as(page, live_server, drafter)

    page.get_by_role("button", name="ログアウト").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_login_page_is_accessible(page, live_server, drafter):
    page.goto(url(live_server, "login"))
    assert_accessible(page)

    page.fill("#id_username", drafter.username)
    page.fill("#id_password", "wrong-password")
    page.click("#kw-login-form button[type=submit]")
    expect(page.locator("[data-testid=login-error]")).to_be_visible()
    assert_accessible(page)


def test_dashboard_is_accessible_and_screenshot(page, live_server, all_nav_urls, supervisor):
    login_as(page, live_server, supervisor)

    assert_accessible(page)
    path = save_screenshot(page, "dashboard-supervisor")
    assert path.stat().st_size > 0


def test_skip_link_moves_focus_to_main(page, live_server, drafter):
    login_as(page, live_server, drafter)

    page.keyboard.press("Tab")
    skip = page.locator(".kw-skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
