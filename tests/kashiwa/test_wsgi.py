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


FIRST_ENQUEUE = """
import json, sys
import kashiwa.wsgi  # as gunicorn loads it (--preload: in the master, before fork)
loaded_by_the_app = set(sys.modules)
from kashiwa.celery import app
from broadcasts.services import enqueue
enqueue.importlib.import_module(enqueue.TASKS_PACKAGE)  # what task_send does first
task = app.tasks[enqueue.SEND_EMERGENCY_BROADCAST]
with app.producer_or_acquire() as producer:  # the first publish's connection, no message
    producer.connection.ensure_connection(max_retries=1)
print(json.dumps(sorted(set(sys.modules) - loaded_by_the_app)))
"""


def test_a_web_process_first_enqueue_imports_nothing_more(tmp_path):
    """A fresh web process's first emergency published in 170-210 ms, nearly all of it
    importing the task modules and the broker's transport (kombu, redis-py); the second in
    0.6 ms. kashiwa/wsgi.py now loads them with the app. Checked in a fresh interpreter on
    this run's broker (SQLite file or Redis): after loading the app, taking the task and a
    producer connected to the broker imports no module of kombu, redis-py or ours (Celery
    still imports a few small ones of its own then: with the connection, ~17 ms in all)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kashiwa.settings.test",
        "KASHIWA_BROKER_DIR": str(tmp_path / "broker"),
    }
    done = subprocess.run(
        [sys.executable, "-c", FIRST_ENQUEUE],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    ours = [m for m in imported if m.split(".")[0] in ("kombu", "redis", "broadcasts")]
    assert ours == []
