"""The webhook, driven with events signed as LINE signs them.

Bodies are built and signed here (HMAC-SHA256 of the raw body, base64), and also sent by the
sandbox's own webhook sender to a live server. Replies are checked in the sandbox's inbox."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading

import pytest
from django.conf import settings as django_settings
from django.db.models import Q
from django.utils import timezone

from broadcasts.models import AutoReplyRule, BroadcastEvent, Category, Follower, WebhookEvent
from broadcasts.services import citizens, replies
from broadcasts.services.citizens import events, followers
from line_sandbox import follow_event, postback_event, text_message_event
from line_sandbox.state import synthetic_user_id
from line_sandbox.webhook import prepare_events, unfollow_event

URL = "/line/webhook/"
CITIZEN = synthetic_user_id(900_001)


def sign(body: bytes, secret: str | None = None) -> str:
    key = (secret or django_settings.LINE_CHANNEL_SECRET).encode("utf-8")
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


@pytest.fixture
def eager(settings):
    """Celery runs tasks inline (the webhook's on_commit enqueue then processes at once)."""
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def post(client, line_sandbox, django_capture_on_commit_callbacks):
    """POST events as LINE does: completed by the sandbox (reply tokens it will accept),
    serialised, signed with the channel secret; on-commit callbacks executed."""

    def _post(events, *, prepared=False, body=None, signature=None):
        if body is None:
            events = events if prepared else prepare_events(line_sandbox.state, events)
            payload = {"destination": line_sandbox.state.bot_user_id, "events": events}
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {}
        if signature is not False:
            headers["HTTP_X_LINE_SIGNATURE"] = signature or sign(body)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, data=body, content_type="application/json", **headers)

    return _post


def texts(sandbox, user_id):
    return [item.message.get("text", "") for item in sandbox.inbox(user_id)]


def row_counts():
    return (
        WebhookEvent.objects.count(),
        Follower.objects.count(),
        BroadcastEvent.objects.count(),
    )


# --- rejected before anything is written ----------------------------------------------------


@pytest.mark.django_db
def test_missing_signature_is_400_and_nothing_written(post):
    before = row_counts()
    response = post([follow_event(CITIZEN)], signature=False)
    assert response.status_code == 400
    assert row_counts() == before


@pytest.mark.django_db
def test_forged_signature_is_403_and_nothing_written(post, line_sandbox):
    before = row_counts()
    forged = sign(b'{"events":[]}', "not-the-channel-secret")
    response = post([follow_event(CITIZEN), text_message_event(CITIZEN, "ごみ")], signature=forged)
    assert response.status_code == 403
    assert row_counts() == before
    assert line_sandbox.inbox(CITIZEN) == []


@pytest.mark.django_db
def test_signature_of_another_body_is_403(post):
    body = json.dumps({"destination": "x", "events": []}).encode()
    response = post(None, body=body + b" ", signature=sign(body))
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


# --- acknowledged, never a 500 --------------------------------------------------------------


@pytest.mark.django_db
def test_malformed_json_is_acknowledged_and_logged(post, caplog):
    body = b'{"destination": "U0", "events": [ {'
    with caplog.at_level(logging.WARNING, logger="broadcasts.views.webhook"):
        response = post(None, body=body)
    assert response.status_code == 200
    assert "not JSON" in caplog.text
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_json_that_is_not_line_shaped_is_acknowledged(post):
    for body in (b"[]", b'"hello"', b'{"events": "none"}', b'{"events": [1, {"type": "x"}]}'):
        assert post(None, body=body).status_code == 200
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_verification_request_with_no_events_is_200(post):
    # The "Verify" button in the LINE Developers console sends an empty events list.
    assert post([]).status_code == 200


@pytest.mark.django_db
def test_unknown_event_type_is_stored_processed_and_ignored(post, eager, caplog):
    event = {"type": "beacon", "source": {"type": "user", "userId": CITIZEN}, "beacon": {}}
    with caplog.at_level(logging.INFO, logger="broadcasts.services.citizens"):
        assert post([event]).status_code == 200
    row = WebhookEvent.objects.get()
    assert row.event_type == "beacon"
    assert row.processed_at is not None
    assert "beacon" in caplog.text


