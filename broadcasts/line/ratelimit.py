"""A request limiter shared by every worker (and every machine) through Redis, so all of them
together stay under LINE's multicast limit (200 requests a second).

The limit is kept over any sliding window, not per calendar second: two fixed seconds could
each let 200 requests through at their boundary, 400 in one second. With Redis, one Lua script
per request (one round trip) keeps a log of the last window's requests (a sorted set of their
times, on Redis's clock, so machines need not agree on theirs): a request goes if fewer than
``per_second`` went in the last ``window`` seconds, else it learns when the oldest leaves the
window and waits until then. The window is LINE's second plus a margin for requests that
leave together and arrive apart.

Without Redis (the embedded development stack: one machine) the cache counts requests per
calendar second with ``add``/``incr``, as before: good enough for development, not the
sliding-window guarantee.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache

# LINE counts a second; requests reserved 1 s apart may arrive closer than that (0.02 let
# 201–203 through in a sliding second of the 1,000,000-recipient bench).
WINDOW_MARGIN_SECONDS = 0.05

_SLIDING_LOG = """
if redis.replicate_commands then redis.replicate_commands() end  -- TIME, then writes (Redis < 5)
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local member = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_us)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window_us / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window_us - now, 1)
"""

_scripts: dict[int, Any] = {}
_scripts_lock = threading.Lock()


def _sliding_log() -> Any:
    """The script, on one client (a thread-safe connection pool) per process, made after
    fork: a pool made in a prefork parent would share its sockets with every child."""
    pid = os.getpid()
    script = _scripts.get(pid)
    if script is None:
        import redis

        with _scripts_lock:
            script = _scripts.get(pid)
            if script is None:
                script = redis.Redis.from_url(settings.REDIS_URL).register_script(_SLIDING_LOG)
                _scripts.clear()
                _scripts[pid] = script
    return script


def warm_up() -> None:
    """Connect and load the script now (a worker process as it starts), so that the first
    request of the first send does not wait for it."""
    if settings.REDIS_URL:
        _sliding_log().registered_client.ping()


class RateLimiter:
    """Thread-safe: each sending thread calls ``acquire`` just before its request."""

    def __init__(self, name: str, per_second: int) -> None:
        self.name = name
        self.per_second = max(per_second, 1)
        self.window = 1.0 + WINDOW_MARGIN_SECONDS

    def acquire(self) -> None:
        """Block until one more request fits in the window."""
        if settings.REDIS_URL:
            self._acquire_redis()
        else:
            self._acquire_cache()

    def _acquire_redis(self) -> None:
        script = _sliding_log()
        key = f"ratelimit:{self.name}"
        window_us = int(self.window * 1_000_000)
        while True:
            wait_us = int(script(keys=[key], args=[self.per_second, window_us, _member()]))
            if wait_us <= 0:
                return
            time.sleep(wait_us / 1_000_000)

    def _acquire_cache(self) -> None:
        while True:
            now = time.time()
            second = int(now)
            key = f"ratelimit:{self.name}:{second}"
            try:
                count = cache.incr(key)  # one round trip in the common case
            except ValueError:  # first request of this second
                if cache.add(key, 1, timeout=5):
                    count = 1
                else:
                    continue
            if count <= self.per_second:
                return
            time.sleep(max(second + 1 - now, 0.001))


def _member() -> str:
    return uuid.uuid4().hex
