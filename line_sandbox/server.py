"""The LINE sandbox HTTP server: the Messaging API subset the app uses, a control API and a page.

Stdlib only (``ThreadingHTTPServer``). The handler speaks HTTP/1.1 with keep-alive, always sends
``Content-Length`` and sets ``disable_nagle_algorithm``: ``BaseHTTPRequestHandler`` writes the
headers and the body in two ``send`` calls, and with Nagle on the second waits for the client's
delayed ACK, which costs ~40 ms per response (DESIGN §9).

Layout of the URL space:

- ``/v2/bot/...`` — LINE's API (``Authorization: Bearer <token>``). ``api-data.line.me`` paths
  (rich menu image) are served on the same host.
- ``/sandbox/api/...`` — the control API for tests and developers (no LINE auth; answered only
  to loopback clients).
- ``/`` and ``/follower/<id>`` — HTML pages showing what each test follower received.
"""

from __future__ import annotations

import hmac
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from .api import (
    API_ROUTES,
    AUTH_FAILED,
    CONTROL_ROUTES,
    MAX_JSON_BODY,
    Disconnect,
    LineApi,
    Request,
    Response,
    Route,
    error_response,
    is_loopback,
)
from .records import (
    Delivery,
    Fault,
    Follower,
    InboxItem,
    RequestLogEntry,
    WebhookResult,
    new_request_id,
)
from .state import SandboxState
from .validation import LineError, spec_document
from .webhook import Tappable, send_webhook, tap_postback, tappable_postbacks

DEFAULT_TOKEN = "sandbox-channel-access-token"  # noqa: S105 - the sandbox's public token
DEFAULT_SECRET = "sandbox-channel-secret"  # noqa: S105


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    #: idle keep-alive connections are dropped after this many seconds
    timeout = 120
    server_version = "LineSandbox/1.0"
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            sys.stderr.write(f"[line-sandbox] {format % args}\n")

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        started = time.perf_counter()
        split = urlsplit(self.path)
        path = unquote(split.path) or "/"
        if not path.startswith("/v2/"):
            self._handle_request(started, split, path)
            return
        # An API request belongs to the state it started in: a reset waits for it (see
        # SandboxState.reset), even if its client has given up on the answer.
        state = self.server.sandbox.state
        state.request_started()
        try:
            self._handle_request(started, split, path)
        finally:
            state.request_finished()

    def _handle_request(self, started: float, split: SplitResult, path: str) -> None:
        req = Request(
            method=self.command,
            path=path,
            query={k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            request_id=new_request_id(),
            client_host=self.client_address[0],
        )
        note = ""
        try:
            response = self._dispatch(req)
        except Disconnect:
            self.close_connection = True
            note = "disconnected (fault)"
            self._log(req, 0, started, note)
            return
        except LineError as error:
            response = error_response(error)
        except Exception:
            traceback.print_exc()
            response = Response(500, {"message": "Internal server error"})
        if response.status >= 400 and isinstance(response.body, dict):
            note = str(response.body.get("message", ""))
        # Logged before the answer is written: a client that has its answer can rely on
        # the request being in the log (tests read it right after the call returns).
        self._log(req, response.status, started, note)
        self._write(req, response)

    def _log(self, req: Request, status: int, started: float, note: str) -> None:
        if not req.path.startswith("/v2/"):
            return
        self.server.sandbox.state.log_request(
            RequestLogEntry(
                time=self.server.sandbox.state.clock(),
                method=req.method,
                path=req.path,
                status=status,
                request_id=req.request_id,
                retry_key=req.header("x-line-retry-key"),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                note=note,
            )
        )

    def _dispatch(self, req: Request) -> Response:
        sandbox = self.server.sandbox
        if req.path.startswith("/v2/"):
            handler = self._match(API_ROUTES, req)
            if not self._authorized(req):
                raise LineError(401, AUTH_FAILED)
            if len(req.body) > MAX_JSON_BODY:
                raise LineError(413, "Request Entity Too Large")
            fault = sandbox.state.take_fault(req.method, req.path)
            if fault is not None:
                if fault.latency_ms:
                    time.sleep(fault.latency_ms / 1000)
                if fault.mode == "fail":
                    return Response(fault.status, fault.response_body())
                if fault.mode == "disconnect":
                    raise Disconnect
                if fault.mode != "latency":
                    req.fault = fault
            if handler is None:
                raise LineError(404, "Not found")
            response = handler(req)
            if req.fault is not None and response.status < 300:
                if req.fault.mode == "accept_then_disconnect":
                    raise Disconnect
                return Response(req.fault.status, req.fault.response_body())
            return response
        if not is_loopback(req.client_host):
            return Response(403, {"message": "the sandbox control API is for localhost only"})
        handler = self._match(CONTROL_ROUTES, req)
        if handler is None:
            return Response(404, {"message": "Not found"})
        return handler(req)

    def _match(self, routes: list[Route], req: Request) -> Callable[[Request], Response] | None:
        for method, pattern, name in routes:
            match = pattern.match(req.path)
            if match and method == req.method:
                req.params = match.groupdict()
                return getattr(self.server.sandbox.api, name)
        return None

    def _authorized(self, req: Request) -> bool:
        header = req.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.server.sandbox.token.encode()
        )

    def _write(self, req: Request, response: Response) -> None:
        payload = response.encoded()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-line-request-id", req.request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    #: don't wait for idle keep-alive connections when stopping
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: LineSandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxHandler)