# --- what citizens get ------------------------------------------------------------------------


@pytest.mark.django_db
def test_follow_creates_follower_subscribed_to_everything_and_greets(post, eager, line_sandbox):
    assert post([follow_event(CITIZEN)]).status_code == 200
    follower = Follower.objects.get(line_user_id=CITIZEN)
    assert follower.unfollowed_at is None
    assert follower.categories.count() == Category.objects.count() == 11
    [greeting] = texts(line_sandbox, CITIZEN)
    assert "受信設定" in greeting
    assert "個別のご質問" in greeting
    assert line_sandbox.deliveries(user_id=CITIZEN)[0].endpoint == "/v2/bot/message/reply"


@pytest.mark.django_db
def test_unfollow_then_follow_again_keeps_choices(post, eager):
    post([follow_event(CITIZEN)])
    follower = Follower.objects.get(line_user_id=CITIZEN)
    follower.categories.set(Category.objects.filter(code="fire"))
    post([unfollow_event(CITIZEN)])
    follower.refresh_from_db()
    assert follower.unfollowed_at is not None
    post([follow_event(CITIZEN, unblocked=True)])
    follower.refresh_from_db()
    assert follower.unfollowed_at is None
    assert list(follower.categories.values_list("code", flat=True)) == ["fire"]


@pytest.mark.django_db
def test_keyword_gets_the_rules_reply(post, eager, line_sandbox):
    post([follow_event(CITIZEN)])
    post([text_message_event(CITIZEN, "粗大ゴミの出し方を教えて")])
    assert "ごみ・リサイクル" in texts(line_sandbox, CITIZEN)[-1]


@pytest.mark.django_db
def test_exact_rule_with_priority_and_period(post, eager, line_sandbox):
    AutoReplyRule.objects.create(
        name="test",
        match_type="exact",
        keywords="ＴＥＳＴ",  # full-width, upper case: matches "test"
        priority=1,
        messages=[{"type": "text", "text": "テストの応答"}],
    )
    post([follow_event(CITIZEN)])
    post([text_message_event(CITIZEN, "test")])
    post([text_message_event(CITIZEN, "test please")])
    replies = texts(line_sandbox, CITIZEN)
    assert replies[-2] == "テストの応答"
    assert "個別のご質問" in replies[-1]  # exact: no match, so the default reply


@pytest.mark.django_db
def test_other_text_gets_the_default_reply(post, eager, line_sandbox):
    post([follow_event(CITIZEN)])
    post([text_message_event(CITIZEN, "市役所の駐車場は何台ありますか")])
    reply = texts(line_sandbox, CITIZEN)[-1]
    assert "個別のご質問" in reply
    assert "https://www.city.kashiwa.lg.jp/" in reply
    assert "04-7167-1111" in reply


@pytest.mark.django_db
def test_message_text_is_blanked_once_processed(post, eager):
    post([follow_event(CITIZEN)])
    post([text_message_event(CITIZEN, "私の住所は柏市柏5-10-1です")])
    row = WebhookEvent.objects.get(event_type="message")
    assert row.processed_at is not None
    assert row.payload["message"]["text"] == ""
    assert "replyToken" not in row.payload
    assert "柏市柏5-10-1" not in json.dumps(row.payload, ensure_ascii=False)


@pytest.mark.django_db
def test_keyword_jushin_settei_shows_current_choices(post, eager, line_sandbox):
    post([follow_event(CITIZEN)])
    post([text_message_event(CITIZEN, "受信設定")])
    [message] = [i.message for i in line_sandbox.inbox(CITIZEN)][-1:]
    assert "✅ 子育て・教育" in message["text"]
    items = message["quickReply"]["items"]
    assert len(items) == 13
    assert items[3]["action"]["data"] == "action=unsubscribe&category=childcare_education"


