"""How fast this machine runs Python right now: the same fixed work every time, so that
figures taken on different days (or while other work loads the machine) can be set side by
side. The machines these benches run on are virtual, and their speed varies from day to day:
on 2026-12-01 the same commit's 100k multicast took 0.93 s in the morning's quiet spell
and 1.28 s in the afternoon's, with nothing else running either time.

    .venv/bin/python bench/machine_speed.py

Prints the best of 5 runs of a pure-Python loop (10,000,000 additions) and of a SHA-256
over 64 MB, with the load average. Lower is faster; no goal."""

from __future__ import annotations

import hashlib
import os
import time


def loop_seconds() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def sha_seconds() -> float:
    data = b"\0" * (64 * 1024 * 1024)
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return time.perf_counter() - started


def main() -> None:
    loop = min(loop_seconds() for _ in range(5))
    sha = min(sha_seconds() for _ in range(5))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine speed: Python loop {loop:.2f} s, SHA-256 of 64 MB {sha:.2f} s "
        f"(best of 5; lower is faster); {os.cpu_count()} CPUs; load average {load}"
    )


if __name__ == "__main__":
    main()
