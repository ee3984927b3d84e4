"""The LINE sandbox, driven through the real line-bot-sdk v3 client.

Where the SDK's own pydantic models refuse a body client-side (6 messages, 501 recipients, a text
message without ``text``) the test first shows that refusal, then sends the raw JSON through the
same ``ApiClient`` (``call_api``) to check that the sandbox refuses it too, as LINE would.
"""

from __future__ import annotations

import base64
import json
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic.v1
import pytest
import urllib3
from linebot.v3 import WebhookParser
from linebot.v3.insight import ApiClient as InsightApiClient
from linebot.v3.insight import Configuration as InsightConfiguration
from linebot.v3.insight import Insight
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    BroadcastRequest,
    Configuration,
    ImageMessage,
    MessagingApi,
    MessagingApiBlob,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
    StickerMessage,
    TextMessage,
    URIAction,
    ValidateMessageRequest,
)
from linebot.v3.webhooks import MessageEvent

from line_sandbox import LineSandbox, SandboxState, text_message_event
from line_sandbox.state import synthetic_user_id
from line_sandbox.validation import utf16_length, validator_for

BROADCAST = "/v2/bot/message/broadcast"
MULTICAST = "/v2/bot/message/multicast"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def client(line_sandbox: LineSandbox) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=line_sandbox.url, access_token=line_sandbox.token)) as c:
        yield c


@pytest.fixture
def api(client: ApiClient) -> MessagingApi:
    return MessagingApi(client)


def raw(
    client: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """Send ``body`` as-is through the SDK's ``ApiClient``; return status, headers, JSON."""
    header_params = {"Content-Type": "application/json", **(headers or {})}
    try:
        response = client.call_api(
            path,
            method,
            header_params=header_params,
            body=body,
            auth_settings=["Bearer"],
            response_types_map={},
            _return_http_data_only=False,
        )
        status, got_headers, data = response.status_code, response.headers, response.raw_data
    except ApiException as exc:
        status, got_headers, data = exc.status, exc.headers, exc.body
    if isinstance(data, bytes):
        data = data.decode()
    return status, dict(got_headers or {}), json.loads(data) if data else None


def error_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(exc.value.body)


def text(body: str) -> TextMessage:
    return TextMessage(text=body)


# --- sending ---------------------------------------------------------------------------------


def test_broadcast_reaches_every_active_follower_and_is_logged(line_sandbox, api):
    blocked = line_sandbox.follower_ids()[-1]
    line_sandbox.state.set_blocked(blocked)
    key = str(uuid.uuid4())

    response = api.broadcast_with_http_info(
        BroadcastRequest(
            messages=[text("柏市からのお知らせ"), StickerMessage(packageId="446", stickerId="1988")]
        ),
        x_line_retry_key=key,
    )

    assert response.status_code == 200
    request_id = response.headers["x-line-request-id"]
    (delivery,) = line_sandbox.deliveries()
    assert delivery.request_id == request_id
    assert delivery.retry_key == key
    assert delivery.endpoint == BROADCAST and delivery.kind == "broadcast"
    assert set(delivery.recipients) == set(line_sandbox.follower_ids())
    assert blocked not in delivery.recipients and len(delivery.recipients) == 19
    first = line_sandbox.follower_ids()[0]
    assert [i.type for i in line_sandbox.inbox(first)] == ["text", "sticker"]
    assert line_sandbox.inbox(first)[0].text == "柏市からのお知らせ"
    assert line_sandbox.inbox(blocked) == []


def test_multicast_reaches_only_the_listed_followers(line_sandbox, api):
    staff = line_sandbox.staff_ids()
    assert len(staff) == 3
    response = api.multicast_with_http_info(
        MulticastRequest(to=staff, messages=[text("職員テスト送信")], notificationDisabled=True),
        x_line_retry_key=str(uuid.uuid4()),
    )
    assert response.status_code == 200
    (delivery,) = line_sandbox.deliveries(endpoint="multicast")
    assert list(delivery.recipients) == staff
    assert delivery.notification_disabled is True
    assert line_sandbox.deliveries(user_id=staff[0]) == [delivery]
    others = set(line_sandbox.follower_ids()) - set(staff)
    assert all(line_sandbox.inbox(uid) == [] for uid in others)


def test_push_returns_sent_messages(line_sandbox, api):
    user = line_sandbox.follower_ids()[5]
    response = api.push_message_with_http_info(
        PushMessageRequest(to=user, messages=[text("a"), text("b")])
    )
    assert response.status_code == 200
    assert len(response.data.sent_messages) == 2
    ids = [m.id for m in response.data.sent_messages]
    assert [i.message_id for i in line_sandbox.inbox(user)] == ids


def test_every_response_has_its_own_request_id(line_sandbox, api, client):
    ids = {api.get_bot_info_with_http_info().headers["x-line-request-id"] for _ in range(5)}
    status, headers, _ = raw(client, "POST", BROADCAST, {"messages": []})
    assert status == 400
    ids.add(headers["x-line-request-id"])
    assert len(ids) == 6
    assert all(uuid.UUID(i) for i in ids)


def test_responses_are_fast_with_keep_alive(line_sandbox, api):
    """DESIGN §9: without ``disable_nagle_algorithm`` every response costs ~40 ms."""
    timings = []
    for i in range(30):
        started = time.perf_counter()
        api.broadcast(BroadcastRequest(messages=[text(f"速度 {i}")]))
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.02


# --- validation ------------------------------------------------------------------------------


def test_six_messages_refused_by_sdk_and_by_sandbox(line_sandbox, client):
    with pytest.raises(pydantic.v1.ValidationError):
        BroadcastRequest(messages=[text(str(i)) for i in range(6)])
    body = {"messages": [{"type": "text", "text": str(i)} for i in range(6)]}
    status, _, error = raw(client, "POST", BROADCAST, body)
    assert status == 400
    assert error == {
        "message": "The request body has 1 error(s)",
        "details": [{"message": "Size must be between 1 and 5", "property": "messages"}],
    }
    assert line_sandbox.deliveries() == []


def test_text_length_counts_utf16_units(line_sandbox, api):
    emoji_text = "😀" * 2500  # 2,500 characters, 5,000 UTF-16 units: the limit exactly
    assert utf16_length(emoji_text) == 5000
    api.broadcast(BroadcastRequest(messages=[text(emoji_text)]))
    too_long = emoji_text + "a"  # 2,501 characters: far below 5,000, but 5,001 units
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[text("ok"), text(too_long)]))
    assert exc.value.status == 400
    assert error_of(exc)["details"] == [
        {"message": "Length must be between 0 and 5000", "property": "messages[1].text"}
    ]
    assert len(line_sandbox.deliveries()) == 1


