"""Issue 15 in a real browser: a person publishes a sample in the local JMA feed sandbox,
the beat's poll turns it into an emergency draft, a supervisor finds it in 「受信した防災情報」
and approves it (second factor, typed count), and citizens receive it in the LINE sandbox."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from broadcasts import tasks
from broadcasts.models import Broadcast, OfficialMessage
from jma_sandbox.server import JmaSandbox
from tests.fixtures.browser import assert_accessible, login_as, save_screenshot, url

from .test_emergency import BROADCAST_API, citizens_follow, verify_second_factor

pytestmark = pytest.mark.browser


@pytest.fixture
def eager_celery(settings):
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def jma(settings):
    sandbox = JmaSandbox().start()
    settings.JMA_FEED_URLS = sandbox.feed_urls()
    yield sandbox
    sandbox.stop()


def test_publish_in_the_jma_sandbox_then_a_supervisor_approves_and_citizens_receive(
    page, live_server, supervisor, line_sandbox, eager_celery, jma
):
    device = TOTPDevice.objects.create(user=supervisor, name="認証アプリ", confirmed=True)
    citizens_follow(line_sandbox)
    everyone = len(line_sandbox.follower_ids())

    # A developer publishes the 震度５弱 sample on the sandbox's page.
    page.goto(jma.url + "/")
    page.get_by_role("button", name="kashiwa_03_intensity_5minus_VXSE51.xml を公開").click()
    expect(
        page.get_by_text("（kashiwa_03_intensity_5minus_VXSE51.xml）→ eqvol.xml")
    ).to_be_visible()

    # The next beat polls the feeds (the task's body, as the worker runs it).
    assert tasks.poll_official_feeds()["created"] == 1
    draft = Broadcast.objects.get()
    assert draft.status == Broadcast.Status.PENDING_REVIEW and draft.is_emergency

    # The supervisor finds it in 「受信した防災情報」.
    login_as(page, live_server, supervisor)
    page.get_by_role("link", name="受信した防災情報").click()
    row = page.locator(f"[data-official='{OfficialMessage.objects.get().pk}']")
    expect(row).to_contain_text("震度５弱以上（千葉県北西部・柏市）→ 全員へ緊急")
    expect(row).to_contain_text("千葉県北西部：震度５弱（発表）")
    assert_accessible(page)
    save_screenshot(page, "official-list")
    page.set_viewport_size({"width": 390, "height": 844})
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    row.get_by_role("link", name=draft.title).click()
    page.wait_for_url(url(live_server, "broadcasts:detail", draft.pk))
    expect(page.locator("[data-testid=official-source]")).to_contain_text("震度速報")
    assert_accessible(page)
    save_screenshot(page, "official-draft-detail")

    # It approves as any emergency: second factor, typed count; sent at once.
    page.get_by_role("link", name="緊急承認へ").click()
    verify_second_factor(page, device)
    page.fill("#id_emergency_typed_count", str(everyone))
    save_screenshot(page, "official-emergency-approval")
    page.get_by_role("button", name="緊急配信を承認して直ちに送信する").click()
    expect(page.get_by_text("緊急配信を承認しました。直ちに送信します。")).to_be_visible()
    logged = line_sandbox.deliveries(endpoint=BROADCAST_API)
    assert len(logged) == 1
    assert set(logged[0].recipients) == set(line_sandbox.follower_ids())
    assert logged[0].messages[0]["text"].startswith("【震度５弱】")
    draft.refresh_from_db()
    assert draft.status == Broadcast.Status.SENT
    assert draft.events.get(verb="approve").actor == supervisor

    # Polled again: nothing new.
    assert tasks.poll_official_feeds()["created"] == 0
    assert Broadcast.objects.count() == 1
