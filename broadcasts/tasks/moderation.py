"""Celery tasks of moderation (imported by ``tasks/__init__.py`` so autodiscovery finds them)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from ..services import moderation

__all__ = ["purge_citizen_messages"]


@shared_task(name="broadcasts.tasks.moderation.purge_citizen_messages", ignore_result=True)
def purge_citizen_messages() -> int:
    """Beat, every 6 hours: kept citizens' messages older than the retention (policy 10)."""
    return moderation.citizen_messages_purge(now=timezone.now())
