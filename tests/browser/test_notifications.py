"""Issue 13's "done when": an emergency at 23:00 reaches the supervisor's phone, and they
approve it from there.

The drafter submits an emergency at 23:00 → the supervisor's linked LINE account (sandbox)
and mailbox receive the alert within seconds → the supervisor opens the link on a 390 px
screen, logs in, verifies the second factor, types the count and approves → citizens receive
it. A second emergency nobody opens escalates to the admin after the configured minutes.

Celery runs eagerly: the alert task enqueued after the submission commits runs in the live
server's thread, as the emergency worker would run it at once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from broadcasts import roles, services
from broadcasts.models import Alert, AlertRound, Broadcast, Category, LineLink
from broadcasts.schedule import JST
from broadcasts.tasks.notifications import approval_alerts_tick
from line_sandbox import text_message_event
from line_sandbox.state import synthetic_user_id
from tests.browser.test_emergency import citizens_follow, code
from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url
from tests.fixtures.users import PASSWORD, make_user

pytestmark = pytest.mark.browser

SUNDAY_23 = dt.datetime(2026, 11, 29, 23, 0, tzinfo=JST)
PHONE = {"width": 390, "height": 844}
STATUS = "[data-testid=status]"
SUPERVISOR_LINE = synthetic_user_id(850_001)
ADMIN_LINE = synthetic_user_id(850_002)


@pytest.fixture
def eager_celery(settings):
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def phone(browser):
    """A second browser: the supervisor's phone, 390 × 844."""
    context = browser.new_context(
        locale="ja-JP", timezone_id="Asia/Tokyo", viewport=PHONE, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def staff_member(username: str, role: str) -> object:
    user = make_user(username, role)
    user.email = f"{username}@city.kashiwa.lg.jp"
    user.save(update_fields=["email"])
    return user


def link_from_phone(page, live_server, line_sandbox, user, line_user_id: str) -> None:
    """The staff member asks for a code on the settings page and sends it from their LINE to
    the official account (the sandbox posts the signed webhook to the live server)."""
    line_sandbox.state.add_followers(user_ids=[line_user_id])
    page.goto(url(live_server, "broadcasts:line_link"))
    expect(page.locator("[data-testid=line-link-status]")).to_have_text("未連携")
    page.get_by_role("button", name="連携コードを発行する").click()
    message = page.locator("[data-testid=line-link-code]").inner_text()
    assert_accessible(page)
    assert re.fullmatch(r"職員連携 [A-Z2-9]{4}-[A-Z2-9]{4}", message)
    result = line_sandbox.send_webhook(
        [text_message_event(line_user_id, message)], url=live_server.url + "/line/webhook/"
    )
    assert result.status == 200
    reply = line_sandbox.inbox(line_user_id)[-1].message["text"]
    assert "連携しました" in reply
    assert LineLink.objects.get(user=user).line_user_id == line_user_id
    page.reload()
    expect(page.locator("[data-testid=line-link-status]")).to_contain_text("連携済み")


def submit_emergency(page, live_server, title: str) -> Broadcast:
    page.goto(url(live_server, "broadcasts:create"))
    page.fill("#id_title", title)
    page.get_by_text("防災・防犯に関する情報", exact=True).click()
    page.fill("#id_m-0-text", "【柏市】利根川の水位上昇により、避難指示を発令しました。")
    page.locator("input[name=priority][value=emergency]").check()
    page.fill("#id_emergency_reason", "利根川が氾濫危険水位を超過")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("下書き")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.locator(STATUS)).to_have_text("承認待ち")
    return Broadcast.objects.get(title=title)