def test_more_than_500_recipients_refused(line_sandbox, client):
    to = [synthetic_user_id(i) for i in range(501)]
    with pytest.raises(pydantic.v1.ValidationError):
        MulticastRequest(to=to, messages=[text("x")])
    status, _, error = raw(
        client, "POST", MULTICAST, {"to": to, "messages": [{"type": "text", "text": "x"}]}
    )
    assert status == 400
    assert error["details"] == [{"message": "Size must be between 1 and 500", "property": "to"}]
    assert line_sandbox.deliveries() == []


def test_http_image_url_refused(line_sandbox, api):
    image = ImageMessage(
        originalContentUrl="http://www.city.kashiwa.lg.jp/a.jpg",
        previewImageUrl="https://www.city.kashiwa.lg.jp/a-preview.jpg",
    )
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[image]))
    assert exc.value.status == 400
    assert error_of(exc)["details"] == [
        {"message": "Must be a valid HTTPS URL", "property": "messages[0].originalContentUrl"}
    ]


def test_retry_key_must_be_a_uuid(line_sandbox, api):
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[text("x")]), x_line_retry_key="not-a-uuid")
    assert exc.value.status == 400
    assert "X-Line-Retry-Key" in error_of(exc)["message"]
    assert line_sandbox.deliveries() == []


def test_bad_token_is_401(line_sandbox):
    config = Configuration(host=line_sandbox.url, access_token="wrong-token")
    with ApiClient(config) as other, pytest.raises(ApiException) as exc:
        MessagingApi(other).broadcast(BroadcastRequest(messages=[text("x")]))
    assert exc.value.status == 401
    assert error_of(exc) == {
        "message": "Authentication failed. Confirm that the access token in the authorization "
        "header is valid."
    }
    assert line_sandbox.deliveries() == []


