"""Chaos: the webhook's processor, a real Celery worker, killed in the middle of a batch of
greetings (issue 18 part 6). Afterwards every event is processed once: every new friend is
greeted exactly once, nobody's follow is lost or applied twice."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
from celery import current_app
from django.conf import settings

from broadcasts.models import Follower, WebhookEvent
from broadcasts.services import citizens
from line_sandbox import follow_event
from line_sandbox.state import synthetic_user_id
from line_sandbox.webhook import prepare_events

from .test_processes import Stack, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

REPLY = "/v2/bot/message/reply"
SWEEPER = "broadcasts.tasks_citizens.process_pending_webhook_events"


def greetings(sandbox) -> Counter[str]:
    counts: Counter[str] = Counter()
    for delivery in sandbox.state.deliveries(endpoint=REPLY):
        counts.update(delivery.recipients)
    return counts


def test_worker_killed_mid_batch_every_event_processed_once(line_sandbox, tmp_path):
    from django.apps import apps

    from broadcasts.citizen_defaults import seed_citizen_side

    seed_citizen_side(apps)  # transactional tests flush what the data migration seeded
    users = [synthetic_user_id(60_000 + i) for i in range(60)]
    # Two reply threads and a slow LINE: the batch of 60 takes ~9 s, the kill lands inside it.
    line_sandbox.state.set_fault(REPLY, mode="latency", latency_ms=300, count=None)
    stack = Stack(tmp_path, line_sandbox.url, os.environ.get("REDIS_URL"))
    stack.env.update({"WEBHOOK_PROCESSOR_LEASE_SECONDS": "3", "REPLY_CONCURRENCY": "2"})
    if not os.environ.get("REDIS_URL"):
        # the workers take this process's tasks from the suite's embedded broker
        broker_file = Path(urlparse(settings.CELERY_BROKER_URL).path)
        stack.env["KASHIWA_BROKER_DIR"] = str(broker_file.parent)
    try:
        stack.start_worker("worker1")
        wait_for(lambda: "ready." in stack.log("worker1"), 60, "worker1\n" + stack.log("worker1"))
        # As the webhook stores them: committed, then one processor woken through the broker.
        prepared = prepare_events(line_sandbox.state, [follow_event(u) for u in users])
        citizens.webhook_events_store(payload={"destination": "U0", "events": prepared})
        wait_for(
            lambda: sum(greetings(line_sandbox).values()) >= 5,
            60,
            "five greetings before the kill\n" + stack.log("worker1"),
        )
        stack.kill("worker1")  # SIGKILL to the worker and its pool, mid-batch
        left = WebhookEvent.objects.filter(processed_at__isnull=True).count()
        assert left > 0, "the batch finished before the kill; the test proves nothing"
        assert sum(greetings(line_sandbox).values()) < len(users)

        stack.start_worker("worker2")
        wait_for(lambda: "ready." in stack.log("worker2"), 60, "worker2\n" + stack.log("worker2"))

        def all_processed() -> bool:
            # the beat's sweeper, every second instead of every 30 s
            current_app.send_task(SWEEPER, ignore_result=True)
            time.sleep(0.5)
            return not WebhookEvent.objects.filter(processed_at__isnull=True).exists()

        wait_for(all_processed, 60, "every event processed\n" + stack.log("worker2"))
    finally:
        stack.stop_all()
    counts = greetings(line_sandbox)
    assert set(counts) == set(users), "somebody was not greeted"
    assert set(counts.values()) == {1}, "somebody was greeted twice"
    assert WebhookEvent.objects.filter(processed_at__isnull=False).count() == len(users)
    followers = Follower.objects.filter(line_user_id__in=users, unfollowed_at__isnull=True)
    assert followers.count() == len(users)
    assert {f.categories.count() for f in followers} == {11}
    # A reply the killed worker had sent, sent again by the next, was refused by LINE (a reply
    # token is accepted once) and is recorded as such; no other error.
    errors = {e for e in WebhookEvent.objects.values_list("error", flat=True) if e}
    assert all("token" in e.lower() for e in errors), errors
