"""The cache every process shares: in the embedded default SQLite files (diskcache), with
Redis the Redis. The web process must see the dispatcher's heartbeat written by beat's
worker, and the rate limiter's counters must add up across workers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import time_machine
from django.core.cache import cache

REPO = Path(__file__).resolve().parents[2]


def manage_shell(code: str) -> subprocess.Popen[str]:
    """``manage.py shell -c`` in another process, with this test run's settings and data."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kashiwa.settings.test"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_value_written_by_another_process_is_seen_here_and_back():
    cache.set("from-here", "こんにちは", 60)
    other = manage_shell(
        """
        from django.core.cache import cache
        cache.set("from-there", {"heartbeat": "2026-12-01T10:00:00+09:00"}, 60)
        print(cache.get("from-here"))
        """
    )
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert out.strip() == "こんにちは"
    assert cache.get("from-there") == {"heartbeat": "2026-12-01T10:00:00+09:00"}


def test_incr_and_add_hold_across_processes():
    """broadcasts/line/ratelimit.py: ``add`` creates a counter once, ``incr`` counts every call
    whichever process makes it, and a missing key raises ValueError."""
    processes = [
        manage_shell(
            """
            from django.core.cache import cache
            created = 0
            for _ in range(200):
                try:
                    cache.incr("counted")
                except ValueError:
                    if cache.add("counted", 1, 60):
                        created += 1
                    else:
                        cache.incr("counted")
            print(created)
            """
        )
        for _ in range(3)
    ]
    created = 0
    for p in processes:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        created += int(out.strip())
    assert created == 1
    assert cache.get("counted") == 600


def test_delete_removes_a_key_whatever_the_clock_says():
    """A value set at an earlier instant (a test travelling in time, a clock stepped back) is
    gone after ``delete``, even though it had expired by the time of the delete."""
    earlier = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(earlier, tick=False):
        cache.set("quota", "cached at 10:00", 60)
    cache.delete("quota")
    with time_machine.travel(earlier, tick=False):
        assert cache.get("quota") is None
