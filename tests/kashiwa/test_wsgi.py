"""The WSGI entry point serves LINE's webhook directly and everything else through Django."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings

from broadcasts.models import WebhookEvent
from kashiwa.wsgi import application


def call(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, bytes]:
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "localhost",
            "wsgi.input": io.BytesIO(body),
            **headers,
        }
    )
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"] = status

    chunks = application(environ, start_response)
    data = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return seen["status"], data


def signed(payload: dict) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    digest = hmac.new(settings.LINE_CHANNEL_SECRET.encode(), body, hashlib.sha256).digest()
    return body, base64.b64encode(digest).decode()


EVENT = {
    "type": "unfollow",
    "mode": "active",
    "timestamp": 1,
    "source": {"type": "user", "userId": "U" + "a" * 32},
    "webhookEventId": "01WSGITEST0000000000000000",
    "deliveryContext": {"isRedelivery": False},
}


@pytest.mark.django_db(transaction=True)
def test_signed_events_are_stored_through_the_fast_path():
    body, signature = signed({"destination": "U0", "events": [EVENT]})
    status, data = call("POST", "/line/webhook/", body, HTTP_X_LINE_SIGNATURE=signature)
    assert status.startswith("200") and data == b"OK"
    assert WebhookEvent.objects.filter(webhook_event_id=EVENT["webhookEventId"]).exists()


@pytest.mark.django_db(transaction=True)
def test_forged_or_missing_signature_writes_nothing():
    body, signature = signed({"destination": "U0", "events": [EVENT]})
    assert call("POST", "/line/webhook/", body + b" ", HTTP_X_LINE_SIGNATURE=signature)[0] == (
        "403 Forbidden"
    )
    assert call("POST", "/line/webhook/", body)[0] == "400 Bad Request"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_oversized_body_is_refused():
    environ_len = str(2_000_000)
    status, _ = call("POST", "/line/webhook/", b"{}", CONTENT_LENGTH=environ_len)
    assert status.startswith("413")


@pytest.mark.django_db(transaction=True)
def test_everything_else_is_django_with_its_middleware():
    status, _ = call("GET", "/broadcasts/")
    assert status.startswith("302")  # login required, from Django's middleware
    status, _ = call("GET", "/line/webhook/")
    assert status.startswith("405")  # the Django view only accepts POST
