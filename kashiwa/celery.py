"""The Celery app: queues ``default`` and ``emergency``; the beat schedule lives in settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.dev")

app = Celery("kashiwa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

