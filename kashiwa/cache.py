"""The cache of the embedded default (no REDIS_URL): SQLite files that every process of the
stack shares (web, workers, beat), through diskcache's Django backend.

A per-process cache (Django's local-memory cache, used here before) kept the web process from
ever seeing the dispatcher's heartbeat, so 運用状況 always reported the dispatcher as stopped;
the rate limiter counted per worker and the webhook's wake-up flag per process. diskcache
keeps each shard in a SQLite file in WAL mode; ``add`` and ``incr`` are one write transaction
each, so they hold across processes as they do on Redis (tests/kashiwa/test_cache.py)."""

from __future__ import annotations

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
