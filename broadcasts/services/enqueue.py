"""How services enqueue Celery tasks: by their registered name, never by importing them.

Tasks import services; services never import ``broadcasts.tasks`` (no import circle;
``tests/test_architecture.py`` checks it). The names are those the tasks are registered
under (``broadcasts/tasks/``), which the beat schedule and the task routes use too."""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from celery import current_app

TASKS_PACKAGE = "broadcasts.tasks"
SEND_BROADCAST = "broadcasts.tasks.send_broadcast"
SEND_EMERGENCY_BROADCAST = "broadcasts.tasks.send_emergency_broadcast"
PROCESS_WEBHOOK_EVENTS = "broadcasts.tasks_citizens.process_webhook_events"
PROCESS_NEW_WEBHOOK_EVENTS = "broadcasts.tasks_citizens.process_new_webhook_events"
DELIVER_APPROVAL_ALERTS = "broadcasts.tasks.notifications.deliver_approval_alerts"

logger = logging.getLogger(__name__)


def publishing_prepare() -> None:
    """Import now what this process's first ``task_send`` would import: the task modules
    (loaded by name, below) and the broker's transport (kombu's Redis transport and redis-py).
    A fresh web process's first emergency published in 170–210 ms, nearly all of it these
    imports; the second in 0.6 ms. Imports only: the broker connection is made by the process
    that publishes, at its first publish (after fork, STYLE.md). Called as the web app loads
    (``kashiwa/wsgi.py``)."""
    from kombu import Connection
    from kombu.transport import get_transport_cls

    importlib.import_module(TASKS_PACKAGE)
    get_transport_cls(Connection(current_app.conf.broker_url).transport_cls)


def task_send(name: str, args: list[Any] | tuple[Any, ...] | None = None, **options: Any) -> Any:
    """Send the task registered as ``name`` now (callers wrap it in ``on_commit``).

    Where this process has registered the task (a worker, or anything that imported
    ``broadcasts.tasks``) its own ``apply_async`` sends it, with the task's options; elsewhere
    the app sends it by name (``send_task``), routed by ``CELERY_TASK_ROUTES`` all the same."""
    if name not in current_app.tasks:
        # This process has not loaded the task modules yet (a web process): load them by
        # name, so that the task's own apply_async sends it (its options; eager mode in
        # tests), as when services imported tasks. Not a static import: no import circle.
        importlib.import_module(TASKS_PACKAGE)
    task = current_app.tasks.get(name)
    if task is None:
        return current_app.send_task(name, args=args, **options)
    if args is None:
        return task.apply_async(**options)
    return task.apply_async(args=args, **options)


def task_send_emergency(name: str, broadcast_id: int) -> Any:
    """Send an emergency's task with the wall-clock time it was handed to the broker in its
    headers (``enqueued_at``), and log how long the broker took: with the task's own log
    line, where an emergency's time went (commit → broker → worker → LINE). Timing only,
    across processes: no decision depends on these readings."""
    enqueued_at = time.time()
    result = task_send(name, args=(broadcast_id,), headers={"enqueued_at": enqueued_at})
    logger.info(
        "emergency enqueued broadcast=%s enqueued=%.6f published=%.6f",
        broadcast_id,
        enqueued_at,
        time.time(),
    )
    return result
