"""What the LINE sandbox knows: followers, deliveries, retry keys, faults, rich menus, quota.

Everything lives in one ``SandboxState`` guarded by one lock, so the HTTP handler threads and
in-process tests see a consistent picture. Reads return copies (frozen dataclasses or fresh
lists); nothing outside this module mutates the state directly.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .validation import PUSH_TARGET_RE, LineError

JST = ZoneInfo("Asia/Tokyo")
RETRY_KEY_TTL = timedelta(hours=24)
SEND_ENDPOINTS = ("broadcast", "multicast", "push", "narrowcast", "reply")
SEND_PATH_PREFIX = "/v2/bot/message/"
RETRY_KEY_ENDPOINTS = ("broadcast", "multicast", "push", "narrowcast")
#: Endpoints whose messages count against the monthly quota (reply messages are free).
QUOTA_ENDPOINTS = ("broadcast", "multicast", "push", "narrowcast")
FAULT_MODES = ("fail", "accept_then_fail", "latency", "disconnect", "accept_then_disconnect")

RATE_LIMIT_BODY = {"message": "Too many requests"}
MONTHLY_LIMIT_BODY = {"message": "You have reached your monthly limit."}
DEFAULT_FAULT_BODIES: dict[int, dict[str, str]] = {
    400: {"message": "The request body has 1 error(s)"},
    401: {
        "message": "Authentication failed. Confirm that the access token in the authorization "
        "header is valid."
    },
    403: {"message": "Access to this API is not available for your account"},
    429: RATE_LIMIT_BODY,
    500: {"message": "Internal server error"},
    502: {"message": "Bad gateway"},
    503: {"message": "Service unavailable"},
    504: {"message": "Gateway timeout"},
}

_SURNAMES = ("柏", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林")
_GIVEN = ("太郎", "花子", "一郎", "さくら", "健太", "陽菜", "翔", "美咲", "大輝", "結衣")


def utcnow() -> datetime:
    return datetime.now(UTC)


def synthetic_user_id(index: int) -> str:
    """Deterministic LINE-shaped user ID: ``U`` + 32 hex digits."""
    return "U" + hashlib.md5(f"kashiwa-{index}".encode(), usedforsecurity=False).hexdigest()


def endpoint_path(endpoint: str) -> str:
    """``"broadcast"`` or ``"/v2/bot/message/broadcast"`` → ``"/v2/bot/message/broadcast"``."""
    return endpoint if endpoint.startswith("/") else SEND_PATH_PREFIX + endpoint


def new_request_id() -> str:
    return str(uuid.uuid4())


def _ulid(now: datetime) -> str:
    """A ULID (what LINE uses for ``webhookEventId``): 48-bit ms time + 80 random bits."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def _fraction(seed: str, low: float, high: float) -> float:
    """A stable pseudo-random number in ``[low, high)`` derived from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    return low + (high - low) * int.from_bytes(digest[:8], "big") / 2**64


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Follower:
    user_id: str
    display_name: str
    staff: bool = False
    blocked: bool = False
    followed_at: datetime = field(default_factory=utcnow)
    language: str = "ja"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["followed_at"] = self.followed_at.isoformat()
        return data


@dataclass(frozen=True)
class Delivery:
    """One accepted send request, as LINE would have recorded it."""

    request_id: str
    retry_key: str | None
    #: the API path, e.g. ``"/v2/bot/message/multicast"`` (``kind`` is the short name)
    endpoint: str
    recipients: tuple[str, ...]
    messages: tuple[dict[str, Any], ...]
    notification_disabled: bool
    accepted_at: datetime
    sent_messages: tuple[dict[str, str], ...]
    #: the status the client actually saw (500 for an "accept then fail" fault)
    status: int = 200

    @property
    def kind(self) -> str:
        """``"broadcast"``, ``"multicast"``, ``"push"``, ``"narrowcast"`` or ``"reply"``."""
        return self.endpoint.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "retry_key": self.retry_key,
            "endpoint": self.endpoint,
            "recipients": list(self.recipients),
            "messages": list(self.messages),
            "notification_disabled": self.notification_disabled,
            "accepted_at": self.accepted_at.isoformat(),
            "sent_messages": list(self.sent_messages),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(
            request_id=data["request_id"],
            retry_key=data.get("retry_key"),
            endpoint=endpoint_path(data["endpoint"]),
            recipients=tuple(data["recipients"]),
            messages=tuple(data["messages"]),
            notification_disabled=bool(data.get("notification_disabled", False)),
            accepted_at=datetime.fromisoformat(data["accepted_at"]),
            sent_messages=tuple(data.get("sent_messages", ())),
            status=int(data.get("status", 200)),
        )


@dataclass(frozen=True)
class InboxItem:
    """One message as one follower received it."""

    user_id: str
    request_id: str
    endpoint: str
    message: dict[str, Any]
    message_id: str
    received_at: datetime
    notification_disabled: bool

    @property
    def kind(self) -> str:
        return self.endpoint.rsplit("/", 1)[-1]

    @property
    def type(self) -> str:
        return str(self.message.get("type", ""))

    @property
    def text(self) -> str | None:
        text = self.message.get("text")
        return text if isinstance(text, str) else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["received_at"] = self.received_at.isoformat()
        return data


@dataclass(frozen=True)
class Fault:
    """Make the next ``count`` requests matching ``path`` (a glob) misbehave.

    Modes: ``fail`` answers ``status`` with ``body`` and does nothing else; ``accept_then_fail``
    processes the request (records the delivery, registers the retry key) but answers
    ``status`` (default 500); ``latency`` only delays; ``disconnect`` closes the connection
    without an answer; ``accept_then_disconnect`` accepts, then closes without an answer.
    Every mode waits ``latency_ms`` first. ``count=None`` means every matching request.
    """

    id: int
    path: str
    status: int = 500
    body: dict[str, Any] | None = None
    mode: str = "fail"
    count: int | None = 1
    latency_ms: int = 0
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def response_body(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        return DEFAULT_FAULT_BODIES.get(self.status, {"message": "Internal server error"})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = self.response_body()
        return data


@dataclass(frozen=True)
class RequestLogEntry:
    time: datetime
    method: str
    path: str
    status: int
    request_id: str
    retry_key: str | None = None
    duration_ms: float = 0.0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat()
        return data


@dataclass(frozen=True)
class Quota:
    type: str = "none"  # LINE's local-government plan: no monthly limit
    value: int | None = None
    #: messages already used this month before anything the sandbox delivered
    consumption: int = 0


@dataclass(frozen=True)
class WebhookResult:
    url: str
    status: int
    body: str
    payload: dict[str, Any]
    signature: str


# --- state -----------------------------------------------------------------------------------


class SandboxState:
    """The sandbox's whole world. Thread-safe: every method takes ``self.lock``."""

    def __init__(
        self,
        *,
        channel_secret: str = "sandbox-channel-secret",  # noqa: S107
        bot_user_id: str | None = None,
        bot_basic_id: str = "@kashiwa_shi",
        bot_display_name: str = "柏市役所",
        webhook_url: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        journal_path: Path | str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.channel_secret = channel_secret
        self.bot_user_id = bot_user_id or (
            "U" + hashlib.md5(b"kashiwa-bot", usedforsecurity=False).hexdigest()
        )
        self.bot_basic_id = bot_basic_id
        self.bot_display_name = bot_display_name
        self.webhook_url = webhook_url
        self.restore_defaults()
        self._journal_path = Path(journal_path) if journal_path else None
        self._clear()
        if self._journal_path:
            self._load_journal()

    # --- reset and followers ----------------------------------------------------------------

    def restore_defaults(self) -> None:
        """Put the tunable behaviour back to LINE's (webhook URL and secret are kept)."""
        with self.lock:
            #: short endpoint name → (max requests, window seconds); empty = not enforced
            self.rate_limits: dict[str, tuple[int, float]] = {}
            #: insight numbers for a day become "ready" this many days later (LINE: next day)
            self.insight_delay_days = 1
            #: insight numbers below this are hidden (``null``), as LINE does for privacy
            self.insight_privacy_threshold = 20
            self.reply_token_ttl = timedelta(minutes=1)

    def _clear(self) -> None:
        self._followers: dict[str, Follower] = {}
        self._next_follower_index = 0
        self._deliveries: list[Delivery] = []
        self._by_request_id: dict[str, Delivery] = {}
        self._retry_keys: dict[str, Delivery] = {}
        self._inbox: dict[str, list[InboxItem]] = {}
        self._faults: list[Fault] = []
        self._fault_ids = itertools.count(1)
        self._requests: deque[RequestLogEntry] = deque(maxlen=1000)
        self._quota = Quota()
        self._rate_history: dict[str, deque[float]] = {}
        self._rich_menus: dict[str, dict[str, Any]] = {}
        self._rich_menu_images: dict[str, tuple[str, bytes]] = {}
        self._default_rich_menu: str | None = None
        self._reply_tokens: dict[str, tuple[str, datetime]] = {}
        self._message_ids = itertools.count(int(self.clock().timestamp() * 1000) * 1000)
        self._webhooks: deque[WebhookResult] = deque(maxlen=200)

    def reset(self, *, followers: int = 0, staff: int = 0) -> None:
        """Forget everything (deliveries, retry keys, faults, quota, rich menus, followers)."""
        with self.lock:
            self._clear()
            self._journal({"kind": "reset"})
            if followers:
                self.add_followers(count=followers, staff_count=staff)

    def add_followers(
        self,
        *,
        count: int = 0,
        user_ids: Iterable[str] = (),
        staff: bool = False,
        staff_count: int = 0,
        blocked: bool = False,
    ) -> list[Follower]:
        """Add ``count`` synthetic followers (the first ``staff_count`` of them, or all if
        ``staff``, flagged as staff test recipients) and/or the given ``user_ids``.

        An existing ID is updated (staff/blocked flags) rather than duplicated.
        """
        added: list[Follower] = []
        now = self.clock()
        with self.lock:
            for n in range(count):
                while synthetic_user_id(self._next_follower_index) in self._followers:
                    self._next_follower_index += 1
                index = self._next_follower_index
                self._next_follower_index += 1
                is_staff = staff or n < staff_count
                follower = Follower(
                    user_id=synthetic_user_id(index),
                    display_name=self._display_name(index, staff=is_staff),
                    staff=is_staff,
                    blocked=blocked,
                    followed_at=now,
                )
                self._followers[follower.user_id] = follower
                added.append(follower)
            for user_id in user_ids:
                existing = self._followers.get(user_id)
                if existing:
                    follower = replace(existing, staff=staff, blocked=blocked)
                else:
                    follower = Follower(
                        user_id=user_id,
                        display_name=f"市民 {user_id[1:7]}",
                        staff=staff,
                        blocked=blocked,
                        followed_at=now,
                    )
                self._followers[user_id] = follower
                added.append(follower)
        return added

    @staticmethod
    def _display_name(index: int, *, staff: bool) -> str:
        if staff:
            return f"職員テスト {index + 1:02d}"
        return f"{_SURNAMES[index % 10]} {_GIVEN[(index // 10) % 10]} ({index + 1})"

    def set_blocked(self, user_id: str, blocked: bool = True) -> Follower:
        with self.lock:
            follower = replace(self._followers[user_id], blocked=blocked)
            self._followers[user_id] = follower
            return follower

    def followers(
        self, *, include_blocked: bool = True, staff: bool | None = None
    ) -> list[Follower]:
        with self.lock:
            return [
                f
                for f in self._followers.values()
                if (include_blocked or not f.blocked) and (staff is None or f.staff == staff)
            ]

    def follower(self, user_id: str) -> Follower | None:
        with self.lock:
            return self._followers.get(user_id)

    def staff_ids(self) -> list[str]:
        return [f.user_id for f in self.followers(include_blocked=False, staff=True)]

    def active_follower_ids(self) -> list[str]:
        return [f.user_id for f in self.followers(include_blocked=False)]

    # --- configuration ------------------------------------------------------------------------

    def configure(
        self,
        *,
        webhook_url: str | None = None,
        channel_secret: str | None = None,
        broadcast_rate_limit: bool | None = None,
        insight_delay_days: int | None = None,
        insight_privacy_threshold: int | None = None,
    ) -> None:
        """Change settings; ``broadcast_rate_limit=True`` enforces LINE's 60/h on broadcast and
        narrowcast (``False`` turns all rate limits off)."""
        with self.lock:
            if webhook_url is not None:
                self.webhook_url = webhook_url or None
            if channel_secret is not None:
                self.channel_secret = channel_secret
            if broadcast_rate_limit is True:
                self.rate_limits.update({"broadcast": (60, 3600.0), "narrowcast": (60, 3600.0)})
            elif broadcast_rate_limit is False:
                self.rate_limits.clear()
            if insight_delay_days is not None:
                self.insight_delay_days = insight_delay_days
            if insight_privacy_threshold is not None:
                self.insight_privacy_threshold = insight_privacy_threshold

    def set_rate_limit(self, endpoint: str, limit: int | None, per_seconds: float = 1.0) -> None:
        """Enforce ``limit`` accepted requests per ``per_seconds`` on one endpoint (None: off)."""
        endpoint = endpoint.rsplit("/", 1)[-1]
        with self.lock:
            if limit is None:
                self.rate_limits.pop(endpoint, None)
            else:
                self.rate_limits[endpoint] = (limit, per_seconds)

    def set_quota(
        self, type: str = "none", value: int | None = None, consumption: int = 0
    ) -> Quota:
        if type not in ("none", "limited"):
            raise ValueError("quota type must be 'none' or 'limited'")
        if type == "limited" and value is None:
            raise ValueError("a limited quota needs a value")
        with self.lock:
            self._quota = Quota(type=type, value=value, consumption=consumption)
            return self._quota

    def quota(self) -> Quota:
        with self.lock:
            return self._quota

    def quota_consumption(self) -> int:
        """Messages counted against this month's quota (JST month), as LINE reports it."""
        with self.lock:
            month = self.clock().astimezone(JST).strftime("%Y%m")
            used = sum(
                len(d.recipients)
                for d in self._deliveries
                if d.kind in QUOTA_ENDPOINTS
                and d.accepted_at.astimezone(JST).strftime("%Y%m") == month
            )
            return self._quota.consumption + used

    # --- faults -------------------------------------------------------------------------------

    def set_fault(
        self,
        path: str,
        status: int | None = None,
        *,
        count: int | None = 1,
        mode: str = "fail",
        body: dict[str, Any] | None = None,
        latency_ms: int = 0,
        method: str | None = None,
        kind: str | None = None,
    ) -> Fault:
        """Configure a fault; ``kind="rate_limit"``/``"monthly_limit"`` is a 429 with LINE's
        body for that case. See ``Fault`` for the modes."""
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {FAULT_MODES}")
        if kind == "rate_limit":
            status, body = 429, body or RATE_LIMIT_BODY
        elif kind == "monthly_limit":
            status, body = 429, body or MONTHLY_LIMIT_BODY
        elif kind is not None:
            raise ValueError("kind must be 'rate_limit' or 'monthly_limit'")
        if not path.startswith("/") and "*" not in path:
            path = "/" + path
        with self.lock:
            fault = Fault(
                id=next(self._fault_ids),
                path=path,
                status=status or 500,
                body=body,
                mode=mode,
                count=count,
                latency_ms=latency_ms,
                method=method,
            )
            self._faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        with self.lock:
            return list(self._faults)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, consumed (count decremented) atomically."""
        with self.lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    if fault.count is not None:
                        if fault.count <= 1:
                            del self._faults[i]
                        else:
                            self._faults[i] = replace(fault, count=fault.count - 1)
                    return fault
            return None

    # --- request log --------------------------------------------------------------------------

    def log_request(self, entry: RequestLogEntry) -> None:
        with self.lock:
            self._requests.append(entry)

    def requests(self, limit: int | None = None) -> list[RequestLogEntry]:
        """Logged API requests, newest first."""
        with self.lock:
            items = list(reversed(self._requests))
        return items[:limit] if limit else items

    # --- sending ------------------------------------------------------------------------------

    def send(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        request_id: str,
        retry_key: str | None = None,
        respond_status: int = 200,
    ) -> Delivery:
        """Accept a validated send request, or raise ``LineError`` (409, 429, 400).

        The retry-key check, the limits and the recording happen under one lock, so two
        concurrent requests with the same key cannot both be delivered.
        """
        endpoint = endpoint.rsplit("/", 1)[-1]
        if endpoint not in SEND_ENDPOINTS:
            raise ValueError(endpoint)
        now = self.clock()
        with self.lock:
            if retry_key:
                previous = self._retry_keys.get(retry_key)
                if previous and now - previous.accepted_at < RETRY_KEY_TTL:
                    raise LineError(
                        409,
                        "The retry key is already accepted",
                        headers={"x-line-accepted-request-id": previous.request_id},
                        extra={"sentMessages": list(previous.sent_messages)},
                    )
            self._check_rate_limit(endpoint, now)
            recipients = self._recipients(endpoint, body, now)
            if endpoint in QUOTA_ENDPOINTS and self._quota.type == "limited":
                assert self._quota.value is not None  # noqa: S101 - set_quota guarantees it
                if self.quota_consumption() + len(recipients) > self._quota.value:
                    raise LineError(429, MONTHLY_LIMIT_BODY["message"])
            messages = tuple(body["messages"])
            sent = tuple(self._sent_message(endpoint, m) for m in messages)
            delivery = Delivery(
                request_id=request_id,
                retry_key=retry_key,
                endpoint=endpoint_path(endpoint),
                recipients=tuple(recipients),
                messages=messages,
                notification_disabled=bool(body.get("notificationDisabled", False)),
                accepted_at=now,
                sent_messages=sent,
                status=respond_status,
            )
            self._record(delivery)
            self._journal({"kind": "delivery", **delivery.to_dict()})
            if endpoint in self.rate_limits:
                self._rate_history.setdefault(endpoint, deque()).append(now.timestamp())
            return delivery

    def _check_rate_limit(self, endpoint: str, now: datetime) -> None:
        limit = self.rate_limits.get(endpoint)
        if not limit:
            return
        max_requests, window = limit
        history = self._rate_history.setdefault(endpoint, deque())
        cutoff = now.timestamp() - window
        while history and history[0] < cutoff:
            history.popleft()
        if len(history) >= max_requests:
            raise LineError(429, RATE_LIMIT_BODY["message"])

    def _recipients(self, endpoint: str, body: dict[str, Any], now: datetime) -> list[str]:
        active = {f.user_id for f in self._followers.values() if not f.blocked}
        if endpoint in ("broadcast", "narrowcast"):
            # Narrowcast filters and audiences are not modelled: everyone who follows.
            return [uid for uid in self._followers if uid in active]
        if endpoint == "multicast":
            # LINE silently skips IDs that are not (or no longer) friends.
            return [uid for uid in dict.fromkeys(body["to"]) if uid in active]
        if endpoint == "push":
            to = body["to"]
            if to not in self._followers and PUSH_TARGET_RE.match(to) and to.startswith("U"):
                raise LineError(400, "Failed to send messages")
            return [to] if to in active else []
        # reply
        token = body.get("replyToken", "")
        issued = self._reply_tokens.pop(token, None)
        if issued is None or now - issued[1] > self.reply_token_ttl:
            raise LineError(400, "Invalid reply token")
        return [issued[0]] if issued[0] in active else []

    def _sent_message(self, endpoint: str, message: dict[str, Any]) -> dict[str, str]:
        sent = {"id": str(next(self._message_ids))}
        if endpoint in ("push", "reply") and message.get("type") in (
            "text",
            "textV2",
            "sticker",
            "image",
            "video",
        ):
            sent["quoteToken"] = secrets.token_urlsafe(32)
        return sent

    def _record(self, delivery: Delivery) -> None:
        self._deliveries.append(delivery)
        self._by_request_id[delivery.request_id] = delivery
        if delivery.retry_key:
            self._retry_keys[delivery.retry_key] = delivery
        for user_id in delivery.recipients:
            inbox = self._inbox.setdefault(user_id, [])
            for message, sent in zip(delivery.messages, delivery.sent_messages, strict=True):
                inbox.append(
                    InboxItem(
                        user_id=user_id,
                        request_id=delivery.request_id,
                        endpoint=delivery.endpoint,
                        message=message,
                        message_id=sent["id"],
                        received_at=delivery.accepted_at,
                        notification_disabled=delivery.notification_disabled,
                    )
                )

    def deliveries(
        self,
        *,
        user_id: str | None = None,
        request_id: str | None = None,
        retry_key: str | None = None,
        endpoint: str | None = None,
    ) -> list[Delivery]:
        """Accepted send requests, oldest first, optionally filtered."""
        with self.lock:
            return [
                d
                for d in self._deliveries
                if (user_id is None or user_id in d.recipients)
                and (request_id is None or d.request_id == request_id)
                and (retry_key is None or d.retry_key == retry_key)
                and (endpoint is None or d.endpoint == endpoint_path(endpoint))
            ]

    def delivery(self, request_id: str) -> Delivery | None:
        with self.lock:
            return self._by_request_id.get(request_id)

    def inbox(self, user_id: str) -> list[InboxItem]:
        """What one follower received, oldest first."""
        with self.lock:
            return list(self._inbox.get(user_id, ()))

    # --- rich menus ---------------------------------------------------------------------------

    def create_rich_menu(self, body: dict[str, Any]) -> str:
        rich_menu_id = "richmenu-" + uuid.uuid4().hex
        with self.lock:
            self._rich_menus[rich_menu_id] = {"richMenuId": rich_menu_id, **body}
        return rich_menu_id

    def rich_menu(self, rich_menu_id: str) -> dict[str, Any] | None:
        with self.lock:
            menu = self._rich_menus.get(rich_menu_id)
            return dict(menu) if menu else None

    def rich_menus(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self._rich_menus.values()]

    def delete_rich_menu(self, rich_menu_id: str) -> bool:
        with self.lock:
            if self._rich_menus.pop(rich_menu_id, None) is None:
                return False
            self._rich_menu_images.pop(rich_menu_id, None)
            if self._default_rich_menu == rich_menu_id:
                self._default_rich_menu = None
            return True

    def set_rich_menu_image(self, rich_menu_id: str, content_type: str, data: bytes) -> None:
        with self.lock:
            if rich_menu_id not in self._rich_menus:
                raise LineError(404, "Not found")
            if rich_menu_id in self._rich_menu_images:
                raise LineError(400, "An image has already been uploaded to the richmenu")
            self._rich_menu_images[rich_menu_id] = (content_type, data)

    def rich_menu_image(self, rich_menu_id: str) -> tuple[str, bytes] | None:
        with self.lock:
            return self._rich_menu_images.get(rich_menu_id)

    def set_default_rich_menu(self, rich_menu_id: str) -> None:
        with self.lock:
            if rich_menu_id not in self._rich_menus:
                raise LineError(404, "Not found")
            if rich_menu_id not in self._rich_menu_images:
                raise LineError(400, "must upload richmenu image before applying it to user")
            self._default_rich_menu = rich_menu_id

    def default_rich_menu(self) -> str | None:
        with self.lock:
            return self._default_rich_menu

    def clear_default_rich_menu(self) -> None:
        with self.lock:
            self._default_rich_menu = None

    # --- insight ------------------------------------------------------------------------------

    def _insight_ready(self, day: datetime) -> bool:
        today = self.clock().astimezone(JST).date()
        return (today - day.date()).days >= self.insight_delay_days

    def _private(self, value: int) -> int | None:
        return None if value < self.insight_privacy_threshold else value

    def delivery_count(self, endpoint: str, date: str) -> dict[str, Any]:
        """``NumberOfMessagesResponse`` for one endpoint and JST day ``YYYYMMDD``."""
        day = datetime.strptime(date, "%Y%m%d").replace(tzinfo=JST)
        if not self._insight_ready(day):
            return {"status": "unready"}
        with self.lock:
            success = sum(
                len(d.recipients)
                for d in self._deliveries
                if d.kind == endpoint and d.accepted_at.astimezone(JST).date() == day.date()
            )
        return {"status": "ready", "success": success}

    def follower_statistics(self, date: str | None) -> dict[str, Any]:
        """``GetNumberOfFollowersResponse`` (followers on or before the JST day)."""
        day = (
            datetime.strptime(date, "%Y%m%d").replace(tzinfo=JST)
            if date
            else self.clock().astimezone(JST) - timedelta(days=self.insight_delay_days)
        )
        if not self._insight_ready(day):
            return {"status": "unready"}
        end = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        with self.lock:
            known = [f for f in self._followers.values() if f.followed_at < end]
        blocks = sum(1 for f in known if f.blocked)
        reach = int((len(known) - blocks) * 0.77)
        return {
            "status": "ready",
            "followers": len(known),
            "targetedReaches": reach,
            "blocks": blocks,
        }

    def message_event(self, request_id: str) -> dict[str, Any]:
        """``GetMessageEventResponse``: synthetic but stable numbers for a broadcast or
        narrowcast; an empty overview for anything else (LINE keeps no such statistics)."""
        delivery = self.delivery(request_id)
        empty_overview = {
            "requestId": request_id,
            "timestamp": None,
            "delivered": 0,
            "uniqueImpression": None,
            "uniqueClick": None,
            "uniqueMediaPlayed": None,
            "uniqueMediaPlayed100Percent": None,
        }
        if delivery is None or delivery.kind not in ("broadcast", "narrowcast"):
            return {"overview": empty_overview, "messages": [], "clicks": []}
        delivered = len(delivery.recipients)
        opened = int(delivered * _fraction(request_id + ":open", 0.35, 0.75))
        urls = [
            (seq, uri)
            for seq, message in enumerate(delivery.messages, start=1)
            for uri in _message_uris(message)
        ]
        clicked = int(opened * _fraction(request_id + ":click", 0.1, 0.5)) if urls else 0
        has_media = any(m.get("type") in ("video", "audio") for m in delivery.messages)
        played = int(opened * _fraction(request_id + ":play", 0.2, 0.6)) if has_media else 0
        messages = []
        for seq, message in enumerate(delivery.messages, start=1):
            impressions = int(opened * _fraction(f"{request_id}:{seq}", 0.8, 1.3))
            media = message.get("type") in ("video", "audio")
            row: dict[str, Any] = {"seq": seq, "impression": self._private(impressions)}
            for key in ("mediaPlayed", "uniqueMediaPlayed"):
                row[key] = self._private(played) if media else None
                for pct in (25, 50, 75, 100):
                    value = int(played * (1 - pct / 125)) if media else 0
                    row[f"{key}{pct}Percent"] = self._private(value) if media else None
            messages.append(row)
        clicks = []
        for seq, url in urls:
            unique = int(clicked * _fraction(f"{request_id}:{url}", 0.5, 1.0))
            clicks.append(
                {
                    "seq": seq,
                    "url": url,
                    "click": self._private(int(unique * 1.3)),
                    "uniqueClick": self._private(unique),
                    "uniqueClickOfRequest": self._private(unique),
                }
            )
        overview = {
            "requestId": request_id,
            "timestamp": int(delivery.accepted_at.timestamp()),
            "delivered": delivered,
            "uniqueImpression": self._private(opened),
            "uniqueClick": self._private(clicked) if urls else None,
            "uniqueMediaPlayed": self._private(played) if has_media else None,
            "uniqueMediaPlayed100Percent": self._private(int(played * 0.2)) if has_media else None,
        }
        return {"overview": overview, "messages": messages, "clicks": clicks}

    # --- webhook ------------------------------------------------------------------------------

    def issue_reply_token(self, user_id: str) -> str:
        token = secrets.token_hex(16)
        with self.lock:
            self._reply_tokens[token] = (user_id, self.clock())
        return token

    def prepare_webhook_events(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fill what LINE always sends (``timestamp``, ``mode``, ``webhookEventId``,
        ``deliveryContext``, a ``replyToken`` for replyable events) and apply follow/unfollow
        to the followers."""
        prepared = []
        now = self.clock()
        for event in events:
            event = dict(event)
            event.setdefault("timestamp", int(now.timestamp() * 1000))
            event.setdefault("mode", "active")
            event.setdefault("webhookEventId", _ulid(now))
            event.setdefault("deliveryContext", {"isRedelivery": False})
            source = event.get("source") or {}
            user_id = source.get("userId") if isinstance(source, dict) else None
            kind = event.get("type")
            if kind == "message" and isinstance(event.get("message"), dict):
                message = event["message"] = dict(event["message"])
                message.setdefault("id", str(10**17 + secrets.randbelow(9 * 10**17)))
                if message.get("type") in ("text", "image", "video", "sticker"):
                    message.setdefault("quoteToken", secrets.token_urlsafe(32))
            elif kind == "follow":
                event.setdefault("follow", {"isUnblocked": False})
            if user_id and kind in ("message", "follow", "postback", "join", "beacon"):
                event.setdefault("replyToken", self.issue_reply_token(user_id))
            if user_id and kind == "follow":
                with self.lock:
                    if user_id in self._followers:
                        self.set_blocked(user_id, False)
                    else:
                        self.add_followers(user_ids=[user_id])
            elif user_id and kind == "unfollow":
                with self.lock:
                    if user_id in self._followers:
                        self.set_blocked(user_id, True)
            prepared.append(event)
        return prepared

    def record_webhook(self, result: WebhookResult) -> None:
        with self.lock:
            self._webhooks.append(result)

    def webhooks(self) -> list[WebhookResult]:
        """Webhook posts sent so far, newest first."""
        with self.lock:
            return list(reversed(self._webhooks))

    # --- persistence --------------------------------------------------------------------------

    def _journal(self, record: dict[str, Any]) -> None:
        if self._journal_path is None:
            return
        with self._journal_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _load_journal(self) -> None:
        assert self._journal_path is not None  # noqa: S101 - only called with a path
        if not self._journal_path.exists():
            return
        records: list[dict[str, Any]] = []
        with self._journal_path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                if record.get("kind") == "reset":
                    records.clear()
                elif record.get("kind") == "delivery":
                    records.append(record)
        with self.lock:
            for record in records:
                self._record(Delivery.from_dict(record))
            if records:
                last_id = max(int(s["id"]) for r in records for s in r.get("sent_messages", ()))
                self._message_ids = itertools.count(
                    max(last_id + 1, int(self.clock().timestamp() * 1000) * 1000)
                )


def _message_uris(message: dict[str, Any]) -> list[str]:
    """The URIs a citizen could open from a message (URI actions in templates/quick replies)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "uri" and isinstance(node.get("uri"), str):
                found.append(node["uri"])
            if isinstance(node.get("linkUri"), str):
                found.append(node["linkUri"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message)
    return list(dict.fromkeys(found))
