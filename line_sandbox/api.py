"""The sandbox's request handlers: LINE's Messaging API subset and the control API.

Each handler takes a parsed ``Request`` and returns a ``Response`` or raises ``LineError``;
``server.py`` does the HTTP. Paths, bodies and errors follow ``spec/messaging-api.yml`` and
``spec/insight.yml``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import insight, page
from .records import RETRY_KEY_ENDPOINTS, Fault
from .state import SandboxState
from .validation import LineError, is_uuid, request_schema, validate_body
from .webhook import send_webhook, tap_postback

MAX_JSON_BODY = 2 * 1024 * 1024  # LINE rejects request bodies over 2 MB
MAX_RICH_MENU_IMAGE = 1024 * 1024
AUTH_FAILED = (
    "Authentication failed. Confirm that the access token in the authorization header is valid."
)


class Disconnect(Exception):
    """Close the connection without answering (simulated network failure)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    request_id: str
    client_host: str
    params: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise LineError(415, f"The content type, '{content_type or '-'}', is not supported")
        try:
            return json.loads(self.body.decode("utf-8") if self.body else "")
        except UnicodeDecodeError as exc:
            raise LineError(400, "The request body could not be parsed as JSON") from exc
        except json.JSONDecodeError as exc:
            raise LineError(
                400,
                "The request body could not be parsed as JSON "
                f"(line: {exc.lineno}, column: {exc.colno})",
            ) from exc


@dataclass
class Response:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-able, or bytes/str with content_type
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(error: LineError) -> Response:
    return Response(error.status, error.body(), headers=dict(error.headers))


Route = tuple[str, re.Pattern[str], str]


def _route(method: str, pattern: str, handler: str) -> Route:
    return method, re.compile(f"^{pattern}$"), handler


_SEND = "(?P<endpoint>broadcast|multicast|push|narrowcast|reply)"
API_ROUTES: list[Route] = [
    _route("POST", f"/v2/bot/message/{_SEND}", "send"),
    _route("POST", f"/v2/bot/message/validate/{_SEND}", "validate_messages"),
    _route("GET", "/v2/bot/message/progress/narrowcast", "narrowcast_progress"),
    _route("GET", "/v2/bot/message/quota", "quota"),
    _route("GET", "/v2/bot/message/quota/consumption", "quota_consumption"),
    _route(
        "GET", "/v2/bot/message/delivery/(?P<endpoint>broadcast|multicast|push|reply)", "counts"
    ),
    _route("GET", "/v2/bot/followers/ids", "follower_ids"),
    _route("GET", "/v2/bot/profile/(?P<user_id>[^/]+)", "profile"),
    _route("GET", "/v2/bot/info", "bot_info"),
    _route("POST", "/v2/bot/richmenu", "create_rich_menu"),
    _route("POST", "/v2/bot/richmenu/validate", "validate_rich_menu"),
    _route("GET", "/v2/bot/richmenu/list", "list_rich_menus"),
    _route("GET", "/v2/bot/richmenu/(?P<id>[^/]+)", "get_rich_menu"),
    _route("DELETE", "/v2/bot/richmenu/(?P<id>[^/]+)", "delete_rich_menu"),
    _route("POST", "/v2/bot/richmenu/(?P<id>[^/]+)/content", "upload_rich_menu_image"),
    _route("GET", "/v2/bot/richmenu/(?P<id>[^/]+)/content", "download_rich_menu_image"),
    _route("POST", "/v2/bot/user/all/richmenu/(?P<id>[^/]+)", "set_default_rich_menu"),
    _route("GET", "/v2/bot/user/all/richmenu", "get_default_rich_menu"),
    _route("DELETE", "/v2/bot/user/all/richmenu", "cancel_default_rich_menu"),
    _route("GET", "/v2/bot/insight/message/event", "message_event"),
    _route("GET", "/v2/bot/insight/followers", "follower_statistics"),
    _route("GET", "/v2/bot/insight/message/event/aggregation", "unit_statistics"),
    _route("GET", "/v2/bot/message/aggregation/info", "aggregation_unit_usage"),
    _route("GET", "/v2/bot/message/aggregation/list", "aggregation_unit_names"),
]
CONTROL_ROUTES: list[Route] = [
    _route("GET", "/sandbox/api/deliveries", "c_deliveries"),
    _route("GET", "/sandbox/api/inbox/(?P<user_id>[^/]+)", "c_inbox"),
    _route("GET", "/sandbox/api/followers", "c_followers"),
    _route("POST", "/sandbox/api/followers", "c_add_followers"),
    _route("POST", "/sandbox/api/reset", "c_reset"),
    _route("GET", "/sandbox/api/faults", "c_faults"),
    _route("POST", "/sandbox/api/faults", "c_set_fault"),
    _route("DELETE", "/sandbox/api/faults", "c_clear_faults"),
    _route("GET", "/sandbox/api/quota", "c_quota"),
    _route("POST", "/sandbox/api/quota", "c_set_quota"),
    _route("POST", "/sandbox/api/config", "c_config"),
    _route("POST", "/sandbox/api/webhook", "c_webhook"),
    _route("POST", "/sandbox/api/tap", "c_tap"),
    _route("GET", "/sandbox/api/requests", "c_requests"),
    _route("GET", "/", "p_index"),
    _route("GET", "/follower/(?P<user_id>[^/]+)", "p_follower"),
    _route("POST", "/follower/(?P<user_id>[^/]+)/tap", "p_tap"),
]


