"""The one gateway to LINE: wraps line-bot-sdk v3 (DESIGN.md §6).

Only this package imports the SDK. Message objects are stored as LINE JSON and passed through
the SDK's own models, so what was approved is exactly what is sent."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from django.conf import settings
from linebot.v3.insight import ApiClient as InsightApiClient
from linebot.v3.insight import Configuration as InsightConfiguration
from linebot.v3.insight import Insight
from linebot.v3.insight.exceptions import ApiException as InsightApiException
from linebot.v3.messaging import (
    ApiClient,
    BroadcastRequest,
    Configuration,
    MessagingApi,
    MessagingApiBlob,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
    RichMenuRequest,
    ValidateMessageRequest,
)
from linebot.v3.messaging.exceptions import ApiException
from pydantic import ValidationError

from .errors import (
    LineError,
    LinePermanentError,
    LineQuotaExceededError,
    LineRateLimitedError,
    LineTemporaryError,
)

MONTHLY_LIMIT_MESSAGE = "You have reached your monthly limit."
MULTICAST_MAX_RECIPIENTS = 500


@dataclass(frozen=True)
class SendResult:
    """LINE accepted the request. ``duplicate``: it had already accepted this retry key."""

    request_id: str
    duplicate: bool
    http_status: int


@dataclass(frozen=True)
class Quota:
    type: str  # "none" (no limit: local-government plan) or "limited"
    value: int | None
    consumption: int

    @property
    def remaining(self) -> int | None:
        return None if self.value is None else max(self.value - self.consumption, 0)


@dataclass(frozen=True)
class MessageEventStats:
    """Insight for one broadcast/narrowcast request. ``None``: LINE gives no number (not
    ready, or under its privacy threshold of 20)."""

    delivered: int | None
    unique_impression: int | None
    unique_click: int | None
    raw: dict[str, Any]

    @property
    def ready(self) -> bool:
        return bool(self.raw.get("overview", {}).get("timestamp"))


@dataclass(frozen=True)
class UnitStats:
    """Insight for one custom aggregation unit (multicasts). ``None``: no number (not ready,
    or under LINE's privacy threshold)."""

    unique_impression: int | None
    unique_click: int | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class FollowerStats:
    """Followers on a JST day. ``status`` is "ready", "unready" or "out_of_service"."""

    status: str
    followers: int | None
    targeted_reaches: int | None
    blocks: int | None


@dataclass(frozen=True)
class DeliveryCount:
    """Messages delivered on a JST day by one endpoint (``success`` only when "ready")."""

    status: str
    success: int | None


def _header(headers: Any, name: str) -> str:
    if not headers:
        return ""
    for key, value in dict(headers).items():
        if key.lower() == name:
            return str(value)
    return ""


def _translate(exc: ApiException | InsightApiException) -> LineError:
    status = int(exc.status or 0)
    request_id = _header(exc.headers, "x-line-request-id")
    message, details = f"HTTP {status}", []
    if exc.body:
        try:
            body = json.loads(exc.body)
            message = str(body.get("message", message))
            details = [
                {"message": str(d.get("message", "")), "property": str(d.get("property", ""))}
                for d in body.get("details") or []
            ]
        except (ValueError, AttributeError):
            message = str(exc.body)[:300]
    kwargs = {"status": status, "details": details, "request_id": request_id}
    if status == 429:
        if MONTHLY_LIMIT_MESSAGE.rstrip(".") in message:
            return LineQuotaExceededError(message, **kwargs)
        return LineRateLimitedError(message, **kwargs)
    if status >= 500 or status == 0:
        return LineTemporaryError(message, **kwargs)
    return LinePermanentError(message, **kwargs)


_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError, TimeoutError)


