"""The LINE webhook (DESIGN.md §7): check the signature, store the events, answer 200.

Processing happens in Celery after the rows are committed, so the answer never waits for the
reply API. A missing signature is 400 and a wrong one 403, both before anything is written;
a body that is not JSON (but correctly signed) is logged and acknowledged, never a 500."""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .line.webhook_signature import verify_signature
from .services import citizens

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def line_webhook(request: HttpRequest) -> HttpResponse:
    signature = request.headers.get("x-line-signature", "")
    if not signature:
        return HttpResponse("missing signature", status=400, content_type="text/plain")
    body = request.body
    if not verify_signature(body, signature):
        logger.warning("webhook with a bad signature rejected (%d bytes)", len(body))
        return HttpResponse("bad signature", status=403, content_type="text/plain")
    try:
        payload = json.loads(body)
    except ValueError:
        logger.warning("signed webhook body is not JSON; acknowledged and ignored")
        return HttpResponse("OK", content_type="text/plain")
    citizens.webhook_events_store(payload=payload)
    return HttpResponse("OK", content_type="text/plain")
