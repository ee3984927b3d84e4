"""The Celery app: queues ``default`` and ``emergency``; the beat schedule lives in settings."""

from __future__ import annotations

import os
from typing import Any

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


@signals.worker_init.connect
def _load_before_fork(**_kwargs: object) -> None:
    """What every pool process needs and can share, loaded once in the worker's parent before
    it forks its pool: the national-holiday tables (the ``holidays`` package imports some 280
    modules the first time a calendar is built: ~0.2 s that the first send of every pool
    process paid, with the window's held sends queued behind it). Modules and pure data
    only: connections and per-process identity are made after the fork (below)."""
    import datetime as dt

    from broadcasts import schedule

    this_year = dt.datetime.now(schedule.JST).year
    for year in (this_year, this_year + 1):
        schedule.holiday_name(dt.date(year, 1, 1))


@signals.worker_process_init.connect
def _warm_up(**_kwargs: object) -> None:
    """Each pool process, as it starts (after fork: its own connections), makes its LINE client,
    connects the rate limiter and learns whether the plan has a monthly limit, so that the first send it runs, an emergency perhaps, does
    not wait for imports and connections (STYLE.md §14). A failure here is not fatal: the
    send makes them when it needs them."""
    import logging

    try:
        from broadcasts.line.gateway import get_gateway
        from broadcasts.line.ratelimit import warm_up
        from broadcasts.services.sending.quota import quota_plan_warm_up

        gateway = get_gateway()
        warm_up()
        quota_plan_warm_up(gateway)  # whether sends must read the month's quota at all
    except Exception:  # a worker must start even with Redis or settings briefly wrong
        logging.getLogger(__name__).warning("warm-up of the pool process failed", exc_info=True)


@signals.worker_init.connect
def _open_database_in_pool_processes(**_kwargs: object) -> None:
    """Each pool process opens its database connection as it starts, so that its first task
    (an emergency perhaps) does not wait for PostgreSQL to fork a backend. Connected here, at
    worker start, so that it runs after Celery's Django fix-up has closed the connections
    the process inherited from its parent (that fix-up connects its handler at worker start
    too, before this one)."""
    signals.worker_process_init.connect(_open_database, weak=False)


def _open_database(**_kwargs: object) -> None:
    """Open the connection, then rehearse a send's statements on it without writing
    (``sender_warm_up``): a fresh process's first send cost ~4× the next one's CPU."""
    import logging

    from django.db import connection
    from django.utils import timezone

    try:
        connection.ensure_connection()
    except Exception:  # the first task opens it then
        logging.getLogger(__name__).warning("database not reachable at warm-up", exc_info=True)
        return
    try:
        from broadcasts.services.sending.warm import sender_warm_up

        sender_warm_up(now=timezone.now())
    except Exception:  # e.g. migrations not applied yet: the first send pays, as before
        logging.getLogger(__name__).warning("warm-up of the sender failed", exc_info=True)


@signals.task_prerun.connect
@signals.task_postrun.connect
def _database_connections_between_tasks(task: Any = None, **_kwargs: object) -> None:
    """What Django does around each request, around each task: keep the connection unless
    it is older than ``CONN_MAX_AGE`` or broken (health checks on). Celery's own closing of
    every connection at every task is off (``CELERY_DB_REUSE_MAX`` in settings). Eager runs
    (inside a caller's transaction) are left alone, as Celery's fix-up leaves them."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
