"""runstack's supervisor (kashiwa/supervisor.py) with real processes: a child that dies is
started again after a pause, the others keep running, and SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kashiwa.supervisor import MAX_DELAY, MIN_DELAY, STABLE_AFTER, describe_exit, next_delay

REPO = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"起動しました: (\w+) \(pid (\d+)\)")
RESTARTED = re.compile(r"(\w+) を再起動しました \(pid (\d+)、(\d+) 回目\)")


class Running:
    """A supervisor in a process of its own, its console collected line by line."""

    def __init__(self, commands: dict[str, str]) -> None:
        script = (
            "import sys\n"
            "from kashiwa.supervisor import Supervisor\n"
            f"commands = {{name: [sys.executable, '-c', code] for name, code in {commands!r}.items()}}\n"
            "sys.exit(Supervisor(commands).run(poll_seconds=0.05))\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", script],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(self.lines))

    def matching(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return [m for line in list(self.lines) if (m := pattern.search(line))]

    def started_pids(self) -> dict[str, int]:
        return {m[1]: int(m[2]) for m in self.matching(STARTED)}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def supervised() -> Iterator[Callable[[dict[str, str]], Running]]:
    started: list[Running] = []

    def start(commands: dict[str, str]) -> Running:
        started.append(Running(commands))
        return started[-1]

    yield start
    for running in started:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


SLEEPER = "import time; time.sleep(600)"


def test_a_killed_child_is_restarted_and_the_others_keep_their_pids(supervised):
    stack = supervised({"web": SLEEPER, "worker": SLEEPER, "beat": SLEEPER})
    stack.wait_for(lambda: len(stack.started_pids()) == 3, 30, "three children")
    before = stack.started_pids()

    os.kill(before["worker"], signal.SIGKILL)

    stack.wait_for(lambda: stack.matching(RESTARTED), 15, "the worker's restart")
    died = [line for line in stack.lines if "が終了しました" in line]
    assert len(died) == 1
    assert re.search(
        r"worker が終了しました（シグナル SIGKILL、\d\d:\d\d:\d\d）。1 秒後に再起動します。",
        died[0],
    )
    (restart,) = stack.matching(RESTARTED)
    assert restart[1] == "worker" and restart[3] == "1"
    new_worker = int(restart[2])
    assert new_worker != before["worker"] and alive(new_worker)
    assert alive(before["web"]) and alive(before["beat"])

    assert stack.stop() == 0
    for pid in (before["web"], before["beat"], new_worker):
        assert not alive(pid)


def test_a_child_that_keeps_dying_waits_longer_each_time(supervised):
    stack = supervised({"web": SLEEPER, "broken": "raise SystemExit(3)"})
    stack.wait_for(
        lambda: len([line for line in stack.lines if "broken が終了しました" in line]) >= 3,
        30,
        "three deaths",
    )
    deaths = [line for line in stack.lines if "broken が終了しました" in line]
    assert all("終了コード 3" in line for line in deaths)
    pauses = [re.search(r"(\d+) 秒後に再起動します", line)[1] for line in deaths[:3]]
    assert pauses == ["1", "2", "4"]
    assert len(stack.started_pids()) == 2 and alive(stack.started_pids()["web"])
    assert stack.stop() == 0


def test_the_pause_doubles_up_to_half_a_minute_and_resets_after_a_minute_of_uptime():
    pauses, previous = [], 0.0
    for _ in range(8):
        previous = next_delay(previous, uptime=2)
        pauses.append(previous)
    assert pauses == [1, 2, 4, 8, 16, 30, 30, 30]
    assert MIN_DELAY == 1 and MAX_DELAY == 30
    assert next_delay(30, uptime=STABLE_AFTER) == 1


def test_exits_are_described_as_staff_read_them():
    assert describe_exit(1) == "終了コード 1"
    assert describe_exit(-9) == "シグナル SIGKILL"
