"""How fast this machine runs Python right now: the same fixed work every time, so that
figures taken on different days (or while other work loads the machine) can be set side by
side. The machines these benches run on are virtual, and their speed varies from day to day:
on 2026-12-01 the same commit's 100k multicast took 0.93 s in the morning's quiet spell
and 1.28 s in the afternoon's, with nothing else running either time.

    .venv/bin/python bench/machine_speed.py

Prints the best of 5 runs of a pure-Python loop (10,000,000 additions), of a SHA-256 over
64 MB, of 20,000 ping-pongs between two threads over a loopback socket pair (the wake-ups
and system calls every request to the database, Redis or LINE pays: on 2026-12-01 the loop
ran at the same speed in the good and the bad hours, the benches did not), and, if
PostgreSQL answers at 127.0.0.1:5432, of 2,000 ``SELECT 1`` round trips; with the load
average. Lower is faster; no goal."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
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


def ping_pong_seconds(rounds: int = 20_000) -> float:
    left, right = socket.socketpair()

    def echo() -> None:
        for _ in range(rounds):
            right.sendall(right.recv(1))

    thread = threading.Thread(target=echo)
    thread.start()
    started = time.perf_counter()
    for _ in range(rounds):
        left.sendall(b"x")
        left.recv(1)
    elapsed = time.perf_counter() - started
    thread.join()
    left.close()
    right.close()
    return elapsed


def postgres_seconds(rounds: int = 2_000) -> float | None:
    try:
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2
        ) as conn:
            started = time.perf_counter()
            for _ in range(rounds):
                conn.execute("SELECT 1").fetchone()
            return time.perf_counter() - started
    except Exception:  # no server here: the line says so
        return None


def main() -> None:
    loop = min(loop_seconds() for _ in range(5))
    sha = min(sha_seconds() for _ in range(5))
    pong = min(ping_pong_seconds() for _ in range(5))
    readings = [postgres_seconds() for _ in range(5)]
    pg = min((r for r in readings if r is not None), default=None)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    pg_text = f"{pg:.2f} s" if pg is not None else "no server"
    print(
        f"machine speed: Python loop {loop:.2f} s, SHA-256 of 64 MB {sha:.2f} s, 20,000 "
        f"thread ping-pongs {pong:.2f} s, 2,000 PostgreSQL SELECT 1 {pg_text} (best of 5; "
        f"lower is faster); {os.cpu_count()} CPUs; load average {load}"
    )


if __name__ == "__main__":
    main()