def test_an_emergency_at_23_00_is_approved_from_the_supervisors_phone(
    page, phone, live_server, line_sandbox, eager_celery, time_machine, settings
):
    time_machine.move_to(SUNDAY_23, tick=True)
    settings.SITE_URL = live_server.url
    settings.ALERT_ESCALATION_MINUTES = 5
    drafter = make_user("drafter", roles.DRAFTER, division="防災安全課")
    supervisor = staff_member("supervisor", roles.SUPERVISOR)
    admin = staff_member("admin", roles.ADMIN)
    device = TOTPDevice.objects.create(user=supervisor, name="認証アプリ", confirmed=True)
    citizens_follow(line_sandbox)
    everyone = len(line_sandbox.follower_ids())

    # Once, in the office: the supervisor and the admin link their LINE accounts.
    login_as(page, live_server, supervisor)
    link_from_phone(page, live_server, line_sandbox, supervisor, SUPERVISOR_LINE)
    page.context.clear_cookies()
    login_as(page, live_server, admin)
    link_from_phone(page, live_server, line_sandbox, admin, ADMIN_LINE)
    page.context.clear_cookies()
    settings.SECOND_FACTOR_REQUIRED_GROUPS = (roles.SUPERVISOR, roles.ADMIN)

    # 23:00 on a Sunday: the drafter submits an emergency.
    login_as(page, live_server, drafter)
    submitted = timezone.now()
    broadcast = submit_emergency(page, live_server, "避難指示（利根川）")

    # Within seconds the supervisor's LINE and mailbox have the alert, with the link.
    [push] = line_sandbox.deliveries(endpoint="push", user_id=SUPERVISOR_LINE)
    assert push.accepted_at - submitted < dt.timedelta(seconds=5)
    text = push.messages[0]["text"]
    assert text.startswith("【緊急配信の承認依頼】") and "避難指示（利根川）" in text
    link = re.search(r"http://\S+/alert/", text).group(0)
    [email] = [m for m in mail.outbox if m.to == ["supervisor@city.kashiwa.lg.jp"]]
    assert link in email.body
    assert line_sandbox.deliveries(endpoint="push", user_id=ADMIN_LINE) == []  # not yet

    # The supervisor opens the link on their phone: login, second factor, approval screen.
    phone.goto(link)
    phone.fill("#id_username", "supervisor")
    phone.fill("#id_password", PASSWORD)
    phone.locator("#kw-login-form button[type=submit]").click()
    phone.fill("#id_token", code(device))
    phone.get_by_role("button", name="確認").click()
    phone.wait_for_url(url(live_server, "broadcasts:emergency_approve", broadcast.pk))
    expect(phone.locator("[data-testid=second-factor-ok]")).to_be_visible()
    expect(phone.locator("[data-testid=recipient-count]")).to_have_text(str(everyone))
    # The screen fits the phone and says who was alerted and that they opened it.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    panel = phone.locator("[data-testid=alerts-panel]")
    expect(panel).to_contain_text("supervisor")
    expect(panel.locator("[data-testid=alert-opened]").first).to_contain_text("開封")
    assert_accessible(phone)
    save_screenshot(phone, "alert-approval-390")
    phone.fill("#id_emergency_typed_count", str(everyone))
    phone.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(phone.get_by_text("緊急配信を承認しました。直ちに送信します。")).to_be_visible()

    # Citizens receive it.
    [sent] = line_sandbox.deliveries(endpoint="broadcast")
    assert set(sent.recipients) == set(line_sandbox.follower_ids())
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SENT

    # A second emergency that nobody opens: after five minutes the admin is alerted too.
    second = services.broadcast_create(
        author=drafter,
        title="土砂災害警戒情報",
        categories=[Category.objects.get(code="disaster_crime")],
        messages=[{"type": "text", "text": "【柏市】土砂災害警戒情報が発表されました。"}],
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="気象台の発表",
    )
    services.broadcast_submit(broadcast=second, actor=drafter)
    assert len(line_sandbox.deliveries(endpoint="push", user_id=SUPERVISOR_LINE)) == 2
    approval_alerts_tick()  # beat, a few seconds later: not yet
    assert line_sandbox.deliveries(endpoint="push", user_id=ADMIN_LINE) == []
    time_machine.move_to(timezone.now() + dt.timedelta(minutes=5, seconds=1), tick=True)
    approval_alerts_tick()
    [escalation] = line_sandbox.deliveries(endpoint="push", user_id=ADMIN_LINE)
    assert escalation.messages[0]["text"].startswith("【至急・未対応】")
    assert [m for m in mail.outbox if m.to == ["admin@city.kashiwa.lg.jp"]]
    approval_alerts_tick()  # once only
    assert len(line_sandbox.deliveries(endpoint="push", user_id=ADMIN_LINE)) == 1
    escalated = AlertRound.objects.get(broadcast=second)
    assert escalated.escalated_at is not None
    assert escalated.alerts.filter(level=Alert.Level.ESCALATION, recipient=admin).count() == 2