@pytest.mark.django_db
def test_postbacks_change_subscriptions(post, eager, line_sandbox):
    post([follow_event(CITIZEN)])
    post([postback_event(CITIZEN, "action=unsubscribe_all")])
    follower = Follower.objects.get(line_user_id=CITIZEN)
    assert follower.categories.count() == 0
    post([postback_event(CITIZEN, "action=subscribe&category=childcare_education")])
    assert list(follower.categories.values_list("code", flat=True)) == ["childcare_education"]
    reply = texts(line_sandbox, CITIZEN)[-1]
    assert "「子育て・教育」を受け取る設定にしました" in reply
    assert "✅ 子育て・教育" in reply
    assert "－ 火災" in reply
    post([postback_event(CITIZEN, "action=unsubscribe&category=childcare_education")])
    assert follower.categories.count() == 0


@pytest.mark.django_db
def test_replayed_event_is_processed_once(post, eager, line_sandbox):
    [event] = prepare_events(line_sandbox.state, [follow_event(CITIZEN)])
    assert post([event], prepared=True).status_code == 200
    replay = {**event, "deliveryContext": {"isRedelivery": True}}
    assert post([replay], prepared=True).status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert len(texts(line_sandbox, CITIZEN)) == 1
    # and processing the same ID again by hand does nothing either
    assert citizens.webhook_event_process(webhook_event_id=event["webhookEventId"]) is False


@pytest.mark.django_db
def test_redelivered_event_we_never_saw_is_processed(post, eager, line_sandbox):
    [event] = prepare_events(line_sandbox.state, [follow_event(CITIZEN)])
    event["deliveryContext"] = {"isRedelivery": True}
    post([event], prepared=True)
    row = WebhookEvent.objects.get()
    assert row.is_redelivery and row.processed_at is not None
    assert Follower.objects.filter(line_user_id=CITIZEN).exists()


@pytest.mark.django_db
def test_events_wait_for_the_worker(post, line_sandbox, settings):
    """Without an eager worker the webhook only stores; the task processes later."""
    from broadcasts.tasks.citizens import process_pending_webhook_events, process_webhook_events

    settings.WEBHOOK_COALESCE_WAKEUPS = False
    calls = []
    original = process_webhook_events.apply_async
    process_webhook_events.apply_async = lambda args, **kw: calls.append(args)
    try:
        post([follow_event(CITIZEN), text_message_event(CITIZEN, "ごみ")])
    finally:
        process_webhook_events.apply_async = original
    assert len(calls) == 1 and len(calls[0][0]) == 2
    assert WebhookEvent.objects.filter(processed_at__isnull=True).count() == 2
    assert not Follower.objects.filter(line_user_id=CITIZEN).exists()
    process_webhook_events(*calls[0])
    assert WebhookEvent.objects.filter(processed_at__isnull=True).count() == 0
    assert len(texts(line_sandbox, CITIZEN)) == 2
    assert process_pending_webhook_events() == 0


@pytest.mark.django_db
def test_broker_down_leaves_events_for_the_sweeper(post, line_sandbox, time_machine):
    from broadcasts.tasks.citizens import process_pending_webhook_events, process_webhook_events

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    original = process_webhook_events.apply_async
    process_webhook_events.apply_async = down
    try:
        assert post([follow_event(CITIZEN)]).status_code == 200
    finally:
        process_webhook_events.apply_async = original
    assert WebhookEvent.objects.get().processed_at is None
    time_machine.move_to(timezone.now() + dt.timedelta(seconds=60), tick=True)
    assert process_pending_webhook_events() == 1
    assert Follower.objects.filter(line_user_id=CITIZEN).exists()


