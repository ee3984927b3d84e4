"""WSGI entry point. LINE's webhook POSTs go straight to ``broadcasts.views.webhook.wsgi_webhook``
(see its module docstring for why); everything else is Django with all its middleware."""

import importlib
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.dev")
django_application = get_wsgi_application()

from broadcasts.views.webhook import WEBHOOK_PATH, wsgi_webhook  # noqa: E402  (needs Django set up)


def _load_what_the_first_enqueue_needs() -> None:
    """Import, now, what a web process's first enqueue would otherwise import: the task
    modules (``services/enqueue.py`` loads them by name) and the broker's transport (kombu's
    Redis transport and redis-py). Measured: the first emergency published by a fresh web
    process took 170–210 ms, nearly all imports; the second 0.6 ms. With ``--preload``
    (the Procfile) this runs once in gunicorn's master and every web process inherits the
    modules. Imports only: the broker connection is still made after fork, by the process
    that publishes (STYLE.md: per-process resources after fork)."""
    from kombu import Connection
    from kombu.transport import get_transport_cls

    from kashiwa.celery import app

    importlib.import_module("broadcasts.tasks")
    get_transport_cls(Connection(app.conf.broker_url).transport_cls)


_load_what_the_first_enqueue_needs()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == WEBHOOK_PATH:
        return wsgi_webhook(environ, start_response)
    return django_application(environ, start_response)
