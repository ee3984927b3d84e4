"""The channel token never appears in logs, audit rows or what staff see, even when LINE
calls fail."""

from __future__ import annotations

import logging

import pytest

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastEvent

from .sending.helpers import approved_broadcast, jst, make_followers

MULTICAST = "/v2/bot/message/multicast"


@pytest.mark.parametrize("status", [401, 400, 500, 429])
def test_token_absent_from_logs_and_audit_when_line_fails(
    line_sandbox, drafter, reviewer, time_machine, caplog, status
):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)
    token = line_sandbox.token
    make_followers(line_sandbox.follower_ids(), ["childcare_education"])
    line_sandbox.set_fault(MULTICAST, status, count=None)
    caplog.set_level(logging.DEBUG)
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 10, 0))
    services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 10, 0))
    services.broadcast_send(broadcast_id=b.pk, sleep=lambda s: None)
    b.refresh_from_db()
    assert b.last_error  # staff are told what went wrong...
    everything = [caplog.text, b.last_error]
    everything += [str(e.data) + e.comment for e in BroadcastEvent.objects.all()]
    everything += list(b.deliveries.values_list("last_error", flat=True))
    for text in everything:
        assert token not in text  # ...but never shown the token
    assert b.status in (
        Broadcast.Status.SENDING,
        Broadcast.Status.FAILED,
        Broadcast.Status.NEEDS_ATTENTION,
    )