@pytest.mark.django_db
def test_a_reply_failing_temporarily_is_retried_while_its_token_is_valid(
    post, eager, line_sandbox, monkeypatch
):
    monkeypatch.setattr(replies, "RETRY_SECONDS", (0.01, 0.01, 0.01))
    line_sandbox.set_fault("/v2/bot/message/reply", 500, count=2)
    post([follow_event(CITIZEN)])
    row = WebhookEvent.objects.get()
    assert row.processed_at is not None and row.error == ""
    assert "受信設定" in texts(line_sandbox, CITIZEN)[-1]
    calls = sorted((r for r in line_sandbox.requests() if r.path.endswith("/reply")), key=when)
    assert [r.status for r in calls] == [
        500,
        500,
        200,
    ]


def when(request):
    return request.time


class FakeClock:
    """``now_fn`` and ``sleep`` for a run: sleeping moves this clock, not the test's."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def store(line_sandbox, events):
    """Store events as the webhook does, without enqueueing their processing."""
    prepared = prepare_events(line_sandbox.state, events)
    citizens.webhook_events_store(payload={"destination": "U0", "events": prepared})
    return prepared


@pytest.mark.django_db
def test_a_reply_that_keeps_failing_is_recorded_when_its_token_runs_out(line_sandbox, settings):
    settings.REPLY_TOKEN_MAX_AGE_SECONDS = 50
    line_sandbox.set_fault("/v2/bot/message/reply", 503, count=None)
    [event] = store(line_sandbox, [follow_event(CITIZEN)])
    clock = FakeClock(dt.datetime.fromtimestamp(event["timestamp"] / 1000, tz=dt.UTC))
    ids = [event["webhookEventId"]]
    assert citizens.webhook_events_process(webhook_event_ids=ids, now_fn=clock, sleep=clock.sleep)
    row = WebhookEvent.objects.get()
    assert row.processed_at is not None
    assert "503" in row.error and "回試行" in row.error
    attempts = [r for r in line_sandbox.requests() if r.path.endswith("/reply")]
    # 0, 0.5, 1.5, 3.5, 7.5, 15.5, 23.5, 31.5, 39.5, 47.5 s: the next would be past 50 s
    assert len(attempts) == 10
    assert "10 回試行" in row.error
    # every attempt was made while the token was valid
    assert clock.now - dt.datetime.fromtimestamp(event["timestamp"] / 1000, tz=dt.UTC) < (
        dt.timedelta(seconds=django_settings.REPLY_TOKEN_MAX_AGE_SECONDS)
    )
    assert Follower.objects.get(line_user_id=CITIZEN).unfollowed_at is None


@pytest.mark.django_db
def test_a_refused_reply_is_recorded_not_retried(post, eager, line_sandbox):
    line_sandbox.set_fault("/v2/bot/message/reply", 400, count=None)
    post([follow_event(CITIZEN)])
    row = WebhookEvent.objects.get()
    assert row.processed_at is not None and "400" in row.error
    assert len([r for r in line_sandbox.requests() if r.path.endswith("/reply")]) == 1
    assert Follower.objects.filter(line_user_id=CITIZEN).exists()


@pytest.mark.django_db
def test_one_failing_event_does_not_hold_back_its_batch(line_sandbox, monkeypatch, time_machine):
    """A batch is one transaction; when an event in it fails, the batch is done again event
    by event: the others are applied and greeted, the failing one is left for the sweeper
    with its error."""
    users = [synthetic_user_id(930_000 + i) for i in range(5)]
    store(line_sandbox, [follow_event(u) for u in users])
    original = citizens.followers_follow

    def follow(*, follows, **kwargs):
        if users[2] in follows:
            raise RuntimeError("disk full")
        return original(follows=follows, **kwargs)

    # whole batches (events) and one event at a time (followers.follower_follow)
    monkeypatch.setattr(events, "followers_follow", follow)
    monkeypatch.setattr(followers, "followers_follow", follow)
    assert citizens.webhook_events_process_new(now_fn=timezone.now) == 4
    assert [len(texts(line_sandbox, u)) for u in users] == [1, 1, 0, 1, 1]
    assert set(Follower.objects.values_list("line_user_id", flat=True)) == set(users) - {users[2]}
    failed = WebhookEvent.objects.get(line_user_id=users[2])
    assert failed.processed_at is None and "disk full" in failed.error
    assert failed.processing_started_at is not None  # the sweeper takes it after STALE_CLAIM

    # Six minutes later the sweeper retries it: the follow is applied, the greeting is not
    # attempted (its token is long expired) and that is what is recorded.
    from broadcasts.tasks.citizens import process_pending_webhook_events

    monkeypatch.setattr(events, "followers_follow", original)
    monkeypatch.setattr(followers, "followers_follow", original)
    time_machine.move_to(timezone.now() + dt.timedelta(minutes=6), tick=True)
    assert process_pending_webhook_events() == 1
    failed.refresh_from_db()
    assert failed.processed_at is not None and failed.error.startswith(replies.EXPIRED)
    assert Follower.objects.filter(line_user_id=users[2]).exists()
    assert texts(line_sandbox, users[2]) == []


# --- reply tokens expire (issue 12, finding 7) -------------------------------------------------


def aged(event, seconds):
    """The event as LINE would send it ``seconds`` after it happened."""
    happened = timezone.now() - dt.timedelta(seconds=seconds)
    return {**event, "timestamp": int(happened.timestamp() * 1000)}


@pytest.mark.django_db
def test_a_reply_whose_token_is_too_old_is_not_attempted_and_is_recorded(
    post, eager, line_sandbox, settings
):
    settings.REPLY_TOKEN_MAX_AGE_SECONDS = 50
    late, fresh = synthetic_user_id(900_011), synthetic_user_id(900_012)
    # The sandbox would still accept the late token (it was issued just now): not trying is
    # the app's own decision, from the event's timestamp.
    assert post([aged(follow_event(late), 70), aged(follow_event(fresh), 5)]).status_code == 200

    assert not [d for d in line_sandbox.deliveries(endpoint="reply") if late in d.recipients]
    assert "受信設定" in texts(line_sandbox, fresh)[-1]
    expired = WebhookEvent.objects.get(line_user_id=late)
    assert expired.processed_at is not None
    assert expired.error.startswith(replies.EXPIRED)
    assert "replyToken" not in expired.payload
    assert WebhookEvent.objects.get(line_user_id=fresh).error == ""
    # the follow itself counts, whatever happened to the greeting
    follower = Follower.objects.get(line_user_id=late)
    assert follower.unfollowed_at is None and follower.categories.count() == 11
    # and staff can see it on 運用状況
    from broadcasts.ops import ops_status

    status = ops_status(now=timezone.now())
    assert status.webhook_replies_expired == 1
    assert status.webhook_replies_failed == 0


@pytest.mark.django_db
def test_the_lifetime_is_a_setting(post, eager, line_sandbox, settings):
    settings.REPLY_TOKEN_MAX_AGE_SECONDS = 20
    post([aged(follow_event(CITIZEN), 25)])
    assert WebhookEvent.objects.get().error.startswith(replies.EXPIRED)
    assert line_sandbox.deliveries(endpoint="reply") == []


def warm_up(line_sandbox):
    """The sandbox compiles LINE's OpenAPI document on its first validation (~1.5 s, unlocked:
    eight first requests at once each do it, past the request timeout). A long-running
    sandbox, like LINE, has long done it."""
    from line_sandbox import validation

    schema = validation.request_schema("/v2/bot/message/reply")
    validation.validate_body(schema, {"replyToken": "x", "messages": GREETING}, endpoint="reply")


GREETING = [{"type": "text", "text": "友だち追加ありがとうございます"}]


@pytest.mark.django_db
def test_a_burst_is_answered_with_overlapping_reply_calls(line_sandbox, settings):
    """Behaviour, not speed (bench/webhook measures that): with LINE taking 200 ms per reply,
    the calls of one processing run overlap, up to REPLY_CONCURRENCY at once, and every
    follower is greeted once."""
    settings.REPLY_CONCURRENCY = 8
    warm_up(line_sandbox)
    line_sandbox.set_fault("/v2/bot/message/reply", mode="latency", latency_ms=200, count=None)
    users = [synthetic_user_id(910_000 + i) for i in range(40)]
    store(line_sandbox, [follow_event(u) for u in users])

    assert citizens.webhook_events_process_new(now_fn=timezone.now) == 40

    assert all(len(texts(line_sandbox, u)) == 1 for u in users)
    assert not WebhookEvent.objects.filter(Q(processed_at__isnull=True) | ~Q(error="")).exists()
    calls = [r for r in line_sandbox.requests() if r.path.endswith("/reply")]
    assert len(calls) == 40
    most = max_overlap([(r.time - dt.timedelta(milliseconds=r.duration_ms), r.time) for r in calls])
    assert 4 <= most <= 8


@pytest.mark.django_db(transaction=True)
def test_two_processors_at_once_one_takes_the_burst_each_event_once(
    line_sandbox, settings, monkeypatch
):
    """Two processing tasks at once (a wake-up while one runs, the sweeper): one holds the
    lease and takes the whole burst, the other leaves at once; each event is handled and
    greeted exactly once."""
    from django.apps import apps
    from django.db import connection

    from broadcasts.citizen_defaults import seed_citizen_side

    seed_citizen_side(apps)  # transactional tests flush what the data migration seeded
    settings.REPLY_CONCURRENCY = 4
    warm_up(line_sandbox)
    line_sandbox.set_fault("/v2/bot/message/reply", mode="latency", latency_ms=30, count=None)
    users = [synthetic_user_id(920_000 + i) for i in range(60)]
    monkeypatch.setattr(
        events, "_enqueue", lambda ids, streams=None: None
    )  # the two below process them
    store(line_sandbox, [follow_event(u) for u in users])
    counts: list[int] = []
    start = threading.Barrier(2)

    def processor():
        try:
            start.wait(5)
            counts.append(citizens.webhook_events_process_new(batch=5, now_fn=timezone.now))
        finally:
            connection.close()

    threads = [threading.Thread(target=processor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(counts) == [0, 60]
    assert [len(texts(line_sandbox, u)) for u in users] == [1] * 60
    assert Follower.objects.filter(line_user_id__in=users).count() == 60
    assert not WebhookEvent.objects.filter(Q(processed_at__isnull=True) | ~Q(error="")).exists()


@pytest.mark.django_db
def test_events_a_dead_processor_claimed_are_taken_back_by_the_next(line_sandbox, monkeypatch):
    """A processor killed mid-batch leaves events claimed and its lease to expire: the next
    processor takes them back (its batch's state was rolled back with it) and greets each
    once. (tests/chaos kills a real worker.)"""
    from kashiwa import cache as shared

    monkeypatch.setattr(events, "_enqueue", lambda ids, streams=None: None)
    users = [synthetic_user_id(930_000 + i) for i in range(7)]
    store(line_sandbox, [follow_event(u) for u in users])
    now = timezone.now()
    assert len(events._claim_batch(limit=5, now=now)) == 5  # ...and then it died
    assert citizens.webhook_events_process_new(now_fn=timezone.now, gather=0) == 7
    assert [len(texts(line_sandbox, u)) for u in users] == [1] * 7
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()
    assert shared.flag_get(events.PROCESSOR_KEY + ":0") is None  # released


@pytest.mark.django_db
def test_a_processor_that_lost_its_lease_stops_claiming(line_sandbox, monkeypatch):
    """Stalled longer than its lease, a processor finds another holding it and leaves the
    events to that one instead of claiming them too."""
    from kashiwa import cache as shared

    monkeypatch.setattr(events, "_enqueue", lambda ids, streams=None: None)
    users = [synthetic_user_id(940_000 + i) for i in range(4)]
    store(line_sandbox, [follow_event(u) for u in users])
    real_claim = events._claim_batch

    def claim_then_lose(**kwargs):
        claimed = real_claim(**kwargs)
        shared.flag_delete(events.PROCESSOR_KEY + ":0")  # expired...
        shared.flag_add(events.PROCESSOR_KEY + ":0", "another", 60)  # ...and taken by another
        return claimed

    monkeypatch.setattr(events, "_claim_batch", claim_then_lose)
    assert citizens.webhook_events_process_new(batch=2, gather=0, now_fn=timezone.now) == 2
    assert shared.flag_get(events.PROCESSOR_KEY + ":0") == "another"
    assert WebhookEvent.objects.filter(processed_at__isnull=True).count() == 2


def max_overlap(intervals):
    """The most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


# --- through the sandbox's own webhook sender ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sandbox_webhook_sender_against_live_server(live_server, line_sandbox, eager):
    from django.apps import apps

    from broadcasts.citizen_defaults import seed_citizen_side

    seed_citizen_side(apps)  # transactional tests flush what the data migration seeded
    url = live_server.url + URL
    user = synthetic_user_id(900_002)

    result = line_sandbox.send_webhook([follow_event(user)], url=url)
    assert result.status == 200
    assert "受信設定" in texts(line_sandbox, user)[-1]

    line_sandbox.send_webhook([text_message_event(user, "休日当番医はどこ？")], url=url)
    assert "#7009" in texts(line_sandbox, user)[-1]

    line_sandbox.send_webhook([text_message_event(user, "こんにちは")], url=url)
    assert "個別のご質問" in texts(line_sandbox, user)[-1]

    line_sandbox.send_webhook([postback_event(user, "action=unsubscribe&category=fire")], url=url)
    follower = Follower.objects.get(line_user_id=user)
    assert not follower.categories.filter(code="fire").exists()
    assert follower.categories.count() == 10

    # the sandbox signs with the channel secret; a different secret on our side → 403
    line_sandbox.state.configure(channel_secret="some-other-secret")
    before = WebhookEvent.objects.count()
    assert line_sandbox.send_webhook([text_message_event(user, "ごみ")], url=url).status == 403
    assert WebhookEvent.objects.count() == before


def test_many_events_wake_one_processor(db, post, line_sandbox, settings):
    """Under load the webhook enqueues one processing task per wake-up, not one per request;
    the processor takes every event, then clears the flag so the next request wakes it. The
    flag is where every process sees it: the configured REDIS_URL, else the shared cache."""
    from broadcasts.services import citizens
    from broadcasts.tasks.citizens import process_new_webhook_events

    settings.WEBHOOK_COALESCE_WAKEUPS = True
    line_sandbox.add_followers(user_ids=[CITIZEN])
    wakeups = []
    original = process_new_webhook_events.apply_async
    process_new_webhook_events.apply_async = lambda **kw: wakeups.append(kw)
    try:
        for i in range(10):
            post([text_message_event(CITIZEN, f"ごみ {i}")])
        assert len(wakeups) == 1
        assert citizens.webhook_events_process_new() == 10
        assert len(texts(line_sandbox, CITIZEN)) == 10
        post([text_message_event(CITIZEN, "受信設定")])  # the flag is clear again
        assert len(wakeups) == 2
    finally:
        process_new_webhook_events.apply_async = original


# --- broker and cache down (issue 12 finding 6) ----------------------------------------------
@pytest.fixture
def redis_down(settings):
    """Broker and cache pointed at a Redis that is not there (connection refused), with the
    wake-up flag in use as in production."""
    from kashiwa.celery import app

    dead = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.WEBHOOK_COALESCE_WAKEUPS = True
    from kombu import pools

    saved = {
        key: app.conf[key]
        for key in ("broker_url", "broker_connection_timeout", "task_publish_retry_policy")
    }
    app.conf.broker_url = dead
    app.conf.broker_connection_timeout = 1
    app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0}
    app.pool.force_close_all()
    yield
    # Put the broker back for the tests that run later in this process (a closed pool stays
    # registered in kombu: "Acquire on closed pool").
    app.conf.update(saved)
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db
def test_webhook_answers_200_and_keeps_the_event_while_redis_is_down(
    post, redis_down, line_sandbox, caplog
):
    """LINE redelivers on 500: with the event stored, the answer is 200 whatever the broker
    or the cache does; the sweeper processes it later."""
    response = post([follow_event(CITIZEN)])
    assert response.status_code == 200
    stored = WebhookEvent.objects.get()
    assert stored.line_user_id == CITIZEN and stored.processed_at is None
    assert "the sweeper will" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_broken_database_connection_is_replaced_and_the_event_stored(line_sandbox, monkeypatch):
    """PostgreSQL: the webhook does not ask the database whether a reused connection still
    works before each request (a round trip); a connection found broken when the events are
    written is replaced and the write sent once more, so the event is not lost."""
    import psycopg
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the one-statement store is PostgreSQL's")
    monkeypatch.setattr(events, "_enqueue", lambda ids, streams=None: None)
    store(line_sandbox, [follow_event(synthetic_user_id(950_000))])
    pid = connection.connection.info.backend_pid
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    store(line_sandbox, [follow_event(synthetic_user_id(950_001))])
    assert WebhookEvent.objects.count() == 2
    assert connection.connection.info.backend_pid != pid


