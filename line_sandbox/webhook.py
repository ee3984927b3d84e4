"""Deliver webhook events to the app the way the LINE Platform does.

LINE POSTs ``{"destination": <bot user ID>, "events": [...]}`` as JSON with
``x-line-signature: base64(HMAC-SHA256(channel secret, raw body))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .records import WebhookResult, ulid
from .state import SandboxState
from .validation import webhook_payload_errors

#: event types that carry a reply token
REPLYABLE = ("message", "follow", "postback", "join", "beacon", "memberJoined")


def sign(channel_secret: str, body: bytes) -> str:
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def send_webhook(
    state: SandboxState,
    events: Iterable[dict[str, Any]],
    *,
    url: str | None = None,
    timeout: float = 10.0,
) -> WebhookResult:
    """Post ``events`` (completed with LINE's fixed fields) to the webhook URL, signed."""
    target = url or state.webhook_url
    if not target:
        raise ValueError("no webhook URL configured (line_sandbox --webhook-url ...)")
    if not target.startswith(("http://", "https://")):
        raise ValueError("webhook URL must be http(s)")
    payload = {"destination": state.bot_user_id, "events": prepare_events(state, events)}
    return _post(state, payload, target, timeout)


def _post(
    state: SandboxState, payload: dict[str, Any], target: str, timeout: float
) -> WebhookResult:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    signature = sign(state.channel_secret, body)
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        target,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "LineBotWebhook/2.0",
            "x-line-signature": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    result = WebhookResult(
        url=target, status=status, body=text, payload=payload, signature=signature
    )
    state.record_webhook(result)
    return result


def prepare_events(state: SandboxState, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill what LINE always sends (``timestamp``, ``mode``, ``webhookEventId``,
    ``deliveryContext``, message ``id``/``quoteToken``, a ``replyToken`` the sandbox will
    accept once) and apply follow/unfollow events to the sandbox's followers."""
    prepared = []
    now = state.clock()
    for original in events:
        event = dict(original)
        event.setdefault("timestamp", int(now.timestamp() * 1000))
        event.setdefault("mode", "active")
        event.setdefault("webhookEventId", ulid(now))
        event.setdefault("deliveryContext", {"isRedelivery": False})
        source = event.get("source")
        user_id = source.get("userId") if isinstance(source, dict) else None
        kind = event.get("type")
        if kind == "message" and isinstance(event.get("message"), dict):
            message = event["message"] = dict(event["message"])
            message.setdefault("id", str(10**17 + secrets.randbelow(9 * 10**17)))
            if message.get("type") in ("text", "image", "video", "sticker"):
                message.setdefault("quoteToken", secrets.token_urlsafe(32))
        elif kind == "follow":
            event.setdefault("follow", {"isUnblocked": False})
        if user_id and kind in REPLYABLE:
            event.setdefault("replyToken", state.issue_reply_token(user_id))
        if user_id and kind == "follow":
            if state.follower(user_id):
                state.set_blocked(user_id, False)
            else:
                state.add_followers(user_ids=[user_id])
        elif user_id and kind == "unfollow" and state.follower(user_id):
            state.set_blocked(user_id, True)
        prepared.append(event)
    return prepared


def text_message_event(user_id: str, text: str) -> dict[str, Any]:
    """A citizen sent ``text`` to the account."""
    return {
        "type": "message",
        "source": {"type": "user", "userId": user_id},
        "message": {"type": "text", "text": text},  # id, quoteToken: filled when sent
    }


def follow_event(user_id: str, *, unblocked: bool = False) -> dict[str, Any]:
    return {
        "type": "follow",
        "source": {"type": "user", "userId": user_id},
        "follow": {"isUnblocked": unblocked},
    }


def unfollow_event(user_id: str) -> dict[str, Any]:
    return {"type": "unfollow", "source": {"type": "user", "userId": user_id}}


def postback_event(user_id: str, data: str) -> dict[str, Any]:
    return {
        "type": "postback",
        "source": {"type": "user", "userId": user_id},
        "postback": {"data": data},
    }


# --- a follower taps a postback action --------------------------------------------------------


@dataclass(frozen=True)
class Tappable:
    """A postback action a follower can see and tap: where it is, its label and data."""

    where: str  # "richmenu", "quick_reply" or "button"
    label: str
    data: str
    display_text: str


def _postback_actions(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "postback" and isinstance(node.get("data"), str):
            yield node
        for key, value in node.items():
            if key != "quickReply":
                yield from _postback_actions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _postback_actions(value)


def tappable_postbacks(state: SandboxState, user_id: str) -> list[Tappable]:
    """What a follower's LINE app shows that sends a postback, as LINE shows it: the default
    rich menu's postback areas, the quick-reply buttons of the newest message only (LINE
    hides them once another message arrives), and buttons in the messages received."""
    found: list[Tappable] = []
    menu_id = state.default_rich_menu()
    menu = state.rich_menu(menu_id) if menu_id else None
    for area in (menu or {}).get("areas", []):
        action = area.get("action") or {}
        if action.get("type") == "postback":
            found.append(_tappable("richmenu", action))
    inbox = state.inbox(user_id)
    if inbox:
        for item in (inbox[-1].message.get("quickReply") or {}).get("items", []):
            action = item.get("action") or {}
            if action.get("type") == "postback":
                found.append(_tappable("quick_reply", action))
    for item in inbox:
        found += [_tappable("button", action) for action in _postback_actions(item.message)]
    return found


def _tappable(where: str, action: dict[str, Any]) -> Tappable:
    return Tappable(
        where=where,
        label=str(action.get("label", "")),
        data=str(action["data"]),
        display_text=str(action.get("displayText", "")),
    )


def tap_postback(
    state: SandboxState, user_id: str, data: str, *, url: str | None = None, timeout: float = 10.0
) -> WebhookResult:
    """The follower taps a postback action showing ``data``, as in the LINE app: LINE posts a
    postback event (checked against LINE's webhook document) to the webhook. Only an action
    the follower can see can be tapped (``ValueError`` otherwise)."""
    follower = state.follower(user_id)
    if follower is None or follower.blocked:
        raise ValueError("only a follower who has not blocked the account can tap")
    offered = {t.data for t in tappable_postbacks(state, user_id)}
    if data not in offered:
        raise ValueError("that postback is not shown to this follower")
    target = url or state.webhook_url
    if not target or not target.startswith(("http://", "https://")):
        raise ValueError("no webhook URL configured (line_sandbox --webhook-url ...)")
    events = prepare_events(state, [postback_event(user_id, data)])
    payload = {"destination": state.bot_user_id, "events": events}
    errors = webhook_payload_errors(payload)
    if errors:
        raise ValueError("; ".join(errors))
    return _post(state, payload, target, timeout)
