from __future__ import annotations

import socket

from django.core.cache import cache


def test_healthy_with_database_broker_and_line(client, db, line_sandbox):
    cache.clear()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {k: v["ok"] for k, v in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "line": True,
    }
    assert any(r.path == "/v2/bot/info" for r in line_sandbox.requests())


def test_unreachable_line_is_503_without_login(client, db, settings):
    cache.clear()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.LINE_API_BASE_URL = f"http://127.0.0.1:{port}"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["line"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    # The token never appears in what the probe prints.
    assert settings.LINE_CHANNEL_ACCESS_TOKEN not in response.content.decode()