def test_text_message_without_text_is_refused_thanks_to_discriminator_dispatch(
    line_sandbox, client
):
    # The base Message schema alone (what a generic validator checks) only requires ``type``.
    assert list(validator_for("Message").iter_errors({"type": "text"})) == []
    assert list(validator_for("Message__dispatch").iter_errors({"type": "text"})) != []
    status, _, error = raw(client, "POST", BROADCAST, {"messages": [{"type": "text"}]})
    assert status == 400
    assert error["details"] == [{"message": "must be specified", "property": "messages[0].text"}]
    status, _, error = raw(client, "POST", BROADCAST, {"messages": [{"type": "txet", "text": "x"}]})
    assert status == 400
    assert error["details"][0]["property"] == "messages[0].type"
    assert error["details"][0]["message"].startswith("Must be one of the following values: [text,")


def test_template_actions_are_dispatched_too(line_sandbox, client):
    template = {
        "type": "template",
        "altText": "受信設定",
        "template": {
            "type": "buttons",
            "text": "受け取る情報を選んでください",
            "actions": [{"type": "uri", "label": "市のサイト"}],
        },
    }
    status, _, error = raw(client, "POST", BROADCAST, {"messages": [template]})
    assert status == 400
    assert {"message": "must be specified", "property": "messages[0].template.actions[0].uri"} in (
        error["details"]
    )


def test_unparseable_json_and_wrong_types(line_sandbox, client):
    status, _, error = raw(client, "POST", BROADCAST, {"messages": [{"type": "text", "text": 5}]})
    assert status == 400
    assert error["message"].startswith("The property, 'messages[0].text', in the request body")


# --- retry keys ------------------------------------------------------------------------------


def test_same_retry_key_twice_is_409_and_delivers_once(line_sandbox, api):
    key = str(uuid.uuid4())
    request = BroadcastRequest(messages=[text("避難所開設のお知らせ")])
    first = api.broadcast_with_http_info(request, x_line_retry_key=key)

    with pytest.raises(ApiException) as exc:
        api.broadcast_with_http_info(request, x_line_retry_key=key)

    assert exc.value.status == 409
    assert exc.value.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    body = error_of(exc)
    assert body["message"] == "The retry key is already accepted"
    assert len(body["sentMessages"]) == 1
    assert len(line_sandbox.deliveries()) == 1
    for uid in line_sandbox.follower_ids():
        assert [i.text for i in line_sandbox.inbox(uid)] == ["避難所開設のお知らせ"]


def test_rejected_request_does_not_register_its_retry_key(line_sandbox, api, client):
    key = str(uuid.uuid4())
    status, _, _ = raw(
        client, "POST", BROADCAST, {"messages": []}, headers={"X-Line-Retry-Key": key}
    )
    assert status == 400
    line_sandbox.set_fault(BROADCAST, 503)
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[text("x")]), x_line_retry_key=key)
    assert exc.value.status == 503
    api.broadcast(BroadcastRequest(messages=[text("x")]), x_line_retry_key=key)
    assert len(line_sandbox.deliveries(retry_key=key)) == 1


def test_accept_then_fail_then_retry_gets_409_and_each_recipient_one_copy(line_sandbox, api):
    staff = line_sandbox.staff_ids()
    line_sandbox.set_fault(MULTICAST, 500, mode="accept_then_fail")
    key = str(uuid.uuid4())
    request = MulticastRequest(to=staff, messages=[text("訓練")])

    with pytest.raises(ApiException) as failed:
        api.multicast_with_http_info(request, x_line_retry_key=key)
    assert failed.value.status == 500
    (accepted,) = line_sandbox.deliveries(retry_key=key)
    assert accepted.status == 500

    with pytest.raises(ApiException) as conflict:
        api.multicast_with_http_info(request, x_line_retry_key=key)
    assert conflict.value.status == 409
    assert conflict.value.headers["x-line-accepted-request-id"] == accepted.request_id
    assert failed.value.headers["x-line-request-id"] == accepted.request_id
    for uid in staff:
        assert len(line_sandbox.inbox(uid)) == 1


def test_retry_key_expires_after_24_hours(line_sandbox, api, time_machine):
    time_machine.move_to("2026-12-01T01:00:00Z", tick=False)
    key = str(uuid.uuid4())
    api.broadcast(BroadcastRequest(messages=[text("一回目")]), x_line_retry_key=key)
    time_machine.shift(timedelta(hours=23, minutes=59))
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[text("二回目")]), x_line_retry_key=key)
    assert exc.value.status == 409
    time_machine.shift(timedelta(minutes=2))
    api.broadcast(BroadcastRequest(messages=[text("三回目")]), x_line_retry_key=key)
    assert len(line_sandbox.deliveries(retry_key=key)) == 2


