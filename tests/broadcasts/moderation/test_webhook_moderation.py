"""The whole path for a prohibited citizen message, through the real webhook, the real
line-bot-sdk client and the sandbox: kept, flagged by the rules, acted on (automatic replies
stopped for that citizen, 措置 recorded, audited) and purged after the retention."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from broadcasts.models import BroadcastEvent, CitizenMessage, ModerationMeasure, WebhookEvent
from broadcasts.services import moderation
from line_sandbox import follow_event, text_message_event
from line_sandbox.state import synthetic_user_id
from line_sandbox.webhook import prepare_events

pytestmark = pytest.mark.django_db

URL = "/line/webhook/"
SPAMMER = synthetic_user_id(910_001)
NEIGHBOUR = synthetic_user_id(910_002)


@pytest.fixture
def eager(settings):
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def post(client, line_sandbox, django_capture_on_commit_callbacks, eager):
    """POST events as LINE does (prepared by the sandbox, signed with the channel secret)."""

    def _post(events):
        events = prepare_events(line_sandbox.state, events)
        payload = {"destination": line_sandbox.state.bot_user_id, "events": events}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        key = django_settings.LINE_CHANNEL_SECRET.encode("utf-8")
        signature = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                URL, data=body, content_type="application/json", HTTP_X_LINE_SIGNATURE=signature
            )
        assert response.status_code == 200
        return events

    return _post


def replies_to(sandbox, user_id) -> list[str]:
    return [item.message.get("text", "") for item in sandbox.inbox(user_id)]


def test_a_prohibited_message_from_keeping_to_purge(post, line_sandbox, reviewer):
    post([follow_event(SPAMMER), follow_event(NEIGHBOUR)])
    greeted = len(replies_to(line_sandbox, SPAMMER))

    # kept and flagged by the seeded rules; the citizen still gets the default reply
    post([text_message_event(SPAMMER, "副業で月50万稼げる！詳しくは https://spam.example.com/")])
    message = CitizenMessage.objects.get(line_user_id=SPAMMER)
    assert message.text.startswith("副業で月50万稼げる")
    assert message.flag_source == CitizenMessage.FlagSource.RULE
    assert {hit["item"] for hit in message.rule_hits} == {5, 14}
    assert len(replies_to(line_sandbox, SPAMMER)) == greeted + 1
    # the webhook event itself still forgets the text once processed (policy 10)
    event = WebhookEvent.objects.get(webhook_event_id=message.webhook_event_id)
    assert event.payload["message"]["text"] == ""

    # 広報担当 stops automatic replies to that citizen and records the block
    now = timezone.now()
    moderation.reply_suppress(
        line_user_id=SPAMMER,
        days=7,
        reason="勧誘の繰り返し",
        message=message,
        actor=reviewer,
        now=now,
    )
    moderation.moderation_measure_record(
        message=message, kind=ModerationMeasure.Kind.BLOCKED, detail="", actor=reviewer, now=now
    )

    post([text_message_event(SPAMMER, "また送ります 稼げる話")])
    post([text_message_event(NEIGHBOUR, "ごみの収集日は？")])
    assert len(replies_to(line_sandbox, SPAMMER)) == greeted + 1  # no reply this time
    assert "ごみ・リサイクル" in replies_to(line_sandbox, NEIGHBOUR)[-1]  # others as before
    second = CitizenMessage.objects.filter(line_user_id=SPAMMER).latest("received_at")
    assert second.replies_suppressed and second.text == "また送ります 稼げる話"
    verbs = set(BroadcastEvent.objects.values_list("verb", flat=True))
    assert {
        "citizen_message_auto_flagged",
        "reply_suppressed",
        "moderation_measure_recorded",
    } <= verbs

    # after the retention (30 days by default) the texts are gone, the 措置 stays
    assert moderation.citizen_messages_purge(now=now + dt.timedelta(days=31)) == 3
    assert not CitizenMessage.objects.exists()
    assert ModerationMeasure.objects.get().line_user_id == SPAMMER
