"""Chaos: real Celery worker and beat processes, killed and restarted, against the sandbox.

The database and broker are the suite's own (SQLite and the embedded SQLite broker, or
PostgreSQL + Redis in CI). Who received what is checked in the sandbox's delivery log."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from broadcasts.models import Broadcast
from line_sandbox.state import synthetic_user_id

from ..broadcasts.sending.helpers import approved_broadcast, make_followers

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
MULTICAST = "/v2/bot/message/multicast"


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgresql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_sent(broadcast: Broadcast, timeout: float, what: str) -> None:
    """Wait until the broadcast's row says SENT (``what``: the logs to show if not)."""

    def sent() -> bool:
        broadcast.refresh_from_db()
        return broadcast.status == Broadcast.Status.SENT

    wait_for(sent, timeout, what)


class Stack:
    """Worker and beat processes sharing the test database, broker and sandbox."""

    def __init__(self, tmp_path: Path, sandbox_url: str, broker_url: str | None) -> None:
        self.logs = tmp_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kashiwa.settings.test",
            "DATABASE_URL": _database_url(),
            "LINE_API_BASE_URL": sandbox_url,
            "LINE_CHANNEL_ACCESS_TOKEN": settings.SANDBOX_CHANNEL_ACCESS_TOKEN,
            "SEND_LEASE_SECONDS": "3",
            "MULTICAST_CONCURRENCY": "1",
            "DISPATCH_INTERVAL_SECONDS": "1",
            "KASHIWA_BROKER_DIR": str(tmp_path / "broker"),
            "PYTHONUNBUFFERED": "1",
        }
        if broker_url:
            self.env["CELERY_BROKER_URL"] = broker_url
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        cmd = [sys.executable, "-m", "celery", "-A", "kashiwa", *args]
        self.procs[name] = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str = "worker") -> None:
        self.start(
            name,
            "worker",
            "-Q",
            "default,emergency",
            "-c",
            "1",
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
        )

    def start_beat(self) -> None:
        self.start("beat", "beat", "-l", "INFO", "-s", str(self.logs / "beat-schedule"))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[[], None]]:
    """A Redis of our own (so restarting it disturbs nobody), and a function that restarts
    it empty, as a crashed Redis without persistence comes back."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed for this test (Debian package redis-server)"
    port = _free_port()
    cmd = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    state = {"proc": subprocess.Popen(cmd, stdout=subprocess.DEVNULL)}

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(ready, 10, "private redis")

    def stop() -> None:
        state["proc"].kill()
        state["proc"].wait()

    def start() -> None:
        state["proc"] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        wait_for(ready, 10, "private redis restart")

    def restart() -> None:
        stop()
        start()

    restart.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    restart.stop = stop  # type: ignore[attr-defined]
    restart.start = start  # type: ignore[attr-defined]
    yield restart
    state["proc"].kill()
    state["proc"].wait()


def recipients_counter(sandbox) -> Counter[str]:
    counts: Counter[str] = Counter()
    for delivery in sandbox.state.deliveries():
        counts.update(delivery.recipients)
    return counts


def test_worker_killed_mid_multicast_every_recipient_gets_it_once(
    line_sandbox, drafter, supervisor, tmp_path, settings
):
    settings.SEND_LEASE_SECONDS = 3
    ids = [synthetic_user_id(50_000 + i) for i in range(5000)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    # 10 chunks of 500; slow LINE so that the kill lands in the middle.
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=400, count=None)

    stack = Stack(tmp_path, line_sandbox.url, os.environ.get("REDIS_URL"))
    try:
        stack.start_worker("worker1")
        stack.start_beat()
        b = approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            text="【柏市】避難所を開設しました。",
        )
        wait_for(
            lambda: len(line_sandbox.state.deliveries(endpoint=MULTICAST)) >= 3,
            60,
            "three chunks accepted before the kill\n" + stack.log("worker1"),
        )
        stack.kill("worker1")  # SIGKILL to the worker and its pool
        before = len(line_sandbox.state.deliveries(endpoint=MULTICAST))
        assert before < 10, "the send finished before the kill; the test proves nothing"
        stack.start_worker("worker2")

        wait_sent(
            b, 90, "the send to complete after restart\n" + stack.log("worker2") + stack.log("beat")
        )
    finally:
        stack.stop_all()
    counts = recipients_counter(line_sandbox)
    assert set(ids) == set(counts)
    assert set(counts.values()) == {1}, "somebody received the broadcast twice"
    assert b.deliveries.filter(status="accepted").count() == 10
    assert b.events.filter(verb="send_resumed").exists()


def test_redis_restart_with_scheduled_and_sending_broadcasts(
    line_sandbox, drafter, supervisor, tmp_path, settings, private_redis
):
    settings.SEND_LEASE_SECONDS = 3
    ids = [synthetic_user_id(80_000 + i) for i in range(1500)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=300, count=None)
    settings.CELERY_BROKER_URL = private_redis.url
    from kashiwa.celery import app

    # (tests/conftest.py restores the app's broker after the test)
    app.conf.broker_url = private_redis.url
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    stack = Stack(tmp_path, line_sandbox.url, private_redis.url)
    try:
        stack.start_worker("worker")
        stack.start_beat()
        now = timezone.now()
        broadcasts = [
            approved_broadcast(
                author=drafter,
                approver=supervisor,
                priority=Broadcast.Priority.EMERGENCY,
                categories=["disaster_crime"],
                text=f"【柏市】お知らせ {i}",
                requested_at=now + dt.timedelta(seconds=2 + i),
                now=now,
                title=f"#{i}",
            )
            for i in range(4)
        ]
        wait_for(
            lambda: len(line_sandbox.state.deliveries(endpoint=MULTICAST)) >= 1,
            60,
            "the first send to start\n" + stack.log("worker"),
        )
        private_redis()  # Redis dies and comes back empty: queued tasks are gone.

        def all_sent() -> bool:
            return all(
                Broadcast.objects.get(pk=b.pk).status == Broadcast.Status.SENT for b in broadcasts
            )

        wait_for(
            all_sent,
            120,
            "every broadcast to be sent after the restart\n"
            + stack.log("worker")
            + stack.log("beat"),
        )
    finally:
        stack.stop_all()
    per_message: Counter[tuple[str, str]] = Counter()
    for delivery in line_sandbox.state.deliveries(endpoint=MULTICAST):
        text = delivery.messages[0]["text"]
        per_message.update((uid, text) for uid in delivery.recipients)
    assert len(per_message) == 4 * 1500
    assert set(per_message.values()) == {1}, "somebody received a broadcast twice"