def test_concurrent_sends_with_one_key_deliver_once(line_sandbox, client):
    key = str(uuid.uuid4())
    statuses: list[int] = []

    def send() -> None:
        with ApiClient(Configuration(host=line_sandbox.url, access_token=line_sandbox.token)) as c:
            status, _, _ = raw(
                c,
                "POST",
                BROADCAST,
                {"messages": [{"type": "text", "text": "同時"}]},
                headers={"X-Line-Retry-Key": key},
            )
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 7
    assert len(line_sandbox.deliveries()) == 1


def test_a_request_its_client_gave_up_on_is_answered_before_a_reset(line_sandbox, api):
    """The client times out and moves on (the next test resets the sandbox) while the request
    is still being handled: the reset waits for it, so its delivery is not recorded in the
    state after the reset, where it looked like a second copy to the next test's followers."""
    line_sandbox.set_fault(BROADCAST, mode="latency", latency_ms=500)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        api.broadcast(BroadcastRequest(messages=[text("x")]), _request_timeout=0.1)
    line_sandbox.reset(followers=20)
    time.sleep(0.5)  # past the latency: a request not waited for would be recorded by now
    assert line_sandbox.deliveries() == []


# --- faults, quota, rate limits --------------------------------------------------------------


def test_rate_limit_and_monthly_limit_bodies_differ(line_sandbox, api):
    line_sandbox.set_fault(BROADCAST, kind="rate_limit")
    line_sandbox.set_fault(BROADCAST, kind="monthly_limit")
    with pytest.raises(ApiException) as rate:
        api.broadcast(BroadcastRequest(messages=[text("x")]))
    with pytest.raises(ApiException) as monthly:
        api.broadcast(BroadcastRequest(messages=[text("x")]))
    assert (rate.value.status, error_of(rate)) == (429, {"message": "Too many requests"})
    assert (monthly.value.status, error_of(monthly)) == (
        429,
        {"message": "You have reached your monthly limit."},
    )
    api.broadcast(BroadcastRequest(messages=[text("x")]))  # faults used up
    assert len(line_sandbox.deliveries()) == 1


def test_disconnect_and_latency_faults(line_sandbox, api):
    line_sandbox.set_fault(BROADCAST, mode="disconnect")
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.broadcast(BroadcastRequest(messages=[text("x")]))
    line_sandbox.set_fault("/v2/bot/info", mode="latency", latency_ms=150)
    started = time.perf_counter()
    api.get_bot_info()
    assert time.perf_counter() - started >= 0.15
    assert line_sandbox.deliveries() == []


def test_quota_endpoints_and_limited_quota(line_sandbox, api):
    quota = api.get_message_quota()
    assert quota.type.value == "none"
    assert api.get_message_quota_consumption().total_usage == 0
    api.broadcast(BroadcastRequest(messages=[text("a"), text("b")]))  # 20 recipients = 20
    assert api.get_message_quota_consumption().total_usage == 20

    line_sandbox.set_quota("limited", 45, consumption=10)
    quota = api.get_message_quota()
    assert (quota.type.value, quota.value) == ("limited", 45)
    assert api.get_message_quota_consumption().total_usage == 30
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[text("c")]))  # 30 + 20 > 45
    assert exc.value.status == 429
    assert error_of(exc) == {"message": "You have reached your monthly limit."}
    api.multicast(MulticastRequest(to=line_sandbox.staff_ids(), messages=[text("d")]))
    assert api.get_message_quota_consumption().total_usage == 33


def test_optional_broadcast_rate_limit(line_sandbox, api):
    line_sandbox.state.set_rate_limit("broadcast", 2, per_seconds=3600)
    api.broadcast(BroadcastRequest(messages=[text("1")]))
    api.broadcast(BroadcastRequest(messages=[text("2")]))
    with pytest.raises(ApiException) as exc:
        api.broadcast(BroadcastRequest(messages=[text("3")]))
    assert (exc.value.status, error_of(exc)) == (429, {"message": "Too many requests"})


# --- validate, followers, profile ------------------------------------------------------------


