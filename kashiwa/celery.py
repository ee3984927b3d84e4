"""The Celery app: queues ``default`` and ``emergency``; the beat schedule lives in settings."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.dev")

app = Celery("kashiwa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("emergency"))
app.autodiscover_tasks()


def _ensure_filesystem_broker_dirs() -> None:
    from django.conf import settings

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        if key in options:
            os.makedirs(options[key], exist_ok=True)


if app.conf.broker_url and str(app.conf.broker_url).startswith("filesystem://"):
    _ensure_filesystem_broker_dirs()
