"""Citizens choose areas, children's age groups and a language inside LINE (issue 16, policy
10): by tapping the 受信設定 buttons, each choice changeable and removable, nothing else kept.

The taps go through the LINE sandbox as LINE would send them: the sandbox only lets a
follower tap a button their app shows, checks the postback event against LINE's webhook
document, signs it and posts it to the app's webhook (a live server)."""

from __future__ import annotations

import pytest
from django.apps import apps

from broadcasts.audience_defaults import seed_audiences
from broadcasts.citizen_defaults import seed_citizen_side
from broadcasts.models import (
    Follower,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    WebhookEvent,
)
from line_sandbox import follow_event, postback_event, text_message_event
from line_sandbox.state import synthetic_user_id
from line_sandbox.validation import webhook_payload_errors

CITIZEN = synthetic_user_id(910_001)


@pytest.fixture
def eager(settings):
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def linked(live_server, line_sandbox, eager):
    """The sandbox posts to the app's webhook on a live server; the seeded lists exist."""
    seed_citizen_side(apps)  # transactional tests flush what the data migrations seeded
    seed_audiences(apps)
    line_sandbox.state.configure(webhook_url=live_server.url + "/line/webhook/")
    return line_sandbox


def last_text(sandbox, user_id: str) -> str:
    return sandbox.inbox(user_id)[-1].message.get("text", "")


def tap(sandbox, label: str) -> None:
    """Tap the visible button with this label (fails if the app shows no such button)."""
    [button] = [t for t in sandbox.tappable(CITIZEN) if t.label == label][:1] or [None]
    assert button is not None, [t.label for t in sandbox.tappable(CITIZEN)]
    assert sandbox.tap(CITIZEN, button.data).status == 200


@pytest.mark.django_db(transaction=True)
def test_a_citizen_chooses_changes_and_removes_area_age_and_language(linked):
    sandbox = linked
    sandbox.send_webhook([follow_event(CITIZEN)])
    sandbox.send_webhook([text_message_event(CITIZEN, "受信設定")])
    labels = {t.label for t in sandbox.tappable(CITIZEN)}
    assert {"地区を選ぶ", "子どもの年齢を選ぶ", "言語 / Language"} <= labels
    follower = Follower.objects.get(line_user_id=CITIZEN)

    # Areas: add two, remove one, clear.
    tap(sandbox, "地区を選ぶ")
    assert "いまは地区を選んでいません" in last_text(sandbox, CITIZEN)
    tap(sandbox, "追加：中央地域（サンプル）")
    tap(sandbox, "追加：北部地域（サンプル）")
    assert set(
        FollowerArea.objects.filter(follower=follower).values_list("area__code", flat=True)
    ) == {
        "sample-chuo",
        "sample-hokubu",
    }
    assert "✅ 中央地域（サンプル）" in last_text(sandbox, CITIZEN)
    tap(sandbox, "解除：中央地域（サンプル）")
    assert list(
        FollowerArea.objects.filter(follower=follower).values_list("area__code", flat=True)
    ) == ["sample-hokubu"]
    tap(sandbox, "地区をすべて解除")
    assert not FollowerArea.objects.filter(follower=follower).exists()

    # Age groups: add, remove.
    tap(sandbox, "受信設定に戻る")
    tap(sandbox, "子どもの年齢を選ぶ")
    tap(sandbox, "追加：3〜5歳")
    tap(sandbox, "追加：妊娠中")
    assert FollowerAgeGroup.objects.filter(follower=follower).count() == 2
    tap(sandbox, "解除：妊娠中")
    assert list(
        FollowerAgeGroup.objects.filter(follower=follower).values_list("age_group__code", flat=True)
    ) == ["age-3-5"]
    tap(sandbox, "年齢をすべて解除")
    assert not FollowerAgeGroup.objects.filter(follower=follower).exists()

    # Language: choose, change, remove.
    tap(sandbox, "受信設定に戻る")
    tap(sandbox, "言語 / Language")
    tap(sandbox, "English")
    assert FollowerLanguage.objects.get(follower=follower).language.code == "en"
    assert "English" in last_text(sandbox, CITIZEN)
    tap(sandbox, "Tiếng Việt")
    assert FollowerLanguage.objects.get(follower=follower).language.code == "vi"
    tap(sandbox, "言語の設定を解除")
    assert not FollowerLanguage.objects.filter(follower=follower).exists()
    assert "日本語" in last_text(sandbox, CITIZEN)

    # Policy 10: the categories the citizen had are untouched, and no text was kept.
    assert follower.categories.count() == 11
    assert all(not (e.payload.get("message") or {}).get("text") for e in WebhookEvent.objects.all())


@pytest.mark.django_db(transaction=True)
def test_a_follower_can_tap_only_what_their_app_shows(linked):
    sandbox = linked
    sandbox.send_webhook([follow_event(CITIZEN)])
    # The greeting has no language buttons: tapping one anyway is refused by the sandbox.
    with pytest.raises(ValueError, match="not shown"):
        sandbox.tap(CITIZEN, "action=language&code=en")
    sandbox.send_webhook([text_message_event(CITIZEN, "受信設定")])
    tap(sandbox, "言語 / Language")
    # Quick replies vanish once a newer message arrives (as in LINE).
    sandbox.send_webhook([text_message_event(CITIZEN, "こんにちは")])
    assert "English" not in {t.label for t in sandbox.tappable(CITIZEN)}


@pytest.mark.django_db
def test_the_sandbox_checks_postback_events_against_lines_webhook_document(line_sandbox):
    from line_sandbox.webhook import prepare_events

    [event] = prepare_events(line_sandbox.state, [postback_event(CITIZEN, "action=areas")])
    payload = {"destination": line_sandbox.state.bot_user_id, "events": [event]}
    assert webhook_payload_errors(payload) == []
    broken = dict(event, postback={})  # LINE always sends postback.data
    errors = webhook_payload_errors({**payload, "events": [broken]})
    assert any("data" in e for e in errors)


@pytest.mark.django_db
def test_unknown_or_inactive_choices_are_answered_and_not_stored(client, line_sandbox, eager):
    from broadcasts.models import Area
    from broadcasts.services import citizens

    Area.objects.filter(code="sample-tobu").update(is_active=False)
    reply = citizens.postback_handle(
        line_user_id=CITIZEN, data="action=area&op=add&code=sample-tobu"
    )
    assert "見つかりませんでした" in reply[0]["text"]
    reply = citizens.postback_handle(line_user_id=CITIZEN, data="action=language&code=xx")
    assert "見つかりませんでした" in reply[0]["text"]
    follower = Follower.objects.get(line_user_id=CITIZEN)
    assert not FollowerArea.objects.filter(follower=follower).exists()
    assert not FollowerLanguage.objects.filter(follower=follower).exists()
    # The inactive area is not offered either.
    menu = citizens.postback_handle(line_user_id=CITIZEN, data="action=areas")
    labels = [i["action"]["label"] for i in menu[0]["quickReply"]["items"]]
    assert not any("東部" in label for label in labels)
    assert len(labels) <= 13