def test_validate_endpoints(line_sandbox, api, client):
    request = ValidateMessageRequest(messages=[text("確認")])
    api.validate_broadcast(request)
    api.validate_multicast(request)
    api.validate_push(request)
    api.validate_narrowcast(request)
    api.validate_reply(request)
    with pytest.raises(ApiException) as exc:
        api.validate_broadcast(ValidateMessageRequest(messages=[text("x" * 5001)]))
    assert exc.value.status == 400
    status, _, _ = raw(client, "POST", "/v2/bot/message/validate/push", {"messages": []})
    assert status == 400
    assert line_sandbox.deliveries() == []


def test_follower_ids_are_paged_like_line(line_sandbox, api, client):
    line_sandbox.state.set_blocked(line_sandbox.follower_ids()[0])
    seen: list[str] = []
    start = None
    pages = 0
    while True:
        page = api.get_followers(start=start, limit=7)
        seen += page.user_ids
        pages += 1
        if not page.next:
            break
        start = page.next
    assert pages == 3
    assert seen == line_sandbox.follower_ids()
    assert len(seen) == 19
    with pytest.raises(pydantic.v1.ValidationError):
        api.get_followers(limit=1001)  # the SDK knows LINE's maximum...
    status, _, _ = raw(client, "GET", "/v2/bot/followers/ids?limit=1001")
    assert status == 400  # ...and so does the sandbox


def test_profile_and_bot_info(line_sandbox, api):
    user = line_sandbox.staff_ids()[0]
    profile = api.get_profile(user)
    assert profile.user_id == user and profile.display_name.startswith("職員テスト")
    with pytest.raises(ApiException) as exc:
        api.get_profile("U" + "0" * 32)
    assert exc.value.status == 404
    info = api.get_bot_info()
    assert (info.basic_id, info.display_name) == ("@kashiwa_shi", "柏市役所")


def test_narrowcast_and_progress(line_sandbox, api, client):
    status, headers, body = raw(
        client, "POST", "/v2/bot/message/narrowcast", {"messages": [{"type": "text", "text": "n"}]}
    )
    assert (status, body) == (202, {})
    progress = api.get_narrowcast_progress(headers["x-line-request-id"])
    assert progress.phase == "succeeded"
    assert progress.success_count == 20


# --- rich menus -------------------------------------------------------------------------------


def test_rich_menu_lifecycle(line_sandbox, api, client):
    blob = MessagingApiBlob(client)
    menu = RichMenuRequest(
        size=RichMenuSize(width=2500, height=843),
        selected=True,
        name="柏市メニュー",
        chatBarText="メニュー",
        areas=[
            RichMenuArea(
                bounds=RichMenuBounds(x=0, y=0, width=1250, height=843),
                action=URIAction(label="市のサイト", uri="https://www.city.kashiwa.lg.jp/"),
            )
        ],
    )
    api.validate_rich_menu_object(menu)
    rich_menu_id = api.create_rich_menu(menu).rich_menu_id
    assert rich_menu_id.startswith("richmenu-")

    with pytest.raises(ApiException) as early:
        api.set_default_rich_menu(rich_menu_id)
    assert early.value.status == 400  # LINE needs the image first

    blob.set_rich_menu_image(rich_menu_id, body=PNG, _headers={"Content-Type": "image/png"})
    assert bytes(blob.get_rich_menu_image(rich_menu_id)) == PNG
    api.set_default_rich_menu(rich_menu_id)
    assert api.get_default_rich_menu_id().rich_menu_id == rich_menu_id
    assert [m.rich_menu_id for m in api.get_rich_menu_list().richmenus] == [rich_menu_id]
    assert api.get_rich_menu(rich_menu_id).chat_bar_text == "メニュー"

    api.cancel_default_rich_menu()
    with pytest.raises(ApiException) as none:
        api.get_default_rich_menu_id()
    assert none.value.status == 404
    api.delete_rich_menu(rich_menu_id)
    assert api.get_rich_menu_list().richmenus == []
    with pytest.raises(ApiException) as gone:
        api.get_rich_menu(rich_menu_id)
    assert gone.value.status == 404


def test_invalid_rich_menu_refused(line_sandbox, client):
    status, _, error = raw(
        client,
        "POST",
        "/v2/bot/richmenu",
        {"size": {"width": 2500, "height": 843}, "selected": False, "name": "x", "areas": []},
    )
    assert status == 400
    assert {"message": "must be specified", "property": "chatBarText"} in error["details"]


# --- insight ---------------------------------------------------------------------------------