@pytest.mark.django_db
def test_streams_split_events_by_citizen_each_with_its_processor(
    line_sandbox, settings, django_capture_on_commit_callbacks
):
    """With several streams, a request wakes the processor of each stream it has events for;
    each processor takes only its stream's events, and a citizen's events are all in one
    stream (in order)."""
    from broadcasts.tasks.citizens import process_new_webhook_events

    settings.WEBHOOK_STREAMS = 4
    users = [synthetic_user_id(960_000 + i) for i in range(12)]
    streams = {u: events.stream_of(u) for u in users}
    assert len(set(streams.values())) > 1
    wakeups = []
    original = process_new_webhook_events.apply_async
    process_new_webhook_events.apply_async = lambda **kw: wakeups.append(kw["args"][0])
    try:
        prepared = prepare_events(
            line_sandbox.state,
            [follow_event(u) for u in users] + [text_message_event(u, "ごみ") for u in users],
        )
        with django_capture_on_commit_callbacks(execute=True):
            citizens.webhook_events_store(payload={"destination": "U0", "events": prepared})
    finally:
        process_new_webhook_events.apply_async = original
    assert sorted(wakeups) == sorted(set(streams.values()))
    for stream in sorted(set(streams.values())):
        mine = [u for u in users if streams[u] == stream]
        assert citizens.webhook_events_process_new(stream=stream, gather=0) == 2 * len(mine)
        for user in mine:
            sent = texts(line_sandbox, user)
            # greeted and answered (the replies themselves go out in parallel)
            assert len(sent) == 2 and sum("受信設定" in text for text in sent) == 1
        later = [u for u in users if streams[u] > stream]  # not touched yet
        assert not WebhookEvent.objects.filter(
            line_user_id__in=later, processed_at__isnull=False
        ).exists()
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db
def test_the_lease_is_released_only_when_every_claimed_event_is_done(line_sandbox, monkeypatch):
    """A processor taking the lease takes back whatever is claimed and unfinished: so a
    processor leaving must not release it while its last replies are still in flight."""
    from kashiwa import cache as shared

    monkeypatch.setattr(events, "_enqueue", lambda ids, streams=None: None)
    line_sandbox.set_fault("/v2/bot/message/reply", mode="latency", latency_ms=100, count=None)
    users = [synthetic_user_id(970_000 + i) for i in range(6)]
    store(line_sandbox, [follow_event(u) for u in users])
    unfinished_at_release = []
    real_release = shared.flag_release

    def release(key, value):
        unfinished_at_release.append(
            WebhookEvent.objects.filter(
                processing_started_at__isnull=False, processed_at__isnull=True
            ).count()
        )
        real_release(key, value)

    monkeypatch.setattr(shared, "flag_release", release)
    assert citizens.webhook_events_process_new(now_fn=timezone.now, gather=0) == 6
    assert unfinished_at_release and set(unfinished_at_release) == {0}
    assert [len(texts(line_sandbox, u)) for u in users] == [1] * 6
