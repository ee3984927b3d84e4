"""``manage.py runstack`` with real processes (the embedded default, as `./dev run` starts it):
a worker killed with SIGKILL comes back, the other processes keep their pids, and 運用状況,
read by another process, shows the restart."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from bench.soak_embedded import EmbeddedStack

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")),
        reason="runs the embedded default, which the SQLite pass already runs",
    ),
]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, stack: EmbeddedStack, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{stack.tail()}")


def worker_ready_count(stack: EmbeddedStack) -> int:
    return sum(1 for line in stack.lines() if re.search(r"default@\S+ ready", line))


def ops_seen_by_another_process(stack: EmbeddedStack) -> dict:
    return json.loads(
        stack.manage(
            "shell",
            "--no-imports",
            "-c",
            "import json; from django.utils import timezone; from broadcasts import ops; "
            "print(json.dumps(ops.as_json(ops.ops_status(timezone.now()))))",
        )
    )


def test_a_killed_worker_is_restarted_and_shown_on_ops(tmp_path):
    stack = EmbeddedStack(tmp_path, followers=5)
    stack.manage("migrate", "--noinput")
    try:
        stack.start()
        before = stack.started()
        assert set(before) == {"web", "worker", "emergency", "beat", "sandbox", "jma"}
        wait_for(lambda: worker_ready_count(stack) == 1, stack, 60, "the worker")

        os.kill(before["worker"], signal.SIGKILL)

        wait_for(lambda: worker_ready_count(stack) == 2, stack, 60, "the worker's restart")
        (death,) = stack.deaths()
        assert re.search(
            r"worker が終了しました（シグナル SIGKILL、.*）。1 秒後に再起動します。", death
        )
        (restart,) = stack.restarts()
        assert alive(int(re.search(r"pid (\d+)", restart)[1]))
        assert all(alive(before[name]) for name in ("web", "emergency", "beat", "sandbox", "jma"))

        shown = ops_seen_by_another_process(stack)
        assert [r["name"] for r in shown["process_restarts"]] == ["worker"]
        assert shown["process_restarts"][0]["returncode"] == -signal.SIGKILL
        # beat → the restarted worker → the dispatcher's heartbeat, seen from another process
        wait_for(
            lambda: not ops_seen_by_another_process(stack)["dispatcher_late"],
            stack,
            30,
            "the dispatcher's heartbeat",
        )
    finally:
        assert stack.stop() == 0
