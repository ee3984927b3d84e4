"""/healthz for a load balancer: database, broker and LINE reachability.

The LINE check is cached for a minute so that frequent probes do not become API calls."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

LINE_CACHE_KEY = "healthz:line"
LINE_CACHE_SECONDS = 60


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a health check reports every failure, whatever its type
        ok, detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1), "detail": detail}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        with open(f"{folder}/.healthz", "w", encoding="ascii") as probe:
            probe.write("ok")
        return "filesystem"
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return url.split("://", 1)[0]


def _line() -> str:
    cached = cache.get(LINE_CACHE_KEY)
    if cached is not None:
        if cached != "ok":
            raise RuntimeError(cached)
        return "ok (cached)"
    from broadcasts.line.errors import LineError
    from broadcasts.line.gateway import get_gateway

    try:
        get_gateway().bot_info()
    except LineError as exc:
        cache.set(LINE_CACHE_KEY, exc.describe()[:200], LINE_CACHE_SECONDS)
        raise RuntimeError(exc.describe()) from None
    cache.set(LINE_CACHE_KEY, "ok", LINE_CACHE_SECONDS)
    return "ok"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "line": _timed(_line)}
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "fail", "checks": checks}, status=200 if healthy else 503
    )
