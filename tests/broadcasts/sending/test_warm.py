"""A pool process rehearses a send's statements as it starts (sending/warm.py): it must write
nothing, leave every broadcast as it was, and the sends after it must go as before."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from broadcasts import services
from broadcasts.models import AggregationUnit, Broadcast, BroadcastEvent, Delivery
from broadcasts.services.sending import send
from broadcasts.services.sending.warm import sender_warm_up
from line_sandbox.state import synthetic_user_id

from .helpers import approved_broadcast, jst, make_followers

MULTICAST = "/v2/bot/message/multicast"


def rows_written_in_this_transaction() -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
            "FROM pg_stat_xact_user_tables"
        )
        return int(cursor.fetchone()[0])


def snapshot() -> tuple[object, ...]:
    return (
        list(Broadcast.objects.order_by("pk").values()),
        BroadcastEvent.objects.count(),
        Delivery.objects.count(),
        AggregationUnit.objects.count(),
    )


def test_the_warm_up_writes_nothing_and_the_send_after_it_goes(
    line_sandbox, drafter, reviewer, time_machine
):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)
    ids = [synthetic_user_id(70_000 + i) for i in range(20)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["events"])
    b = approved_broadcast(author=drafter, approver=reviewer, categories=["events"])
    assert b.pk in services.broadcasts_dispatch_due(now=b.scheduled_for).claimed
    send._LOCKED_SQL.clear()  # as in a process that has not sent yet
    before, written = snapshot(), rows_written_in_this_transaction()

    sender_warm_up(now=timezone.now())

    assert snapshot() == before
    assert rows_written_in_this_transaction() == written  # PostgreSQL: not one row touched
    assert connection.vendor in send._LOCKED_SQL  # the locked read is compiled already
    assert services.broadcast_send(broadcast_id=b.pk).status == "sent"
    b.refresh_from_db()
    assert b.status == Broadcast.Status.SENT
    assert len(line_sandbox.state.deliveries(endpoint=MULTICAST)) == 1


@pytest.mark.django_db
def test_the_warm_up_runs_on_an_empty_database():
    """A worker started before anyone approved anything (the first boot)."""
    before = snapshot()
    sender_warm_up(now=timezone.now())
    assert snapshot() == before
