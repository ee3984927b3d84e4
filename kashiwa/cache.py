"""The cache of the embedded default (no REDIS_URL): SQLite files that every process of the
stack shares (web, workers, beat), through diskcache's Django backend.

A per-process cache (Django's local-memory cache, used here before) kept the web process from
ever seeing the dispatcher's heartbeat, so 運用状況 always reported the dispatcher as stopped;
the rate limiter counted per worker and the webhook's wake-up flag per process. diskcache
keeps each shard in a SQLite file in WAL mode; ``add`` and ``incr`` are one write transaction
each, so they hold across processes as they do on Redis (tests/kashiwa/test_cache.py)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from diskcache import DjangoCache


class SharedCache(DjangoCache):
    def delete(self, key: Any, version: int | None = None, retry: bool = True) -> bool:
        """Delete ``key``, expired or not, as Django's backends do.

        diskcache skips an item it considers expired and leaves it in the file; were the
        clock to go back (an NTP step, a test travelling in time) the item would come back.
        Expired items are removed instead."""
        if super().delete(key, version=version, retry=retry):
            return True
        self._cache.expire(retry=retry)
        return False


logger = logging.getLogger(__name__)


# --- remembered readings, where a cache outage only costs a fresh reading --------------------
def cache_get_or_none(key: str) -> Any:
    """Django's cache ``get``; None (and a warning) when the cache cannot be reached."""
    from django.core.cache import cache

    try:
        return cache.get(key)
    except Exception:
        logger.warning("cache unavailable for %s", key, exc_info=True)
        return None


def cache_set_or_skip(key: str, value: Any, seconds: int) -> None:
    """Django's cache ``set``; skipped (with a warning) when the cache cannot be reached."""
    from django.core.cache import cache

    try:
        cache.set(key, value, seconds)
    except Exception:
        logger.warning("cache unavailable for %s", key, exc_info=True)


# --- flags every process shares -------------------------------------------------------------
# The webhook's wake flag and its processor's lease are touched on every request and every
# batch. With Redis they go through one client per process (a thread-safe connection pool,
# made after fork: a pool made in a prefork parent would share its sockets with every child),
# not through Django's cache, which builds a client per thread and pickles every value. The
# embedded default (no REDIS_URL) keeps them in the shared cache above.

_clients: dict[tuple[int, str], Any] = {}
_clients_lock = threading.Lock()


def redis_client() -> Any | None:
    """This process's Redis client for ``settings.REDIS_URL``, or None without Redis."""
    from django.conf import settings

    url = settings.REDIS_URL
    if not url:
        return None
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        import redis

        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
                )
                _clients.clear()
                _clients[key] = client
    return client


def flag_add(key: str, value: str, seconds: float) -> bool:
    """Set ``key`` unless it is set; whether this call set it."""
    client = redis_client()
    if client is None:
        from django.core.cache import cache

        return bool(cache.add(key, value, seconds))
    return bool(client.set(key, value, nx=True, px=int(seconds * 1000)))


def flag_get(key: str) -> str | None:
    client = redis_client()
    if client is None:
        from django.core.cache import cache

        return cache.get(key)
    value = client.get(key)
    return value.decode() if isinstance(value, bytes) else value


def flag_renew(key: str, value: str, seconds: float) -> bool:
    """Extend ``key`` if it still holds ``value``; whether it did (on Redis, atomically)."""
    client = redis_client()
    if client is None:
        from django.core.cache import cache

        return cache.get(key) == value and bool(cache.touch(key, seconds))
    return bool(client.eval(_RENEW, 1, key, value, int(seconds * 1000)))


def flag_release(key: str, value: str) -> None:
    """Delete ``key`` if it still holds ``value`` (on Redis, atomically)."""
    client = redis_client()
    if client is None:
        from django.core.cache import cache

        if cache.get(key) == value:
            cache.delete(key)
        return
    client.eval(_RELEASE, 1, key, value)


def flag_delete(key: str) -> None:
    client = redis_client()
    if client is None:
        from django.core.cache import cache

        cache.delete(key)
        return
    client.delete(key)


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
