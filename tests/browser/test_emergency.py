"""The emergency path in a real browser (issue 5's "done when").

Celery runs tasks eagerly here, so the emergency enqueue registered with ``on_commit`` runs
the send in the live server's thread, and the sandbox's delivery log shows when LINE got it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from broadcasts import roles, services
from broadcasts.models import Broadcast, Category, Follower
from broadcasts.schedule import JST
from tests.broadcasts.sending.helpers import approve, make_followers
from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url
from tests.fixtures.users import make_user

pytestmark = pytest.mark.browser

STATUS = "[data-testid=status]"
SUNDAY_NIGHT = dt.datetime(2026, 11, 29, 23, 0, tzinfo=JST)
BROADCAST_API = "/v2/bot/message/broadcast"


@pytest.fixture
def eager_celery(settings):
    """Tasks run where they are enqueued (the live server thread, after commit)."""
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def totp_device(supervisor) -> TOTPDevice:
    return TOTPDevice.objects.create(user=supervisor, name="認証アプリ", confirmed=True)


def code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def switch_user(page, live_server, user) -> None:
    page.context.clear_cookies()
    login_as(page, live_server, user)


def verify_second_factor(page, device: TOTPDevice) -> None:
    """From the approval screen: follow the link, enter the code, come back."""
    approval_url = page.url
    page.get_by_role("link", name="二要素認証へ進む").click()
    page.fill("#id_token", code(device))
    page.get_by_role("button", name="確認").click()
    page.wait_for_url(approval_url)
    expect(page.locator("[data-testid=second-factor-ok]")).to_be_visible()


def citizens_follow(line_sandbox) -> None:
    """Follower rows for the sandbox's followers; its staff are our staff test recipients."""
    make_followers(line_sandbox.follower_ids(), ["disaster_crime"])
    Follower.objects.filter(line_user_id__in=line_sandbox.staff_ids()).update(
        is_staff_test_recipient=True
    )


def test_emergency_on_a_sunday_night_needs_a_supervisor_and_a_second_factor(
    page, live_server, drafter, supervisor, totp_device, line_sandbox, eager_celery, time_machine
):
    time_machine.move_to(SUNDAY_NIGHT, tick=True)
    citizens_follow(line_sandbox)
    everyone = len(line_sandbox.follower_ids())

    # 23:00 on a Sunday: the drafter marks an emergency.
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    page.fill("#id_title", "避難指示（利根川）")
    page.get_by_text("防災・防犯に関する情報", exact=True).click()
    page.fill("#id_m-0-text", "【柏市】利根川の水位上昇により、避難指示を発令しました。")
    page.locator("input[name=priority][value=emergency]").check()
    page.fill("#id_emergency_reason", "利根川が氾濫危険水位を超過")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("下書き")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.locator(STATUS)).to_have_text("承認待ち")
    broadcast = Broadcast.objects.get()
    assert broadcast.is_emergency

    # The drafter cannot approve it: no button, and the screen says why.
    expect(page.get_by_role("link", name="緊急承認へ")).to_have_count(0)
    response = page.goto(url(live_server, "broadcasts:emergency_approve", broadcast.pk))
    assert response.status == 403
    expect(page.locator("[data-testid=denied-reason]")).to_contain_text("自分が起案した緊急配信")

    # A supervisor without a recent second factor is asked for it.
    switch_user(page, live_server, supervisor)
    page.goto(url(live_server, "broadcasts:detail", broadcast.pk))
    page.get_by_role("link", name="緊急承認へ").click()
    screen = page.locator("[data-testid=emergency-approval]")
    expect(screen.get_by_role("heading", level=1)).to_have_text("緊急配信")
    expect(page.locator("[data-testid=recipient-count]")).to_have_text(str(everyone))
    expect(page.locator("[data-testid=second-factor-needed]")).to_be_visible()
    page.fill("#id_emergency_typed_count", str(everyone))
    page.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(page.locator("[data-testid=approval-error]")).to_contain_text("5分以内の二要素認証")
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW
    assert line_sandbox.deliveries() == []

    # With it, and the typed count, the send reaches the sandbox at once.
    verify_second_factor(page, totp_device)
    page.fill("#id_emergency_typed_count", str(everyone - 1))
    page.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(page.locator("[data-testid=typed-count-error]")).to_contain_text("一致しません")
    page.fill("#id_emergency_typed_count", str(everyone))
    expect(page.locator("[data-kw-typed-status]")).to_have_text("受信者数が一致しました。")
    assert_accessible(page)
    shot = save_screenshot(page, "emergency-approval-live")
    assert shot.exists()
    clicked = timezone.now()
    page.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(page.get_by_text("緊急配信を承認しました。直ちに送信します。")).to_be_visible()
    logged = line_sandbox.deliveries(endpoint=BROADCAST_API)
    assert len(logged) == 1
    assert set(logged[0].recipients) == set(line_sandbox.follower_ids())
    assert logged[0].accepted_at - clicked < dt.timedelta(seconds=5)
    assert logged[0].messages[0]["text"].startswith("【柏市】利根川")
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SENT
    approval = broadcast.events.get(verb="approve")
    assert approval.actor == supervisor
    assert approval.data["recipient_count"] == everyone
    expect(page.locator(STATUS)).to_have_text("配信済み")


