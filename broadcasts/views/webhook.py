"""The LINE webhook (DESIGN.md §7): check the signature, store the events, answer 200.

Processing happens in Celery after the rows are committed, so the answer never waits for the
reply API. A missing signature is 400 and a wrong one 403, both before anything is written;
a body that is not JSON (but correctly signed) is logged and acknowledged, never a 500.

``receive`` is the whole of it. Django serves it at ``/line/webhook/`` (``line_webhook``), and
``kashiwa.wsgi`` also serves it directly, ahead of the middleware that staff pages need and
LINE's requests do not (sessions, locale, CSRF, login, CSP): LINE waits for this answer, and
at peak the city's account receives hundreds of events a second."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..line.webhook_signature import verify_signature
from ..services import citizens

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/line/webhook/"
MAX_BODY_BYTES = 1_000_000  # LINE sends far less; anything larger is not LINE


def receive(body: bytes, signature: str) -> tuple[int, str]:
    """Answer one webhook request: (HTTP status, text)."""
    if not signature:
        return 400, "missing signature"
    if not verify_signature(body, signature):
        logger.warning("webhook with a bad signature rejected (%d bytes)", len(body))
        return 403, "bad signature"
    try:
        payload = json.loads(body)
    except ValueError:
        logger.warning("signed webhook body is not JSON; acknowledged and ignored")
        return 200, "OK"
    citizens.webhook_events_store(payload=payload)
    return 200, "OK"


@csrf_exempt
@require_POST
def line_webhook(request: HttpRequest) -> HttpResponse:
    status, text = receive(request.body, request.headers.get("x-line-signature", ""))
    return HttpResponse(text, status=status, content_type="text/plain")


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 413: "Content Too Large"}


def wsgi_webhook(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The same webhook as a bare WSGI callable (see the module docstring)."""
    close_old_connections()  # what Django does when a request starts and ends
    try:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            status, text = 413, "body too large"
        else:
            body = environ["wsgi.input"].read(length) if length else b""
            status, text = receive(body, environ.get("HTTP_X_LINE_SIGNATURE", ""))
    except Exception:
        logger.exception("webhook failed")
        status, text = 500, "error"
    finally:
        close_old_connections()
    data = text.encode("utf-8")
    start_response(
        f"{status} {_REASONS.get(status, 'Internal Server Error')}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]
