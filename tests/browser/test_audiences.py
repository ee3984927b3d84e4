"""Audiences in Chromium (issue 16): a citizen taps the 受信設定 buttons on the LINE
sandbox's follower page to choose, change and remove an area, an age group and a language;
staff narrow a broadcast and watch the recipient count change before saving. Desktop and
390 px wide, with axe-core."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from broadcasts.models import (
    Area,
    Broadcast,
    Category,
    Follower,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
)
from broadcasts.services import broadcast_create
from broadcasts.services.audiences import followers_bits_rebuild
from line_sandbox import follow_event, text_message_event
from line_sandbox.state import synthetic_user_id
from tests.fixtures.browser import assert_accessible, login_as, url

pytestmark = pytest.mark.browser

CITIZEN = synthetic_user_id(930_001)
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def eager(settings):
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def tap(page, label: str) -> None:
    page.get_by_role("button", name=label, exact=True).first.click()
    expect(page.get_by_role("status")).to_contain_text("Webhook の応答 200")


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_a_citizen_chooses_changes_and_removes_attributes_by_tapping(
    page, live_server, line_sandbox, eager, viewport
):
    if viewport == "phone":
        page.set_viewport_size(PHONE)
    line_sandbox.state.configure(webhook_url=live_server.url + "/line/webhook/")
    line_sandbox.send_webhook([follow_event(CITIZEN)])
    line_sandbox.send_webhook([text_message_event(CITIZEN, "受信設定")])
    page.goto(f"{line_sandbox.url}/follower/{quote(CITIZEN)}")
    assert_accessible(page)
    follower = Follower.objects.get(line_user_id=CITIZEN)

    tap(page, "地区を選ぶ")
    tap(page, "追加：南部地域（サンプル）")
    assert list(
        FollowerArea.objects.filter(follower=follower).values_list("area__code", flat=True)
    ) == ["sample-nanbu"]
    expect(page.get_by_text("✅ 南部地域（サンプル）").first).to_be_visible()
    tap(page, "解除：南部地域（サンプル）")
    assert not FollowerArea.objects.filter(follower=follower).exists()

    tap(page, "受信設定に戻る")
    tap(page, "子どもの年齢を選ぶ")
    tap(page, "追加：小学生")
    assert FollowerAgeGroup.objects.filter(follower=follower, age_group__code="elementary").exists()
    tap(page, "年齢をすべて解除")
    assert not FollowerAgeGroup.objects.filter(follower=follower).exists()

    tap(page, "受信設定に戻る")
    tap(page, "言語 / Language")
    tap(page, "Português")
    assert FollowerLanguage.objects.get(follower=follower).language.code == "pt"
    tap(page, "中文")
    assert FollowerLanguage.objects.get(follower=follower).language.code == "zh"
    tap(page, "言語の設定を解除")
    assert not FollowerLanguage.objects.filter(follower=follower).exists()
    assert_accessible(page)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_recipient_count_follows_the_choices_before_saving(
    page, live_server, line_sandbox, drafter, viewport
):
    if viewport == "phone":
        page.set_viewport_size(PHONE)
    category = Category.objects.get(code="disaster_crime")
    nanbu = Area.objects.get(code="sample-nanbu")
    followers = [
        Follower.objects.create(line_user_id=synthetic_user_id(931_000 + i)) for i in range(9)
    ]
    for i, f in enumerate(followers):
        f.categories.add(category)
        if i < 3:
            FollowerArea.objects.create(follower=f, area=nanbu)
    followers_bits_rebuild()  # the choices were written in bulk, not through the services
    broadcast = broadcast_create(
        author=drafter,
        title="避難所の開設",
        categories=[category],
        messages=[{"type": "text", "text": "南部地域に避難所を開設しました。"}],
        audience=Broadcast.Audience.SUBSCRIBERS,
        priority=Broadcast.Priority.NORMAL,
        emergency_reason="",
        requested_at=None,
    )
    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:audience_edit", broadcast.pk))
    total = page.get_by_test_id("audience-total")
    expect(total).to_have_text("9")
    expect(page.get_by_test_id("audience-all")).to_contain_text("9")
    page.get_by_label("南部地域（サンプル）").check()
    page.get_by_label("地区・年齢を設定していない人にも送る").uncheck()
    expect(total).to_have_text("3")
    expect(page.get_by_test_id("audience-cost")).to_contain_text("3")
    page.get_by_label("英語版の本文").fill("An evacuation shelter is open in the south.")
    expect(page.get_by_test_id("audience-variant-en")).to_contain_text("0")
    assert_accessible(page)
    page.get_by_role("button", name="保存する").click()
    expect(page.get_by_test_id("audience-areas")).to_have_text("南部地域（サンプル）")
    expect(page.get_by_test_id("audience-variants")).to_have_text("日本語、英語")
    assert_accessible(page)
