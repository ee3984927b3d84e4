"""Celery tasks for LINE's statistics (imported by ``tasks/__init__.py`` so autodiscovery finds them)."""

from __future__ import annotations

from celery import shared_task

from ..line.errors import LineTemporaryError
from ..models import Broadcast
from ..services import insight

__all__ = ["refresh_broadcast_stats", "refresh_insight"]


@shared_task(name="broadcasts.tasks_insight.refresh_insight", ignore_result=True)
def refresh_insight() -> dict[str, int]:
    """Hourly (beat): recently sent broadcasts' numbers and the last week's daily figures."""
    return insight.insight_refresh()


@shared_task(
    name="broadcasts.tasks_insight.refresh_broadcast_stats",
    ignore_result=True,
    autoretry_for=(LineTemporaryError,),
    retry_backoff=30,
    max_retries=3,
)
def refresh_broadcast_stats(broadcast_id: int) -> int | None:
    """On demand, from the statistics pages: one broadcast's numbers now."""
    broadcast = Broadcast.objects.filter(pk=broadcast_id, status=Broadcast.Status.SENT).first()
    if broadcast is None:
        return None
    return insight.broadcast_stats_fetch(broadcast=broadcast).delivered
