"""broadcasts/line/ratelimit.py with Redis: at most ``per_second`` requests in any sliding window
(LINE's second plus a margin), shared by every limiter of that name, in any process.

Only lower bounds on time are asserted: a slow machine makes the calls later, never earlier,
so these cannot fail for slowness."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.conf import settings

from broadcasts.line.ratelimit import RateLimiter

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="the sliding-window limiter needs Redis (REDIS_URL)"
)


def test_the_request_past_the_limit_waits_until_the_first_leaves_the_window():
    limiter = RateLimiter(f"test-{uuid.uuid4().hex}", per_second=5)
    started = time.monotonic()
    for _ in range(5):
        limiter.acquire()
    limiter.acquire()  # the sixth
    assert time.monotonic() - started >= 1.0


def test_limiters_of_one_name_share_the_window_across_threads():
    name = f"test-{uuid.uuid4().hex}"
    done: list[float] = []
    started = time.monotonic()

    def three() -> None:
        limiter = RateLimiter(name, per_second=5)  # each thread its own limiter object
        for _ in range(3):
            limiter.acquire()
            done.append(time.monotonic())

    threads = [threading.Thread(target=three) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(done) == 6
    assert max(done) - started >= 1.0  # the sixth waited for the window


def test_a_window_at_a_calendar_second_boundary_holds_no_more_than_the_limit():
    """Fixed per-second counters let the limit through twice around a second's boundary;
    the sliding window does not: 2 × per_second requests take at least one window."""
    limiter = RateLimiter(f"test-{uuid.uuid4().hex}", per_second=4)
    while time.time() % 1 < 0.9:  # just before a calendar second ends
        time.sleep(0.01)
    started = time.monotonic()
    for _ in range(8):
        limiter.acquire()
    assert time.monotonic() - started >= 1.0
