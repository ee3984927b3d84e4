"""A worker keeps its database connection from task to task, and replaces a broken one.

Celery's Django fix-up closed every connection before and after every task: each send (and
the dispatcher, every second) opened a new PostgreSQL session, and at the window's opening
fifty sends opened fifty-two. Now a task is treated as Django treats a request (settings
``CELERY_DB_REUSE_MAX``, ``kashiwa/celery.py``): the connection stays unless it is too old
or broken, so the tests here also kill it under the worker."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from broadcasts.models import Broadcast
from line_sandbox.state import synthetic_user_id

from ..broadcasts.sending.helpers import approved_broadcast, make_followers
from .test_processes import Stack, wait_for, wait_sent

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def _sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def _terminate_other_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL sessions")
def test_sends_reuse_the_workers_connection_and_survive_it_being_killed(
    line_sandbox, drafter, supervisor, tmp_path
):
    ids = [synthetic_user_id(81_000 + i) for i in range(5)]
    line_sandbox.state.add_followers(user_ids=ids)
    make_followers(ids, ["disaster_crime"])
    stack = Stack(tmp_path, line_sandbox.url, os.environ.get("REDIS_URL"))

    def emergency(n: int) -> Broadcast:
        return approved_broadcast(
            author=drafter,
            approver=supervisor,
            priority=Broadcast.Priority.EMERGENCY,
            categories=["disaster_crime"],
            text=f"【柏市】避難情報 その{n}",
        )

    try:
        stack.start_worker()
        wait_for(lambda: "ready." in stack.log("worker"), 60, "the worker\n" + stack.log("worker"))
        wait_sent(emergency(1), 60, "the first send\n" + stack.log("worker"))
        before = _sessions()
        for n in range(2, 8):
            wait_sent(emergency(n), 60, f"send {n}\n" + stack.log("worker"))
        # Six sends, six tasks: no new session for any of them (our own test connection
        # is already open).
        assert _sessions() - before == 0, stack.log("worker")

        # The database drops the worker's connection (a restart, a failover, an admin):
        # the next send still goes, on a new one.
        assert _terminate_other_sessions() >= 1
        wait_sent(emergency(8), 60, "the send after the kill\n" + stack.log("worker"))
    finally:
        stack.stop_all()
    texts = [d.messages[0]["text"] for d in line_sandbox.state.deliveries()]
    assert sorted(texts) == sorted(f"【柏市】避難情報 その{n}" for n in range(1, 9))
    # Each pool process rehearsed a send as it started (sending/warm.py), without a failure.
    whole_log = (stack.logs / "worker.log").read_text(errors="replace")
    assert "warm-up" not in whole_log, whole_log[-4000:]