_TEXT = "text/plain; charset=utf-8"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LineApi:
    """Request handlers (pure functions of the state and a ``Request``)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    # --- sending ------------------------------------------------------------------------------

    def send(self, req: Request) -> Response:
        endpoint = req.params["endpoint"]
        retry_key = req.header("x-line-retry-key")
        if retry_key is not None:
            if endpoint not in RETRY_KEY_ENDPOINTS:
                raise LineError(400, "The X-Line-Retry-Key header can't be used with this API")
            if not is_uuid(retry_key):
                raise LineError(400, "The value for the 'X-Line-Retry-Key' header is invalid")
        schema = request_schema(f"/v2/bot/message/{endpoint}")
        assert schema is not None  # noqa: S101 - every send path declares its body
        body = validate_body(schema, req.json(), endpoint=endpoint)
        ok_status = 202 if endpoint == "narrowcast" else 200
        fails_after = req.fault is not None and req.fault.mode == "accept_then_fail"
        delivery = self.state.send(
            endpoint,
            body,
            request_id=req.request_id,
            retry_key=retry_key,
            respond_status=req.fault.status if fails_after and req.fault else ok_status,
        )
        if endpoint in ("push", "reply"):
            return Response(ok_status, {"sentMessages": list(delivery.sent_messages)})
        return Response(ok_status, {})

    def validate_messages(self, req: Request) -> Response:
        validate_body("ValidateMessageRequest", req.json())
        return Response(200, {})

    def narrowcast_progress(self, req: Request) -> Response:
        request_id = req.query.get("requestId", "")
        delivery = self.state.delivery(request_id)
        if delivery is None or delivery.kind != "narrowcast":
            raise LineError(404, "Not found")
        accepted = delivery.accepted_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        count = len(delivery.recipients)
        return Response(
            200,
            {
                "phase": "succeeded",
                "successCount": count,
                "failureCount": 0,
                "targetCount": count,
                "acceptedTime": accepted,
                "completedTime": accepted,
            },
        )

    # --- quota, counts, users -----------------------------------------------------------------

    def quota(self, req: Request) -> Response:
        quota = self.state.quota()
        body: dict[str, Any] = {"type": quota.type}
        if quota.type == "limited":
            body["value"] = quota.value
        return Response(200, body)

    def quota_consumption(self, req: Request) -> Response:
        return Response(200, {"totalUsage": self.state.quota_consumption()})

    def counts(self, req: Request) -> Response:
        date = req.query.get("date", "")
        if not re.fullmatch(r"\d{8}", date):
            raise LineError(400, "The value for the 'date' parameter is invalid")
        return Response(200, insight.delivery_count(self.state, req.params["endpoint"], date))

    def follower_ids(self, req: Request) -> Response:
        """LINE pages with an opaque ``next`` token; ``limit`` defaults to 300, max 1000."""
        try:
            limit = int(req.query.get("limit", "300"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 1000:
            raise LineError(400, "The value for the 'limit' parameter is invalid")
        start = 0
        if "start" in req.query:
            try:
                start = int(base64.urlsafe_b64decode(req.query["start"].encode() + b"==="))
            except ValueError as exc:
                raise LineError(400, "The value for the 'start' parameter is invalid") from exc
        ids = self.state.active_follower_ids()
        body: dict[str, Any] = {"userIds": ids[start : start + limit]}
        if start + limit < len(ids):
            body["next"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return Response(200, body)

    def profile(self, req: Request) -> Response:
        follower = self.state.follower(req.params["user_id"])
        if follower is None or follower.blocked:
            raise LineError(404, "Not found")
        return Response(
            200,
            {
                "displayName": follower.display_name,
                "userId": follower.user_id,
                "language": follower.language,
            },
        )

    def bot_info(self, req: Request) -> Response:
        return Response(
            200,
            {
                "userId": self.state.bot_user_id,
                "basicId": self.state.bot_basic_id,
                "displayName": self.state.bot_display_name,
                "chatMode": "bot",
                "markAsReadMode": "auto",
            },
        )

    # --- rich menus ---------------------------------------------------------------------------

    def create_rich_menu(self, req: Request) -> Response:
        body = validate_body("RichMenuRequest", req.json(), endpoint="richmenu")
        return Response(200, {"richMenuId": self.state.create_rich_menu(body)})

    def validate_rich_menu(self, req: Request) -> Response:
        validate_body("RichMenuRequest", req.json(), endpoint="richmenu")
        return Response(200, {})

    def list_rich_menus(self, req: Request) -> Response:
        return Response(200, {"richmenus": self.state.rich_menus()})

    def get_rich_menu(self, req: Request) -> Response:
        menu = self.state.rich_menu(req.params["id"])
        if menu is None:
            raise LineError(404, "Not found")
        return Response(200, menu)

    def delete_rich_menu(self, req: Request) -> Response:
        if not self.state.delete_rich_menu(req.params["id"]):
            raise LineError(404, "Not found")
        return Response(200, {})

    def upload_rich_menu_image(self, req: Request) -> Response:
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if content_type not in ("image/png", "image/jpeg"):
            raise LineError(415, f"The content type, '{content_type or '-'}', is not supported")
        if len(req.body) > MAX_RICH_MENU_IMAGE:
            raise LineError(413, "Request Entity Too Large")
        if not req.body:
            raise LineError(400, "The request body is empty")
        self.state.set_rich_menu_image(req.params["id"], content_type, req.body)
        return Response(200, {})

    def download_rich_menu_image(self, req: Request) -> Response:
        image = self.state.rich_menu_image(req.params["id"])
        if image is None:
            raise LineError(404, "Not found")
        return Response(200, image[1], content_type=image[0])

    def set_default_rich_menu(self, req: Request) -> Response:
        self.state.set_default_rich_menu(req.params["id"])
        return Response(200, {})

    def get_default_rich_menu(self, req: Request) -> Response:
        rich_menu_id = self.state.default_rich_menu()
        if rich_menu_id is None:
            raise LineError(404, "no default richmenu")
        return Response(200, {"richMenuId": rich_menu_id})

    def cancel_default_rich_menu(self, req: Request) -> Response:
        self.state.clear_default_rich_menu()
        return Response(200, {})

    # --- insight ------------------------------------------------------------------------------

    def message_event(self, req: Request) -> Response:
        request_id = req.query.get("requestId", "")
        if not request_id:
            raise LineError(400, "The value for the 'requestId' parameter is invalid")
        return Response(200, insight.message_event(self.state, request_id))

    def unit_statistics(self, req: Request) -> Response:
        """``GetStatisticsPerUnitResponse`` for one custom aggregation unit."""
        unit = req.query.get("customAggregationUnit", "")
        if not re.fullmatch(r"[a-zA-Z0-9_]{1,30}", unit):
            raise LineError(400, "The value for the 'customAggregationUnit' parameter is invalid")
        days = []
        for name in ("from", "to"):
            value = req.query.get(name, "")
            if not re.fullmatch(r"\d{8}", value):
                raise LineError(400, f"The value for the '{name}' parameter is invalid")
            days.append(value)
        try:
            return Response(200, insight.unit_statistics(self.state, unit, days[0], days[1]))
        except ValueError as exc:
            raise LineError(400, str(exc)) from exc

    def aggregation_unit_usage(self, req: Request) -> Response:
        return Response(
            200, {"numOfCustomAggregationUnits": len(self.state.aggregation_units_used())}
        )

    def aggregation_unit_names(self, req: Request) -> Response:
        names = self.state.aggregation_units_used()
        limit = int(req.query.get("limit", "100") or 100)
        start = int(req.query.get("start", "0") or 0)
        body: dict[str, Any] = {"customAggregationUnits": names[start : start + limit]}
        if start + limit < len(names):
            body["next"] = str(start + limit)
        return Response(200, body)

    def follower_statistics(self, req: Request) -> Response:
        date = req.query.get("date")
        if date is not None and not re.fullmatch(r"\d{8}", date):
            raise LineError(400, "The value for the 'date' parameter is invalid")
        return Response(200, insight.follower_statistics(self.state, date))

    # --- control API --------------------------------------------------------------------------

    def _control_json(self, req: Request) -> dict[str, Any]:
        if not req.body:
            return {}
        try:
            data = json.loads(req.body)
        except json.JSONDecodeError as exc:
            raise LineError(400, f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise LineError(400, "expected a JSON object")
        return data

    def c_deliveries(self, req: Request) -> Response:
        deliveries = self.state.deliveries(
            user_id=req.query.get("user_id") or req.query.get("follower"),
            request_id=req.query.get("request_id"),
            retry_key=req.query.get("retry_key"),
            endpoint=req.query.get("endpoint"),
        )
        return Response(200, {"deliveries": [d.to_dict() for d in deliveries]})

    def c_inbox(self, req: Request) -> Response:
        items = self.state.inbox(req.params["user_id"])
        return Response(200, {"inbox": [i.to_dict() for i in items]})

    def c_followers(self, req: Request) -> Response:
        staff = req.query.get("staff")
        followers = self.state.followers(
            staff=None if staff is None else staff.lower() in ("1", "true", "yes")
        )
        return Response(200, {"followers": [f.to_dict() for f in followers]})

    def c_add_followers(self, req: Request) -> Response:
        data = self._control_json(req)
        added = self.state.add_followers(
            count=int(data.get("count", 0)),
            user_ids=list(data.get("user_ids", [])),
            staff=bool(data.get("staff", False)),
            staff_count=int(data.get("staff_count", 0)),
            blocked=bool(data.get("blocked", False)),
        )
        return Response(200, {"followers": [f.to_dict() for f in added]})

    def c_reset(self, req: Request) -> Response:
        data = self._control_json(req)
        self.state.reset(followers=int(data.get("followers", 0)), staff=int(data.get("staff", 0)))
        return Response(200, {})

    def c_faults(self, req: Request) -> Response:
        return Response(200, {"faults": [f.to_dict() for f in self.state.faults()]})

    def c_set_fault(self, req: Request) -> Response:
        data = self._control_json(req)
        if "path" not in data:
            raise LineError(400, "path is required")
        try:
            fault = self.state.set_fault(
                str(data["path"]),
                data.get("status"),
                count=data.get("count", 1),
                mode=str(data.get("mode", "fail")),
                body=data.get("body"),
                latency_ms=int(data.get("latency_ms", 0)),
                method=data.get("method"),
                kind=data.get("kind"),
            )
        except ValueError as exc:
            raise LineError(400, str(exc)) from exc
        return Response(200, fault.to_dict())

    def c_clear_faults(self, req: Request) -> Response:
        self.state.clear_faults()
        return Response(200, {})

    def c_quota(self, req: Request) -> Response:
        quota = self.state.quota()
        return Response(
            200,
            {
                "type": quota.type,
                "value": quota.value,
                "consumption": quota.consumption,
                "totalUsage": self.state.quota_consumption(),
            },
        )

    def c_set_quota(self, req: Request) -> Response:
        data = self._control_json(req)
        try:
            self.state.set_quota(
                str(data.get("type", "none")), data.get("value"), int(data.get("consumption", 0))
            )
        except ValueError as exc:
            raise LineError(400, str(exc)) from exc
        return self.c_quota(req)

    def c_config(self, req: Request) -> Response:
        data = self._control_json(req)
        self.state.configure(
            webhook_url=data.get("webhook_url"),
            broadcast_rate_limit=data.get("broadcast_rate_limit"),
            insight_delay_days=data.get("insight_delay_days"),
            insight_privacy_threshold=data.get("insight_privacy_threshold"),
            aggregation_units_allowed=data.get("aggregation_units_allowed"),
        )
        return Response(200, {"webhook_url": self.state.webhook_url})

    def c_webhook(self, req: Request) -> Response:
        data = self._control_json(req)
        events = data.get("events")
        if not isinstance(events, list):
            raise LineError(400, "events must be a list")
        try:
            result = send_webhook(self.state, events, url=data.get("url"))
        except (ValueError, OSError) as exc:
            raise LineError(502, f"webhook delivery failed: {exc}") from exc
        return Response(
            200, {"status": result.status, "body": result.body, "payload": result.payload}
        )

    def c_tap(self, req: Request) -> Response:
        """A follower taps a postback button they can see (``{"user_id", "data"}``)."""
        data = self._control_json(req)
        try:
            result = tap_postback(
                self.state, str(data.get("user_id", "")), str(data.get("data", ""))
            )
        except ValueError as exc:
            raise LineError(400, str(exc)) from exc
        except OSError as exc:
            raise LineError(502, f"webhook delivery failed: {exc}") from exc
        return Response(
            200, {"status": result.status, "body": result.body, "payload": result.payload}
        )

    def p_tap(self, req: Request) -> Response:
        """The follower page's tap buttons (a form post), then back to the page."""
        user_id = req.params["user_id"]
        origin = req.header("origin")
        if origin and urlsplit(origin).netloc != (req.header("host") or ""):
            return Response(403, "別のサイトからの操作は受け付けません", content_type=_TEXT)
        form = parse_qs(req.body.decode("utf-8", "replace"))
        data = (form.get("data") or [""])[0]
        try:
            result = tap_postback(self.state, user_id, data)
            notice = f"「{data}」の postback を送りました（Webhook の応答 {result.status}）"
        except (ValueError, OSError) as exc:
            notice = f"送れませんでした: {exc}"
        html = page.render_follower(self.state, user_id, notice=notice)
        if html is None:
            return Response(404, "not found", content_type=_TEXT)
        return Response(200, html, content_type="text/html; charset=utf-8")

    def c_requests(self, req: Request) -> Response:
        limit = int(req.query.get("limit", "200"))
        return Response(200, {"requests": [r.to_dict() for r in self.state.requests(limit)]})

    def p_index(self, req: Request) -> Response:
        html = page.render_index(self.state)
        return Response(200, html, content_type="text/html; charset=utf-8")

    def p_follower(self, req: Request) -> Response:
        html = page.render_follower(self.state, req.params["user_id"])
        if html is None:
            return Response(404, "not found", content_type="text/plain; charset=utf-8")
        return Response(200, html, content_type="text/html; charset=utf-8")
