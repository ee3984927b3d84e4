"""/healthz: a verdict for everyone, the checks only for 管理者 and for loopback callers."""

from __future__ import annotations

import socket
from unittest import mock

import pytest
from django.core.cache import cache
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts import roles
from kashiwa import health

# Django's test client says it is 127.0.0.1; an outsider comes from elsewhere.
OUTSIDER = {"REMOTE_ADDR": "203.0.113.7"}
LINE_FAULT_TEXT = "sandbox says the bot is on fire"


def assert_verdict_only(response, status: str) -> None:
    assert response.json() == {"status": status}
    text = response.content.decode()
    for leak in ("sqlite", "postgresql", "redis", "filesystem", "ms", "detail", "LINE"):
        assert leak not in text


def test_healthy_with_database_broker_and_line(client, db, line_sandbox):
    response = client.get("/healthz")  # loopback, no proxy header: the details
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {k: v["ok"] for k, v in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "line": True,
    }
    assert any(r.path == "/v2/bot/info" for r in line_sandbox.requests())


def test_an_outsider_gets_the_verdict_only(client, db, line_sandbox):
    response = client.get("/healthz", **OUTSIDER)
    assert response.status_code == 200
    assert_verdict_only(response, "ok")


def test_a_proxied_loopback_request_is_an_outsider(client, db, line_sandbox):
    """A reverse proxy on the same host connects from 127.0.0.1 on the public's behalf."""
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        response = client.get("/healthz", **{header: "198.51.100.4"})
        assert_verdict_only(response, "ok")
    response = client.get("/healthz", REMOTE_ADDR="::1")
    assert "checks" in response.json()
    response = client.get("/healthz", REMOTE_ADDR="::1", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert_verdict_only(response, "ok")


def test_other_staff_get_the_verdict_only(client, line_sandbox, drafter, supervisor):
    for user in (drafter, supervisor):
        client.force_login(user)
        assert_verdict_only(client.get("/healthz", **OUTSIDER), "ok")


def test_an_admin_gets_the_details_from_anywhere(client, line_sandbox, admin_user):
    client.force_login(admin_user)
    response = client.get("/healthz", **OUTSIDER)
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert set(checks) == {"database", "broker", "line"}
    assert checks["database"]["detail"] in {"sqlite", "postgresql"}
    assert all(isinstance(c["ms"], float) for c in checks.values())


def test_an_admin_needs_the_second_factor_for_the_details(
    client, line_sandbox, admin_user, settings
):
    """/healthz is exempt from the second-factor middleware, so the view asks itself."""
    settings.SECOND_FACTOR_REQUIRED_GROUPS = (roles.ADMIN,)
    TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    client.force_login(admin_user)
    assert_verdict_only(client.get("/healthz", **OUTSIDER), "ok")


def test_an_inactive_admin_gets_the_verdict_only(client, line_sandbox, admin_user):
    client.force_login(admin_user)
    admin_user.is_active = False
    admin_user.save(update_fields=["is_active"])
    assert_verdict_only(client.get("/healthz", **OUTSIDER), "ok")


def test_a_broken_line_is_503_without_its_error_text_for_an_outsider(client, db, line_sandbox):
    line_sandbox.set_fault("/v2/bot/info", 500, body={"message": LINE_FAULT_TEXT})
    response = client.get("/healthz", **OUTSIDER)
    assert response.status_code == 503
    assert_verdict_only(response, "fail")
    assert LINE_FAULT_TEXT not in response.content.decode()


def test_a_broken_line_is_described_to_an_admin(client, line_sandbox, admin_user):
    line_sandbox.set_fault("/v2/bot/info", 500, body={"message": LINE_FAULT_TEXT})
    client.force_login(admin_user)
    response = client.get("/healthz", **OUTSIDER)
    assert response.status_code == 503
    line = response.json()["checks"]["line"]
    assert line["ok"] is False
    assert LINE_FAULT_TEXT in line["detail"]
    # The failure is remembered for a minute: the next probe does not ask LINE again.
    asked = len([r for r in line_sandbox.requests() if r.path == "/v2/bot/info"])
    again = client.get("/healthz", **OUTSIDER).json()["checks"]["line"]
    assert again["ok"] is False
    assert again["detail"].endswith("(cached)")
    assert len([r for r in line_sandbox.requests() if r.path == "/v2/bot/info"]) == asked


def test_unreachable_line_is_503_without_login(client, db, settings):
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
    outsider = client.get("/healthz", **OUTSIDER)
    assert outsider.status_code == 503
    assert_verdict_only(outsider, "fail")


def test_the_broker_is_probed_at_most_every_few_seconds(client, db, line_sandbox):
    with mock.patch.object(health, "_broker_probe", wraps=health._broker_probe) as probe:
        for _ in range(5):
            assert client.get("/healthz", **OUTSIDER).status_code == 200
        assert probe.call_count == 1
        cache.delete(health.BROKER_CACHE_KEY)  # what expiry after BROKER_CACHE_SECONDS does
        client.get("/healthz", **OUTSIDER)
        assert probe.call_count == 2
    assert health.BROKER_CACHE_SECONDS <= 10


def test_a_broken_broker_is_remembered_as_broken(client, db, line_sandbox):
    with mock.patch.object(
        health, "_broker_probe", side_effect=ConnectionRefusedError("broker down")
    ) as probe:
        first = client.get("/healthz")
        second = client.get("/healthz")
    assert first.status_code == second.status_code == 503
    assert probe.call_count == 1
    assert second.json()["checks"]["broker"]["detail"] == (
        "ConnectionRefusedError: broker down (cached)"
    )


@pytest.mark.parametrize("address", ["", "unix:/run/gunicorn.sock", "10.0.0.8", "::ffff:10.0.0.8"])
def test_only_loopback_addresses_count_as_local(rf, address):
    request = rf.get("/healthz", REMOTE_ADDR=address)
    assert health._from_loopback(request) is False


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses(rf, address):
    assert health._from_loopback(rf.get("/healthz", REMOTE_ADDR=address)) is True