class LineSandbox:
    """A running LINE sandbox: ``LineSandbox(port=0).start()`` → ``.url``, ``.state``.

    The convenience methods delegate to ``state`` (a ``SandboxState``) for in-process tests.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = DEFAULT_TOKEN,
        channel_secret: str = DEFAULT_SECRET,
        webhook_url: str | None = None,
        state: SandboxState | None = None,
        state_file: Path | str | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.verbose = verbose
        self.state = state or SandboxState(
            channel_secret=channel_secret, webhook_url=webhook_url, journal_path=state_file
        )
        self.api = LineApi(self.state)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LineSandbox:
        if self._server is not None:
            return self
        spec_document()  # parsed once now, not by the first requests (and their client's timeout)
        self._server = SandboxHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"line-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LineSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def channel_secret(self) -> str:
        return self.state.channel_secret

    # --- shortcuts for tests ------------------------------------------------------------------

    def reset(
        self, *, followers: int = 0, staff: int = 0, followed_at: datetime | None = None
    ) -> None:
        self.state.reset(followers=followers, staff=staff, followed_at=followed_at)

    def add_followers(self, **kwargs: Any) -> list[Follower]:
        return self.state.add_followers(**kwargs)

    def followers(self, **kwargs: Any) -> list[Follower]:
        return self.state.followers(**kwargs)

    def follower_ids(self) -> list[str]:
        return self.state.active_follower_ids()

    def staff_ids(self) -> list[str]:
        return self.state.staff_ids()

    def deliveries(self, **filters: Any) -> list[Delivery]:
        return self.state.deliveries(**filters)

    def inbox(self, user_id: str) -> list[InboxItem]:
        return self.state.inbox(user_id)

    def set_fault(self, path: str, status: int | None = None, **kwargs: Any) -> Fault:
        return self.state.set_fault(path, status, **kwargs)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def set_quota(self, type: str = "none", value: int | None = None, consumption: int = 0) -> None:
        self.state.set_quota(type, value, consumption)

    def requests(self, limit: int | None = None) -> list[RequestLogEntry]:
        return self.state.requests(limit)

    def send_webhook(
        self, events: list[dict[str, Any]], *, url: str | None = None
    ) -> WebhookResult:
        return send_webhook(self.state, events, url=url)

    def tap(self, user_id: str, data: str, *, url: str | None = None) -> WebhookResult:
        """The follower taps a postback button they can see (``webhook.tap_postback``)."""
        return tap_postback(self.state, user_id, data, url=url)

    def tappable(self, user_id: str) -> list[Tappable]:
        return tappable_postbacks(self.state, user_id)
