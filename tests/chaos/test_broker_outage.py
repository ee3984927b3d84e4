"""Redis down for 8 s in the middle of a send (issue 12 finding 4), under the production
process model: each process restarted by its supervisor as deploy/systemd/*.service do
(Restart=always, RestartSec=2). On the first pass the worker exited with kombu's
``AttributeError: 'NoneType' object has no attribute 'hostname'`` after the outage, and a
send due 20 s later waited for a person to restart it."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.utils import timezone

from broadcasts.models import Broadcast
from line_sandbox.state import synthetic_user_id

from ..broadcasts.sending.helpers import approved_broadcast, make_followers
from .test_processes import MULTICAST, Stack, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

RESTART_SEC = 2  # deploy/systemd: RestartSec=2


class Supervisor(threading.Thread):
    """What systemd does for the units in deploy/systemd/: start a process again when it
    exits, after RestartSec, forever."""

    def __init__(self, stack: Stack, starters: dict[str, Callable[[], None]]) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.starters = starters
        self.restarts: Counter[str] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        for start in self.starters.values():
            start()
        while not self.halt.wait(0.5):
            for name, start in self.starters.items():
                proc = self.stack.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    time.sleep(RESTART_SEC)
                    self.restarts[name] += 1
                    start()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def test_every_due_send_completes_within_a_minute_of_redis_coming_back(
    line_sandbox, drafter, supervisor, tmp_path, settings, private_redis, client, admin_user
):
    from kashiwa.celery import app

    ids = [synthetic_user_id(40_000 + i) for i in range(4000)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    # 8 chunks, slow enough that the outage lands in the middle of the first send.
    line_sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=500, count=None)
    settings.CELERY_BROKER_URL = private_redis.url
    app.conf.broker_url = private_redis.url  # (restored by tests/conftest.py)
    stack = Stack(tmp_path, line_sandbox.url, private_redis.url)
    keeper = Supervisor(
        stack,
        {"worker": lambda: stack.start_worker("worker"), "beat": stack.start_beat},
    )
    keeper.start()
    try:
        now = timezone.now()
        first = approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            text="【柏市】断水のお知らせ",
            title="first",
        )
        later = approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            text="【柏市】給水所のお知らせ",
            requested_at=now + dt.timedelta(seconds=20),
            now=now,
            title="later",
        )
        wait_for(
            lambda: len(line_sandbox.state.deliveries(endpoint=MULTICAST)) >= 2,
            60,
            "the first send under way\n" + stack.log("worker"),
        )
        private_redis.stop()
        # While it lasts, /healthz says so (the load balancer and the admins see it).
        client.force_login(admin_user)
        during = client.get("/healthz")
        assert during.status_code == 503, during.content
        time.sleep(8)
        private_redis.start()
        back = time.monotonic()

        def all_sent() -> bool:
            return Broadcast.objects.filter(pk__in=[first.pk, later.pk], status="sent").count() == 2

        wait_for(
            all_sent,
            60,
            "both sends within 60 s of Redis's return\n" + stack.log("worker") + stack.log("beat"),
        )
        took = time.monotonic() - back
    finally:
        keeper.stop()
        stack.stop_all()
    print(f"sent {took:.1f} s after Redis came back; restarts: {dict(keeper.restarts)}")
    per_message: Counter[tuple[str, str]] = Counter()
    for delivery in line_sandbox.state.deliveries(endpoint=MULTICAST):
        per_message.update((uid, delivery.messages[0]["text"]) for uid in delivery.recipients)
    assert len(per_message) == 2 * len(ids)
    assert set(per_message.values()) == {1}, "somebody received a message twice"
