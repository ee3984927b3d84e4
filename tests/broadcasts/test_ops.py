"""運用状況: queue depths from the real broker, the dispatcher's heartbeat, stuck sends."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from broadcasts import ops, services
from broadcasts.models import Broadcast

from .sending.helpers import approved_broadcast, jst


def test_ops_page_shows_a_stuck_send_and_a_missing_dispatcher(
    client, admin_user, drafter, reviewer
):
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 10, 0))
    services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 10, 0))
    Broadcast.objects.filter(pk=b.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(minutes=5)
    )
    client.force_login(admin_user)
    status = client.get(reverse("broadcasts:ops") + "?format=json").json()
    assert status["stuck_sends"] == [b.pk]
    page = client.get(reverse("broadcasts:ops")).content.decode()
    assert 'data-testid="ops-problem"' in page
    assert b.title in page


def test_ops_healthy_when_the_dispatcher_just_ran(client, admin_user, db):
    services.broadcasts_dispatch_due()
    client.force_login(admin_user)
    status = client.get(reverse("broadcasts:ops") + "?format=json").json()
    assert status["dispatcher_late"] is False
    assert status["queues"]["emergency"] is not None  # the broker answered
    assert status["healthy"] is True


def test_queue_depth_counts_waiting_tasks(db, settings):
    from broadcasts import tasks
    from kashiwa.celery import app

    before = ops.queue_depths()["default"]
    tasks.dispatch_due_broadcasts.apply_async()
    assert ops.queue_depths()["default"] == before + 1
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("default")
    assert ops.queue_depths()["default"] == 0


def test_ops_counts_replies_that_did_not_reach_citizens(client, admin_user, db):
    """Issue 12, finding 7: replies not attempted because the token had expired, and replies
    LINE refused, in the last 24 hours."""
    from broadcasts.models import WebhookEvent
    from broadcasts.services.replies import EXPIRED

    now = timezone.now()
    for n, (error, processed) in enumerate(
        [
            (f"{EXPIRED}（イベントから 71 秒）", now),
            (f"{EXPIRED}（イベントから 65 秒）", now - dt.timedelta(hours=1)),
            ("LINE API 400: Invalid reply token", now),
            ("", now),
            (f"{EXPIRED}（イベントから 90 秒）", now - dt.timedelta(days=2)),  # too old to count
        ]
    ):
        WebhookEvent.objects.create(
            webhook_event_id=f"ops-{n}", event_type="follow", processed_at=processed, error=error
        )
    client.force_login(admin_user)
    status = client.get(reverse("broadcasts:ops") + "?format=json").json()
    assert (status["webhook_replies_expired"], status["webhook_replies_failed"]) == (2, 1)
    page = client.get(reverse("broadcasts:ops")).content.decode()
    assert "応答トークンの期限切れで送らなかったもの: 2 件" in page
    assert "LINE が受け付けなかったもの: 1 件" in page


def test_ops_shows_the_processes_runstack_restarted(client, admin_user, db, time_machine):
    """Issue 12, finding 2: runstack records each death of its processes; 運用状況 lists the
    last day's, newest first, with how each ended."""
    died = jst(2026, 12, 1, 16, 2)
    # Recorded on the test's clock: the cache keeps them a day from when they are written.
    time_machine.move_to(died + dt.timedelta(minutes=10), tick=False)
    ops.process_restart_record(name="worker", returncode=1, died_at=died, restart_in=1.0)
    ops.process_restart_record(
        name="beat", returncode=-9, died_at=died + dt.timedelta(minutes=5), restart_in=1.0
    )
    ops.process_restart_record(
        name="web", returncode=1, died_at=died - dt.timedelta(days=2), restart_in=1.0
    )  # too old to show
    for minute in range(6):  # only the last five per process are kept
        ops.process_restart_record(
            name="sandbox",
            returncode=2,
            died_at=died - dt.timedelta(hours=1, minutes=minute),
            restart_in=2.0,
        )
    ops.dispatcher_heartbeat(died + dt.timedelta(minutes=10))
    client.force_login(admin_user)
    status = client.get(reverse("broadcasts:ops") + "?format=json").json()
    names = [r["name"] for r in status["process_restarts"]]
    assert names == ["beat", "worker"] + ["sandbox"] * 5
    assert status["healthy"] is True  # each is running again: shown, not an alarm
    page = client.get(reverse("broadcasts:ops")).content.decode()
    assert "再起動: worker 12/1(火) 16:02（終了コード 1）" in page
    assert "再起動: beat 12/1(火) 16:07（シグナル SIGKILL）" in page
    assert "再起動: web" not in page