def test_insight_numbers_follow_the_delivery_log(line_sandbox, api, time_machine):
    time_machine.move_to("2026-12-01T01:00:00Z", tick=False)  # 10:00 JST
    line_sandbox.add_followers(count=80)  # 100 followers: numbers above the privacy threshold
    response = api.broadcast_with_http_info(BroadcastRequest(messages=[text("イベントのお知らせ")]))
    request_id = response.headers["x-line-request-id"]
    config = InsightConfiguration(host=line_sandbox.url, access_token=line_sandbox.token)
    with InsightApiClient(config) as insight_client:
        insight = Insight(insight_client)
        assert api.get_number_of_sent_broadcast_messages("20261201").status == "unready"
        time_machine.move_to("2026-12-02T01:00:00Z", tick=False)
        counts = api.get_number_of_sent_broadcast_messages("20261201")
        assert (counts.status, counts.success) == ("ready", 100)
        event = insight.get_message_event(request_id)
        assert event.overview.delivered == 100
        assert 20 <= event.overview.unique_impression <= 75
        assert (
            event.overview.unique_impression
            == insight.get_message_event(request_id).overview.unique_impression
        )  # stable
        followers = insight.get_number_of_followers("20261201")
        assert (followers.status, followers.followers, followers.blocks) == ("ready", 100, 0)


# --- page -------------------------------------------------------------------------------------


def test_page_shows_delivered_text_escaped(line_sandbox, api):
    api.broadcast(BroadcastRequest(messages=[text("<script>alert(1)</script>")]))
    http = urllib3.PoolManager()
    page = http.request("GET", line_sandbox.url + "/").data.decode()
    assert "LINE サンドボックス — 市民に届いた内容" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    user = line_sandbox.follower_ids()[0]
    one = http.request("GET", f"{line_sandbox.url}/follower/{user}")
    assert one.status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in one.data.decode()
    assert "<script>" not in one.data.decode()


# --- control API --------------------------------------------------------------------------------


def test_control_api(line_sandbox, api):
    http = urllib3.PoolManager()
    base = line_sandbox.url + "/sandbox/api"
    added = http.request("POST", base + "/followers", json={"count": 2, "staff": True}).json()
    assert [f["staff"] for f in added["followers"]] == [True, True]
    assert len(line_sandbox.staff_ids()) == 5
    new_id = added["followers"][0]["user_id"]
    fault = http.request(
        "POST", base + "/faults", json={"path": "/v2/bot/message/*", "status": 502, "count": 1}
    ).json()
    assert fault["body"] == {"message": "Bad gateway"}
    assert len(http.request("GET", base + "/faults").json()["faults"]) == 1
    with pytest.raises(ApiException) as exc:
        api.push_message(PushMessageRequest(to=new_id, messages=[text("x")]))
    assert exc.value.status == 502
    api.push_message(PushMessageRequest(to=new_id, messages=[text("こんにちは")]))
    deliveries = http.request("GET", base + f"/deliveries?user_id={new_id}").json()["deliveries"]
    assert [d["messages"][0]["text"] for d in deliveries] == ["こんにちは"]
    inbox = http.request("GET", base + f"/inbox/{new_id}").json()["inbox"]
    assert inbox[0]["message"]["text"] == "こんにちは"
    requests = http.request("GET", base + "/requests").json()["requests"]
    assert [r["status"] for r in requests[:2]] == [200, 502]
    http.request("POST", base + "/quota", json={"type": "limited", "value": 500})
    assert api.get_message_quota().value == 500
    http.request("POST", base + "/reset", json={"followers": 4, "staff": 1})
    assert len(line_sandbox.follower_ids()) == 4
    assert line_sandbox.deliveries() == []


