"""A per-second request limiter shared by every worker through the cache (Redis in
production), so all workers together stay under LINE's multicast limit (200/s)."""

from __future__ import annotations

import time

from django.core.cache import cache


class RateLimiter:
    """Thread-safe: each sending thread calls ``acquire`` just before its request."""

    def __init__(self, name: str, per_second: int) -> None:
        self.name = name
        self.per_second = max(per_second, 1)

    def acquire(self) -> None:
        """Block until one more request fits in the current second."""
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
