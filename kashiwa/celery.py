"""The Celery app: queues ``default`` and ``emergency``; the beat schedule lives in settings."""

from __future__ import annotations

import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

# The embedded broker (no REDIS_URL): sqlite:////…/broker.sqlite3, see kashiwa/broker.py. A
# name, not an import, so that processes on Redis never load SQLAlchemy.
TRANSPORT_ALIASES["sqlite"] = "kashiwa.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.dev")

app = Celery("kashiwa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _preflight(**_kwargs: object) -> None:
    """A worker or beat with a bad configuration stops with one clear line."""
    import sys

    from .preflight import check_all
    from .settings.env import ConfigError

    try:
        check_all()
    except ConfigError as exc:
        print(f"設定エラー (configuration error): {exc}", file=sys.stderr, flush=True)
        os._exit(2)