class _PacedApiClient(ApiClient):
    """The SDK's client with one hook: a thread's ``pace`` (the multicast rate limiter's
    ``acquire``) runs in ``request``, after the SDK built and serialized the request and just
    before it goes on the wire. The limiter counts its grants, LINE counts arrivals: every
    millisecond between the two (the SDK's model copy, serialization, another thread holding
    the GIL) is a millisecond by which two requests granted a second apart may arrive closer
    than that. A retry of the same call paces again: it is one more request."""

    def __init__(self, configuration: Configuration) -> None:
        super().__init__(configuration)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        pace: Callable[[], None] | None = getattr(self._local, "pace", None)
        if pace is not None:
            pace()
        return super().request(*args, **kwargs)

    @contextlib.contextmanager
    def paced(self, pace: Callable[[], None] | None) -> Iterator[None]:
        self._local.pace = pace
        try:
            yield
        finally:
            self._local.pace = None


class LineGateway:
    """Typed access to the Messaging API calls the app makes."""

    def __init__(
        self, *, host: str, token: str, timeout: float = 10.0, max_connections: int = 0
    ) -> None:
        configuration = Configuration(host=host.rstrip("/"), access_token=token)
        # Retries are ours (with the same retry key), not urllib3's.
        configuration.retries = 0
        # Kept-alive connections: at least one per thread that calls LINE at once (sending
        # threads, reply threads); urllib3 would otherwise open and discard the extra ones.
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize, max_connections
        )
        self._client = _PacedApiClient(configuration)
        self._api = MessagingApi(self._client)
        insight_configuration = InsightConfiguration(host=host.rstrip("/"), access_token=token)
        insight_configuration.retries = 0
        self._insight = Insight(InsightApiClient(insight_configuration))
        self.timeout = timeout
        self.host = host
        # Validated multicast requests by their messages (see _multicast_request).
        self._requests: dict[tuple[str, bool], MulticastRequest] = {}
        self._requests_lock = threading.Lock()

    # --- sending ---------------------------------------------------------------------
    def broadcast(
        self, *, messages: list[dict[str, Any]], retry_key: uuid.UUID, notification_disabled: bool
    ) -> SendResult:
        request = self._build(
            BroadcastRequest,
            {"messages": messages, "notificationDisabled": notification_disabled},
        )
        return self._send(self._api.broadcast_with_http_info, request, retry_key)

    def multicast(
        self,
        *,
        to: list[str],
        messages: list[dict[str, Any]],
        retry_key: uuid.UUID,
        notification_disabled: bool,
        aggregation_unit: str = "",
        pace: Callable[[], None] | None = None,
    ) -> SendResult:
        """``aggregation_unit``: the custom aggregation unit (LINE's statistics key for
        multicasts), if any. ``pace``: called (it may wait) just before the request leaves,
        once the SDK has built it (``_PacedApiClient``); a request refused before it would
        leave does not call it."""
        request = self._multicast_request(to, messages, notification_disabled, aggregation_unit)
        with self._client.paced(pace):
            return self._send(self._api.multicast_with_http_info, request, retry_key)

    def _multicast_request(
        self,
        to: list[str],
        messages: list[dict[str, Any]],
        notification_disabled: bool,
        aggregation_unit: str = "",
    ) -> MulticastRequest:
        """The SDK's request for one chunk. A send makes hundreds with the same messages and
        different recipients; the SDK's model validates each of the 500 IDs one by one
        (~0.8 ms a request, as long as the call itself). So the messages, flags and
        aggregation unit are validated by the SDK's model once per send (kept for the next
        chunks), and each chunk gets a copy with its ``to``, checked here against the model's
        own constraints (1–500 strings)."""
        if not 1 <= len(to) <= MULTICAST_MAX_RECIPIENTS or not all(
            type(user_id) is str for user_id in to
        ):
            raise LinePermanentError(
                f"宛先は1〜{MULTICAST_MAX_RECIPIENTS}件の LINE ユーザーIDで指定してください"
            )
        key = (
            json.dumps(messages, sort_keys=True, ensure_ascii=False),
            notification_disabled,
            aggregation_unit,
        )
        with self._requests_lock:
            base = self._requests.get(key)
        if base is None:
            payload: dict[str, Any] = {
                "to": to[:1],
                "messages": messages,
                "notificationDisabled": notification_disabled,
            }
            if aggregation_unit:
                payload["customAggregationUnits"] = [aggregation_unit]
            base = self._build(MulticastRequest, payload)
            with self._requests_lock:
                if len(self._requests) >= 16:
                    self._requests.clear()
                self._requests[key] = base
        return base.copy(update={"to": list(to)})

    def push(self, *, to: str, messages: list[dict[str, Any]], retry_key: uuid.UUID) -> SendResult:
        request = self._build(PushMessageRequest, {"to": to, "messages": messages})
        return self._send(self._api.push_message_with_http_info, request, retry_key)

    def reply(self, *, reply_token: str, messages: list[dict[str, Any]]) -> str:
        request = self._build(
            ReplyMessageRequest, {"replyToken": reply_token, "messages": messages}
        )
        response = self._call(self._api.reply_message_with_http_info, request)
        return _header(response.headers, "x-line-request-id")

    def validate(self, *, audience: str, messages: list[dict[str, Any]]) -> None:
        """LINE's own validate endpoint for the API this audience will use."""
        request = self._build(ValidateMessageRequest, {"messages": messages})
        method = {
            "broadcast": self._api.validate_broadcast_with_http_info,
            "multicast": self._api.validate_multicast_with_http_info,
            "push": self._api.validate_push_with_http_info,
        }[audience]
        self._call(method, request)

    # --- reads -----------------------------------------------------------------------
    def quota(self) -> Quota:
        quota = self._call(self._api.get_message_quota_with_http_info).data
        consumption = self._call(self._api.get_message_quota_consumption_with_http_info).data
        return Quota(
            type=str(quota.type.value if hasattr(quota.type, "value") else quota.type),
            value=quota.value,
            consumption=int(consumption.total_usage or 0),
        )

    def aggregation_unit_usage(self) -> int:
        """Custom aggregation unit names used this month (``GET /v2/bot/message/aggregation/
        info``). LINE refuses it (4xx) for accounts without the corporate application."""
        data = self._call(self._api.get_aggregation_unit_usage_with_http_info).data
        return int(data.num_of_custom_aggregation_units or 0)

    def follower_ids(self, *, start: str | None = None, limit: int = 1000) -> tuple[list[str], str]:
        data = self._call(self._api.get_followers_with_http_info, start=start, limit=limit).data
        return list(data.user_ids or []), str(data.next or "")

    def bot_info(self) -> dict[str, Any]:
        return self._call(self._api.get_bot_info_with_http_info).data.to_dict()

    # --- rich menus ------------------------------------------------------------------
    def create_rich_menu(self, *, definition: dict[str, Any]) -> str:
        """Create a rich menu (size, chatBarText, areas, ...); returns LINE's richMenuId."""
        request = self._build(RichMenuRequest, definition)
        return str(self._call(self._api.create_rich_menu_with_http_info, request).data.rich_menu_id)

    def upload_rich_menu_image(
        self, *, rich_menu_id: str, image: bytes, content_type: str, data_host: str
    ) -> None:
        """Image uploads go to the data API host (api-data.line.me)."""
        self._call(
            self._blob(data_host).set_rich_menu_image_with_http_info,
            rich_menu_id,
            image,
            _headers={"Content-Type": content_type},
        )

    def set_default_rich_menu(self, *, rich_menu_id: str) -> None:
        self._call(self._api.set_default_rich_menu_with_http_info, rich_menu_id)

    def delete_rich_menu(self, *, rich_menu_id: str) -> None:
        self._call(self._api.delete_rich_menu_with_http_info, rich_menu_id)

    def _blob(self, data_host: str) -> MessagingApiBlob:
        blob = getattr(self, "_blob_api", None)
        if blob is None or getattr(self, "_blob_host", None) != data_host:
            configuration = Configuration(
                host=data_host.rstrip("/"), access_token=self._client.configuration.access_token
            )
            configuration.retries = 0
            blob = self._blob_api = MessagingApiBlob(ApiClient(configuration))
            self._blob_host = data_host
        return blob

    # --- statistics (Insight API) ------------------------------------------------------
    def message_event(self, *, request_id: str) -> MessageEventStats:
        """``GET /v2/bot/insight/message/event?requestId=`` (broadcast and narrowcast only)."""
        data = self._call(self._insight.get_message_event_with_http_info, request_id).data
        raw = data.to_dict()
        overview = data.overview
        return MessageEventStats(
            delivered=overview.delivered if overview else None,
            unique_impression=overview.unique_impression if overview else None,
            unique_click=overview.unique_click if overview else None,
            raw=raw,
        )

    def unit_stats(self, *, unit: str, date_from: str, date_to: str) -> UnitStats:
        """``GET /v2/bot/insight/message/event/aggregation`` for one custom aggregation unit
        over JST days ``YYYYMMDD`` (at most 30 days apart)."""
        data = self._call(
            self._insight.get_statistics_per_unit_with_http_info, unit, date_from, date_to
        ).data
        overview = data.overview
        return UnitStats(
            unique_impression=overview.unique_impression if overview else None,
            unique_click=overview.unique_click if overview else None,
            raw=data.to_dict(),
        )

    def follower_stats(self, *, date: str) -> FollowerStats:
        """``GET /v2/bot/insight/followers?date=YYYYMMDD`` (JST)."""
        data = self._call(self._insight.get_number_of_followers_with_http_info, date).data
        return FollowerStats(
            status=str(data.status or ""),
            followers=data.followers,
            targeted_reaches=data.targeted_reaches,
            blocks=data.blocks,
        )

    def delivery_count(self, *, endpoint: str, date: str) -> DeliveryCount:
        """``GET /v2/bot/message/delivery/{broadcast|multicast}?date=YYYYMMDD`` (JST)."""
        method = {
            "broadcast": self._api.get_number_of_sent_broadcast_messages_with_http_info,
            "multicast": self._api.get_number_of_sent_multicast_messages_with_http_info,
        }[endpoint]
        data = self._call(method, date).data
        return DeliveryCount(status=str(data.status or ""), success=data.success)

    # --- plumbing --------------------------------------------------------------------
    @staticmethod
    def _build(model: Any, payload: dict[str, Any]) -> Any:
        try:
            return model.from_dict(payload)
        except (ValidationError, ValueError, TypeError) as exc:
            raise LinePermanentError(f"メッセージの形式が LINE の仕様に合いません: {exc}") from exc

    def _send(self, method: Any, request: Any, retry_key: uuid.UUID) -> SendResult:
        try:
            response = method(
                request, x_line_retry_key=str(retry_key), _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                accepted = _header(exc.headers, "x-line-accepted-request-id")
                if accepted:
                    return SendResult(request_id=accepted, duplicate=True, http_status=409)
            raise _translate(exc) from None
        except _NETWORK_ERRORS as exc:
            raise LineTemporaryError(f"LINE に接続できません: {type(exc).__name__}") from None
        return SendResult(
            request_id=_header(response.headers, "x-line-request-id"),
            duplicate=False,
            http_status=int(response.status_code),
        )

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=self.timeout, **kwargs)
        except (ApiException, InsightApiException) as exc:
            raise _translate(exc) from None
        except _NETWORK_ERRORS as exc:
            raise LineTemporaryError(f"LINE に接続できません: {type(exc).__name__}") from None


_GATEWAYS: dict[tuple[str, str], LineGateway] = {}
_GATEWAYS_LOCK = threading.Lock()


def get_gateway() -> LineGateway:
    """One gateway (and so one connection pool) per process and configuration."""
    key = (settings.LINE_API_BASE_URL, settings.LINE_CHANNEL_ACCESS_TOKEN)
    with _GATEWAYS_LOCK:
        gateway = _GATEWAYS.get(key)
        if gateway is None:
            gateway = LineGateway(
                host=settings.LINE_API_BASE_URL,
                token=settings.LINE_CHANNEL_ACCESS_TOKEN,
                timeout=settings.LINE_REQUEST_TIMEOUT_SECONDS,
                max_connections=max(settings.REPLY_CONCURRENCY, settings.MULTICAST_CONCURRENCY),
            )
            _GATEWAYS[key] = gateway
    return gateway
