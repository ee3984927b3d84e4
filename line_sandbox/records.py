"""The sandbox's records: followers, deliveries, inbox items, faults, log entries.

Frozen dataclasses, so what ``SandboxState`` hands out cannot change under the lock's feet.
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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
#: LINE's answer to an account without the custom aggregation unit application
AGGREGATION_NOT_ALLOWED = "Access to this API is not available for your account"
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

#: the sandbox bot's own user ID (``destination`` of webhook payloads)
BOT_USER_ID = "U" + hashlib.md5(b"kashiwa-bot", usedforsecurity=False).hexdigest()

_SURNAMES = ("柏", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林")
_GIVEN = ("太郎", "花子", "一郎", "さくら", "健太", "陽菜", "翔", "美咲", "大輝", "結衣")


def synthetic_display_name(index: int, *, staff: bool) -> str:
    if staff:
        return f"職員テスト {index + 1:02d}"
    return f"{_SURNAMES[index % 10]} {_GIVEN[(index // 10) % 10]} ({index + 1})"


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


def ulid(now: datetime) -> str:
    """A ULID (what LINE uses for ``webhookEventId``): 48-bit ms time + 80 random bits."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def fraction(seed: str, low: float, high: float) -> float:
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
    #: ``customAggregationUnits`` of a multicast (LINE's statistics key for it)
    aggregation_units: tuple[str, ...] = ()

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
            "aggregation_units": list(self.aggregation_units),
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
            aggregation_units=tuple(data.get("aggregation_units", ())),
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
