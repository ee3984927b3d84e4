"""/healthz for a load balancer: database, broker and LINE reachability.

Everyone gets the verdict only: ``{"status": "ok"}`` with 200 or ``{"status": "fail"}`` with
503, which is all a load balancer needs. The checks themselves (database and broker kind,
timings, LINE's error text) tell an outsider what runs behind the site, so they are shown
only to

* a signed-in 管理者 (``can_administer``; with the second factor verified where it is
  required: /healthz is exempt from the second-factor middleware, so the check is made here);
* a request from loopback (``REMOTE_ADDR`` 127.0.0.1 or ::1) that carries no forwarding
  header (``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``): an operator's ``curl`` on the
  machine itself.

A reverse proxy on the same host also appears as loopback. It must therefore add
``X-Forwarded-For`` to what it passes on (nginx: ``proxy_set_header X-Forwarded-For
$proxy_add_x_forwarded_for;``); otherwise every public caller would get the details.

Probes are frequent, so the slow checks are cached: LINE for a minute (so that probes do not
become API calls) and the broker for a few seconds (so that each probe does not open a
broker connection). The database is checked on every request."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

LINE_CACHE_KEY = "healthz:line"
LINE_CACHE_SECONDS = 60
BROKER_CACHE_KEY = "healthz:broker"
BROKER_CACHE_SECONDS = 5
# Headers a reverse proxy adds: a loopback request carrying one came from elsewhere.
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


class CheckFailed(Exception):
    """A check's failure, already described (LINE's message, or a remembered failure)."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, CheckFailed):
        return text
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _timed(check: Callable[[], str]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a health check reports every failure, whatever its type
        ok, detail = False, _describe(exc)
    return {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1), "detail": detail}


def _cached(key: str, seconds: int, probe: Callable[[], str]) -> str:
    """Run ``probe`` at most once per ``seconds`` (across processes when the cache is Redis);
    in between, repeat its outcome, failure included."""
    cached = cache.get(key)
    if cached is not None:
        ok, detail = cached
        if not ok:
            raise CheckFailed(f"{detail} (cached)")
        return f"{detail} (cached)"
    try:
        detail = probe()
    except Exception as exc:  # remembered whatever its type, then reported by _timed
        cache.set(key, (False, _describe(exc)[:200]), seconds)
        raise
    cache.set(key, (True, detail), seconds)
    return detail


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _broker_probe() -> str:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        if url.startswith("sqlite:"):
            # The embedded broker (kashiwa/broker.py) "connects" without opening its file.
            conn.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    return url.split("://", 1)[0]


def _broker() -> str:
    return _cached(BROKER_CACHE_KEY, BROKER_CACHE_SECONDS, _broker_probe)


def _line_probe() -> str:
    from broadcasts.line.errors import LineError
    from broadcasts.line.gateway import get_gateway

    try:
        get_gateway().bot_info()
    except LineError as exc:
        raise CheckFailed(exc.describe()) from None
    return "ok"


def _account() -> dict[str, Any]:
    """Policy 3: the channel is 「柏市役所」 @kashiwa_shi. A warning for admins, not a failed
    probe: the load balancer has nothing to do about a wrong token."""
    from broadcasts.line.identity import account_identity

    identity = account_identity()
    return {**identity.as_json(), "warning": identity.problem}


def _line() -> str:
    return _cached(LINE_CACHE_KEY, LINE_CACHE_SECONDS, _line_probe)


def _from_loopback(request: HttpRequest) -> bool:
    """A request made on this machine, not passed on by a proxy (see the module docstring)."""
    if any(request.META.get(header) for header in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:  # a unix socket, or nothing
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _may_see_details(request: HttpRequest) -> bool:
    if _from_loopback(request):
        return True
    user = request.user
    if not user.is_authenticated:
        return False
    from broadcasts.permissions import can_administer
    from broadcasts.services.accounts import second_factor_required

    if not can_administer(user):
        return False
    return user.is_verified() or not second_factor_required(user)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "line": _timed(_line)}
    healthy = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "fail"}
    if _may_see_details(request):
        body["checks"] = checks
        body["account"] = _account()
    return JsonResponse(body, status=200 if healthy else 503)
