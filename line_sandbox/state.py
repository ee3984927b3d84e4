"""What the LINE sandbox knows: followers, deliveries, retry keys, faults, rich menus, quota.

Everything lives in one ``SandboxState`` guarded by one lock, so the HTTP handler threads and
in-process tests see a consistent picture. Reads return copies (frozen dataclasses or fresh
lists); nothing outside this module mutates the state directly.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .records import (
    AGGREGATION_NOT_ALLOWED,
    BOT_USER_ID,
    FAULT_MODES,
    JST,
    MONTHLY_LIMIT_BODY,
    QUOTA_ENDPOINTS,
    RATE_LIMIT_BODY,
    RETRY_KEY_TTL,
    SEND_ENDPOINTS,
    Delivery,
    Fault,
    Follower,
    InboxItem,
    Quota,
    RequestLogEntry,
    WebhookResult,
    endpoint_path,
    synthetic_display_name,
    synthetic_user_id,
    utcnow,
)
from .validation import PUSH_TARGET_RE, LineError

# How long a reset waits for API requests in flight (longer than any client's timeout).
RESET_WAIT_SECONDS = 30.0

__all__ = [
    "Delivery",
    "Fault",
    "Follower",
    "InboxItem",
    "Quota",
    "RequestLogEntry",
    "SandboxState",
    "WebhookResult",
    "synthetic_user_id",
]


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
        # API requests being handled (see ``reset``).
        self._in_flight = 0
        self._idle = threading.Condition(self.lock)
        self.channel_secret = channel_secret
        self.bot_user_id = bot_user_id or BOT_USER_ID
        # The channel's identity as the sandbox was started with (the city's by default);
        # ``set_bot_info`` changes it, ``restore_defaults`` puts it back.
        self._default_bot_info = (bot_basic_id, bot_display_name)
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
            #: whether this channel may use custom aggregation units (LINE: corporate
            #: accounts that applied for it); ``False`` answers 403 as LINE does
            self.aggregation_units_allowed = True
            #: distinct unit names a channel may use in a month (LINE: 1,000)
            self.aggregation_units_per_month = 1000
            self.reply_token_ttl = timedelta(minutes=1)
            if hasattr(self, "_default_bot_info"):
                self.bot_basic_id, self.bot_display_name = self._default_bot_info

    def set_bot_info(self, *, basic_id: str, display_name: str) -> None:
        """Answer ``GET /v2/bot/info`` as another channel would (until ``restore_defaults``)."""
        with self.lock:
            self.bot_basic_id = basic_id
            self.bot_display_name = display_name

    def _clear(self) -> None:
        self._followers: dict[str, Follower] = {}
        # The set of followers who have not blocked the account, rebuilt only when followers
        # change (a 500-recipient multicast to 100,000 followers must not rebuild it).
        self._active: set[str] | None = None
        self._next_follower_index = 0
        self._deliveries: list[Delivery] = []
        self._by_request_id: dict[str, Delivery] = {}
        self._retry_keys: dict[str, Delivery] = {}
        # Per follower, the deliveries that reached them (the inbox items are built when read:
        # a 500-recipient multicast costs 500 list appends, not 500 objects).
        self._inbox: dict[str, list[Delivery]] = {}
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

    def reset(
        self, *, followers: int = 0, staff: int = 0, followed_at: datetime | None = None
    ) -> None:
        """Forget everything (deliveries, retry keys, faults, quota, rich menus, followers);
        then add ``followers`` synthetic ones (see ``add_followers`` for ``followed_at``).

        API requests still being handled are answered first: a request whose client gave up
        on it (a timeout, then a retry with the same key) would otherwise be recorded after
        the reset, as a delivery nobody made to the next test's followers."""
        with self.lock:
            if not self._idle.wait_for(lambda: self._in_flight == 0, RESET_WAIT_SECONDS):
                sys.stderr.write(
                    f"[line-sandbox] reset with {self._in_flight} API request(s) still running\n"
                )
            self._clear()
            self._journal({"kind": "reset"})
            if followers:
                self.add_followers(count=followers, staff_count=staff, followed_at=followed_at)

    def add_followers(
        self,
        *,
        count: int = 0,
        user_ids: Iterable[str] = (),
        staff: bool = False,
        staff_count: int = 0,
        blocked: bool = False,
        followed_at: datetime | None = None,
    ) -> list[Follower]:
        """Add ``count`` synthetic followers (the first ``staff_count`` of them, or all if
        ``staff``, flagged as staff test recipients) and/or the given ``user_ids``.

        They followed at ``followed_at`` (default: now on the sandbox's clock); the follower
        statistics count only those who followed by the day asked about.
        An existing ID is updated (staff/blocked flags) rather than duplicated.
        """
        added: list[Follower] = []
        now = followed_at or self.clock()
        with self.lock:
            self._active = None
            for n in range(count):
                while synthetic_user_id(self._next_follower_index) in self._followers:
                    self._next_follower_index += 1
                index = self._next_follower_index
                self._next_follower_index += 1
                is_staff = staff or n < staff_count
                follower = Follower(
                    user_id=synthetic_user_id(index),
                    display_name=synthetic_display_name(index, staff=is_staff),
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

    def request_started(self) -> None:
        with self.lock:
            self._in_flight += 1

    def request_finished(self) -> None:
        with self.lock:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def set_blocked(self, user_id: str, blocked: bool = True) -> Follower:
        with self.lock:
            self._active = None
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
        aggregation_units_allowed: bool | None = None,
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
            if aggregation_units_allowed is not None:
                self.aggregation_units_allowed = aggregation_units_allowed

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
        with self.lock:
            # Read under the lock: deliveries are recorded in the order of their times, so a
            # retry key's age is never measured from a time later than its acceptance.
            now = self.clock()
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
            units = tuple(body.get("customAggregationUnits") or ())
            if units:
                self._check_aggregation_units(units, now)
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
                aggregation_units=units,
            )
            self._record(delivery)
            self._journal({"kind": "delivery", **delivery.to_dict()})
            if endpoint in self.rate_limits:
                self._rate_history.setdefault(endpoint, deque()).append(now.timestamp())
            return delivery

    def _check_aggregation_units(self, units: tuple[str, ...], now: datetime) -> None:
        """LINE's rules for ``customAggregationUnits`` (call with the lock held)."""
        if not self.aggregation_units_allowed:
            raise LineError(403, AGGREGATION_NOT_ALLOWED)
        used = self._aggregation_units_in_month(now)
        if len(used | set(units)) > self.aggregation_units_per_month:
            raise LineError(
                400, "The number of aggregation units used this month exceeds the limit"
            )

    def _aggregation_units_in_month(self, now: datetime) -> set[str]:
        month = now.astimezone(JST).strftime("%Y%m")
        return {
            unit
            for d in self._deliveries
            if d.accepted_at.astimezone(JST).strftime("%Y%m") == month
            for unit in d.aggregation_units
        }

    def aggregation_units_used(self) -> list[str]:
        """Unit names used this month (JST), in first-use order."""
        with self.lock:
            if not self.aggregation_units_allowed:
                raise LineError(403, AGGREGATION_NOT_ALLOWED)
            month = self.clock().astimezone(JST).strftime("%Y%m")
            seen: dict[str, None] = {}
            for d in self._deliveries:
                if d.accepted_at.astimezone(JST).strftime("%Y%m") == month:
                    seen.update(dict.fromkeys(d.aggregation_units))
            return list(seen)

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

    def _active_ids(self) -> set[str]:
        """Followers who have not blocked the account (call with the lock held)."""
        if self._active is None:
            self._active = {f.user_id for f in self._followers.values() if not f.blocked}
        return self._active

    def _recipients(self, endpoint: str, body: dict[str, Any], now: datetime) -> list[str]:
        active = self._active_ids()
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
            self._inbox.setdefault(user_id, []).append(delivery)

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
            deliveries = list(self._inbox.get(user_id, ()))
        return [
            InboxItem(
                user_id=user_id,
                request_id=delivery.request_id,
                endpoint=delivery.endpoint,
                message=message,
                message_id=sent["id"],
                received_at=delivery.accepted_at,
                notification_disabled=delivery.notification_disabled,
            )
            for delivery in deliveries
            for message, sent in zip(delivery.messages, delivery.sent_messages, strict=True)
        ]

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

    # --- webhook ------------------------------------------------------------------------------

    def issue_reply_token(self, user_id: str) -> str:
        token = secrets.token_hex(16)
        with self.lock:
            self._reply_tokens[token] = (user_id, self.clock())
        return token

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