# --- webhook ------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers.get("x-line-signature", "")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[bytes, str]]]]:
    received: list[tuple[bytes, str]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/line/webhook/", received
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_like_line_and_reply_token_works_once(line_sandbox, api, receiver):
    url, received = receiver
    line_sandbox.state.configure(webhook_url=url)
    citizen = line_sandbox.follower_ids()[7]

    result = line_sandbox.send_webhook([text_message_event(citizen, "ごみの日")])

    assert result.status == 200
    ((body, signature),) = received
    parser = WebhookParser(line_sandbox.channel_secret)
    (event,) = parser.parse(body.decode(), signature)
    assert isinstance(event, MessageEvent)
    assert event.message.text == "ごみの日"
    assert event.source.user_id == citizen
    assert event.delivery_context.is_redelivery is False
    assert len(event.webhook_event_id) == 26
    assert json.loads(body)["destination"] == line_sandbox.state.bot_user_id
    with pytest.raises(Exception, match="signature"):
        WebhookParser("another-secret").parse(body.decode(), signature)

    reply = ReplyMessageRequest(
        replyToken=event.reply_token, messages=[text("個別の回答はしていません")]
    )
    api.reply_message(reply)
    assert [i.text for i in line_sandbox.inbox(citizen)] == ["個別の回答はしていません"]
    with pytest.raises(ApiException) as exc:
        api.reply_message(reply)
    assert (exc.value.status, error_of(exc)) == (400, {"message": "Invalid reply token"})


def test_webhook_via_control_api_applies_follow_and_unfollow(line_sandbox, receiver):
    url, received = receiver
    http = urllib3.PoolManager()
    newcomer = synthetic_user_id(99_999)
    events = [
        {"type": "follow", "source": {"type": "user", "userId": newcomer}},
        {"type": "unfollow", "source": {"type": "user", "userId": line_sandbox.follower_ids()[0]}},
    ]
    answer = http.request(
        "POST", line_sandbox.url + "/sandbox/api/webhook", json={"events": events, "url": url}
    ).json()
    assert answer["status"] == 200
    assert newcomer in line_sandbox.follower_ids()
    assert len(line_sandbox.follower_ids()) == 20  # one joined, one blocked
    sent = json.loads(received[0][0])
    assert [e["type"] for e in sent["events"]] == ["follow", "unfollow"]
    assert all(e["deliveryContext"] == {"isRedelivery": False} for e in sent["events"])
    assert "replyToken" in sent["events"][0] and "replyToken" not in sent["events"][1]


# --- persistence --------------------------------------------------------------------------------


def test_state_file_keeps_history_and_retry_keys(tmp_path):
    path = tmp_path / "sandbox.jsonl"
    key = str(uuid.uuid4())
    with LineSandbox(port=0, state_file=path) as first:
        first.state.add_followers(count=3)
        config = Configuration(host=first.url, access_token=first.token)
        with ApiClient(config) as c:
            MessagingApi(c).broadcast(BroadcastRequest(messages=[text("a")]), x_line_retry_key=key)
    restarted = SandboxState(journal_path=path)
    restarted.add_followers(count=3)
    (delivery,) = restarted.deliveries()
    assert delivery.retry_key == key
    assert len(restarted.inbox(synthetic_user_id(0))) == 1
    with LineSandbox(port=0, state=restarted) as second:
        config = Configuration(host=second.url, access_token=second.token)
        with ApiClient(config) as c, pytest.raises(ApiException) as exc:
            MessagingApi(c).broadcast(BroadcastRequest(messages=[text("a")]), x_line_retry_key=key)
    assert exc.value.status == 409


def test_page_shows_images_stickers_and_templates_readably(line_sandbox, client):
    messages = [
        {
            "type": "image",
            "originalContentUrl": "https://www.city.kashiwa.lg.jp/map.png",
            "previewImageUrl": "https://www.city.kashiwa.lg.jp/map-small.png",
        },
        {"type": "sticker", "packageId": "446", "stickerId": "1988"},
        {
            "type": "template",
            "altText": "受信設定<b>",
            "template": {
                "type": "buttons",
                "text": "受け取る情報を選んでください",
                "actions": [
                    {
                        "type": "uri",
                        "label": "市のサイト",
                        "uri": "https://www.city.kashiwa.lg.jp/",
                    },
                    {"type": "postback", "label": "防災", "data": "category=disaster_crime"},
                ],
            },
        },
        {
            "type": "flex",
            "altText": "フレックス",
            "contents": {
                "type": "bubble",
                "body": {"type": "box", "layout": "vertical", "contents": []},
            },
        },
    ]
    status, _, _ = raw(client, "POST", BROADCAST, {"messages": messages})
    assert status == 200
    user = line_sandbox.follower_ids()[0]
    page = urllib3.PoolManager().request("GET", f"{line_sandbox.url}/follower/{user}").data.decode()
    assert 'href="https://www.city.kashiwa.lg.jp/map.png"' in page
    assert 'src="https://www.city.kashiwa.lg.jp/map-small.png"' in page
    assert "スタンプ" in page and "1988" in page
    assert "受信設定&lt;b&gt;" in page
    assert 'href="https://www.city.kashiwa.lg.jp/"' in page
    assert "category=disaster_crime" in page
    assert "フレックス" in page
