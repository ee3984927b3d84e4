"""Celery tasks of staff alerts (imported by ``tasks/__init__.py`` so autodiscovery finds them).

The two alert tasks run on the ``emergency`` queue (CELERY_TASK_ROUTES): an alert to a
supervisor never waits behind a long multicast."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from ..services import notifications

__all__ = ["approval_alerts_tick", "deliver_approval_alerts", "send_review_digests"]


@shared_task(
    name=notifications.DELIVER_APPROVAL_ALERTS,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def deliver_approval_alerts(round_id: int) -> int:
    """Enqueued after an emergency's submission commits: alert its approvers now."""
    return notifications.approval_alerts_deliver(round_id=round_id, now_fn=timezone.now)


@shared_task(name="broadcasts.tasks.notifications.approval_alerts_tick", ignore_result=True)
def approval_alerts_tick() -> int:
    """Beat: escalate unopened emergency alerts; send any alert still unsent."""
    result = notifications.approval_alerts_tick(now_fn=timezone.now)
    return result.sent


@shared_task(name="broadcasts.tasks.notifications.send_review_digests", ignore_result=True)
def send_review_digests() -> int:
    """Beat: one e-mail per reviewer with the ordinary submissions waiting for them."""
    sent = notifications.review_digests_send(now_fn=timezone.now)
    notifications.line_link_attempts_purge(now=timezone.now())
    return sent