def test_a_correction_follows_within_a_minute_of_clicking(
    page, live_server, drafter, supervisor, totp_device, line_sandbox, eager_celery, time_machine
):
    time_machine.move_to(SUNDAY_NIGHT, tick=True)
    citizens_follow(line_sandbox)
    everyone = len(line_sandbox.follower_ids())
    original = services.broadcast_create(
        author=drafter,
        title="避難指示（利根川）",
        categories=[Category.objects.get(code="disaster_crime")],
        messages=[{"type": "text", "text": "【柏市】柏第一小学校区に避難指示を発令しました。"}],
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="利根川が氾濫危険水位を超過",
    )
    services.broadcast_submit(broadcast=original, actor=drafter)
    approve(original, supervisor)  # eager: sent at once, as the emergency worker would
    original.refresh_from_db()
    assert original.status == Broadcast.Status.SENT
    assert len(line_sandbox.deliveries(endpoint=BROADCAST_API)) == 1

    # The supervisor verifies first (as they would when called in), so the clock below is
    # the correction itself: click, fix the wording, submit, approve, sent.
    switch_user(page, live_server, supervisor)
    page.goto(url(live_server, "broadcasts:detail", original.pk))
    clicked = timezone.now()
    page.get_by_role("button", name="訂正を作成").click()
    correction = Broadcast.objects.get(parent=original)
    page.wait_for_url(url(live_server, "broadcasts:edit", correction.pk))
    text = page.locator("#id_m-0-text")
    expect(text).to_have_value(
        "【訂正】11/29(日) 23:00にお送りした「【柏市】柏第一小学校区に避難指示を発令しました。」の"
        "内容に誤りがありました。正しくは次のとおりです。\n\n（正しい内容を入力してください）\n\n"
        "柏市役所"
    )
    text.fill(
        "【訂正】先ほどの避難指示の対象は柏第二小学校区です。柏第一小学校区は対象外です。\n\n柏市役所"
    )
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator("[data-testid=follow-up-of]")).to_contain_text("避難指示（利根川）")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.locator(STATUS)).to_have_text("承認待ち")

    # The supervisor created it, so another supervisor approves (four eyes).
    other = make_user("supervisor2", roles.SUPERVISOR)
    device = TOTPDevice.objects.create(user=other, name="認証アプリ", confirmed=True)
    switch_user(page, live_server, other)
    page.goto(url(live_server, "broadcasts:emergency_approve", correction.pk))
    verify_second_factor(page, device)
    page.fill("#id_emergency_typed_count", str(everyone))
    page.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(page.get_by_text("緊急配信を承認しました。直ちに送信します。")).to_be_visible()

    logged = line_sandbox.deliveries(endpoint=BROADCAST_API)
    assert len(logged) == 2
    sent = logged[-1]
    assert sent.messages[0]["text"].startswith("【訂正】先ほどの避難指示")
    assert set(sent.recipients) == set(line_sandbox.follower_ids())
    assert sent.accepted_at - clicked < dt.timedelta(minutes=1)
    # The original lists its correction.
    page.goto(url(live_server, "broadcasts:detail", original.pk))
    expect(page.locator("[data-testid=follow-ups]")).to_contain_text("【訂正】避難指示（利根川）")


def test_a_drill_reaches_only_staff_test_recipients(
    page, live_server, drafter, supervisor, totp_device, line_sandbox, eager_celery
):
    citizens_follow(line_sandbox)
    staff = line_sandbox.staff_ids()

    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    page.get_by_role("link", name="緊急配信の訓練を作成する（訓練モード）").click()
    expect(page.locator("[data-testid=drill-banner]")).to_be_visible()
    expect(page.locator("input[name=audience]")).to_have_count(1)
    page.fill("#id_m-0-text", "これは訓練です。避難所の開設手順を確認してください。")
    page.get_by_role("button", name="下書きを保存").click()
    expect(page.locator(STATUS)).to_have_text("下書き")
    drill = Broadcast.objects.get()
    assert drill.kind == Broadcast.Kind.DRILL
    assert drill.audience == Broadcast.Audience.STAFF_TEST
    assert drill.messages[0]["text"].startswith("【訓練】")
    expect(page.locator("h1 [data-testid=drill-badge]")).to_have_text("【訓練】")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.locator(STATUS)).to_have_text("承認待ち")

    switch_user(page, live_server, supervisor)
    page.goto(url(live_server, "broadcasts:list"))
    row = page.locator("[data-testid=broadcast-row]", has_text=drill.title)
    expect(row.locator("[data-testid=drill-badge]")).to_have_text("【訓練】")
    row.get_by_role("link", name=drill.title).click()
    page.get_by_role("link", name="【訓練】緊急承認へ").click()
    screen = page.locator("[data-testid=emergency-approval]")
    expect(screen).to_have_attribute("data-kind", "drill")
    expect(screen.get_by_role("heading", level=1)).to_have_text("【訓練】")
    expect(screen).not_to_contain_text("緊急配信を承認して直ちに送信する")
    verify_second_factor(page, totp_device)
    page.fill("#id_emergency_typed_count", str(len(staff)))
    assert_accessible(page)
    save_screenshot(page, "emergency-approval-drill")
    page.get_by_role("button", name="【訓練】訓練を承認して職員に送信する").click()
    expect(page.get_by_text("【訓練】訓練の配信を承認しました。")).to_be_visible()

    received = {uid for d in line_sandbox.deliveries() for uid in d.recipients}
    assert received == set(staff)
    assert all(
        m["text"].startswith("【訓練】") for d in line_sandbox.deliveries() for m in d.messages
    )
    drill.refresh_from_db()
    assert drill.status == Broadcast.Status.SENT
    timeline = page.locator("[data-testid=timeline]")
    expect(timeline.locator(".kw-drill-badge").first).to_have_text("【訓練】")
