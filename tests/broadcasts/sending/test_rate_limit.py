"""A send's multicasts share LINE's limit (``MULTICAST_MAX_PER_SECOND`` requests in any
second) with every other sender through Redis (broadcasts/line/ratelimit.py): when other
senders have used the window, the send's requests wait for it (issue 18). Only lower bounds
on time are asserted: a slow machine makes requests later, never earlier."""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings

from broadcasts import services
from broadcasts.line.ratelimit import RateLimiter
from broadcasts.models import Broadcast
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers

pytestmark = pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="the shared sliding window needs Redis (REDIS_URL)"
)
MULTICAST = "/v2/bot/message/multicast"


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)


def test_a_send_waits_for_the_window_other_senders_filled(
    line_sandbox, drafter, reviewer, in_window, settings
):
    settings.MULTICAST_MAX_PER_SECOND = 3
    ids = [synthetic_user_id(41_000 + i) for i in range(1200)]  # three requests
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["events"])
    broadcast = approved_broadcast(
        author=drafter, approver=reviewer, categories=["events"], text="【柏市】朝市のお知らせ"
    )
    assert broadcast.pk in services.broadcasts_dispatch_due(now=broadcast.scheduled_for).claimed
    other_sender = RateLimiter("line-multicast", 3)
    for _ in range(3):  # another worker's three requests: the window is full
        other_sender.acquire()
    filled = time.monotonic()

    outcome = services.broadcast_send(broadcast_id=broadcast.pk)

    waited = time.monotonic() - filled
    assert outcome.status == "sent"
    assert len(line_sandbox.state.deliveries(endpoint=MULTICAST)) == 3
    assert waited >= 1.0  # not one request before the other sender's second had passed
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SENT
