"""Keeps the processes of the embedded stack running (``manage.py runstack``).

Each child runs in its own session, its output prefixed with its name. A child that exits is
started again after a pause that doubles with each quick death (1 s, 2 s, 4 s … 30 s) and
falls back to 1 s once the child has run for a minute; the others keep running. Ctrl-C or
SIGTERM stops them all. Before, runstack stopped everything when one child exited: a worker
that died took the web page down with it, with no explanation in the browser.

In production systemd does this job (deploy/, README "Production")."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

MIN_DELAY = 1.0
MAX_DELAY = 30.0
# A child that ran this long before dying is not crash-looping: its next pause is MIN_DELAY.
STABLE_AFTER = 60.0
STOP_TIMEOUT = 10.0


def next_delay(previous: float, uptime: float) -> float:
    """The pause before restarting a child that ran ``uptime`` seconds, given the pause
    before its previous start (0 for the first)."""
    if uptime >= STABLE_AFTER or previous <= 0:
        return MIN_DELAY
    return min(previous * 2, MAX_DELAY)


def describe_exit(returncode: int) -> str:
    """「終了コード 1」, or the signal for a child killed by one (Popen's negative code)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"シグナル {name}"
    return f"終了コード {returncode}"


@dataclass(frozen=True)
class Death:
    """A child that exited while the stack was running."""

    name: str
    pid: int
    returncode: int
    at: dt.datetime
    uptime: float
    restart_in: float


@dataclass
class _Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 0.0
    restart_due: float | None = None
    starts: int = 0


class Supervisor:
    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        out: TextIO = sys.stdout,
        on_death: Callable[[Death], None] | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC).astimezone(),
    ) -> None:
        self.children = {name: _Child(name, argv) for name, argv in commands.items()}
        self.out = out
        self.on_death = on_death
        self.now = now
        self.stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._width = max((len(name) for name in commands), default=0)

    # --- console -------------------------------------------------------------------------
    def say(self, text: str) -> None:
        with self._write_lock:
            self.out.write(text + "\n")
            self.out.flush()

    def _pump(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.stdout is None:
            return
        for line in iter(proc.stdout.readline, b""):
            with self._write_lock:
                self.out.write(f"{name:>{self._width}} | {line.decode('utf-8', 'replace')}")
                self.out.flush()

    # --- children ------------------------------------------------------------------------
    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(  # noqa: S603 - argv fixed by the caller
            child.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        child.started = time.monotonic()
        child.restart_due = None
        child.starts += 1
        threading.Thread(target=self._pump, args=(child.name, child.proc), daemon=True).start()
        if child.starts == 1:
            self.say(f"起動しました: {child.name} (pid {child.proc.pid})")
        else:
            self.say(
                f"{child.name} を再起動しました (pid {child.proc.pid}、{child.starts - 1} 回目)"
            )

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)

    def pids(self) -> dict[str, int | None]:
        return {
            name: child.proc.pid if child.proc and child.proc.poll() is None else None
            for name, child in self.children.items()
        }

    def check(self) -> None:
        """Notice children that exited and restart those whose pause is over."""
        clock = time.monotonic()
        for child in self.children.values():
            if child.restart_due is not None:
                if clock >= child.restart_due and not self.stopping.is_set():
                    self._spawn(child)
                continue
            proc = child.proc
            if proc is None or proc.poll() is None:
                continue
            uptime = clock - child.started
            child.delay = next_delay(child.delay, uptime)
            child.restart_due = clock + child.delay
            death = Death(
                name=child.name,
                pid=proc.pid,
                returncode=proc.returncode,
                at=self.now(),
                uptime=uptime,
                restart_in=child.delay,
            )
            self.say(
                f"{child.name} が終了しました（{describe_exit(proc.returncode)}、"
                f"{death.at:%H:%M:%S}）。{child.delay:g} 秒後に再起動します。"
            )
            # The dead child's group may hold orphans (a Celery pool process): end them.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if self.on_death is not None:
                try:
                    self.on_death(death)
                except Exception as exc:  # recording is best effort; restarting is not
                    self.say(f"（再起動の記録に失敗しました: {type(exc).__name__}: {exc}）")

    def stop(self) -> None:
        """SIGTERM to each child (a Celery worker then stops its own pool), SIGKILL to the
        process groups of those still there after STOP_TIMEOUT."""
        self.stopping.set()
        running = [c.proc for c in self.children.values() if c.proc and c.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        for child in self.children.values():
            if child.proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()

    def run(self, poll_seconds: float = 0.2) -> int:
        """Start every child and keep them running until SIGINT or SIGTERM; then stop them."""

        def request_stop(*_: object) -> None:
            self.stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.start()
        try:
            while not self.stopping.wait(poll_seconds):
                self.check()
        finally:
            self.say("停止しています…")
            self.stop()
        return 0
