"""WSGI entry point. LINE's webhook POSTs go straight to ``broadcasts.views.webhook.wsgi_webhook``
(see its module docstring for why); everything else is Django with all its middleware."""

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.dev")
django_application = get_wsgi_application()

from broadcasts.services.enqueue import publishing_prepare  # noqa: E402
from broadcasts.views.webhook import WEBHOOK_PATH, wsgi_webhook  # noqa: E402  (needs Django set up)

# A web process's first enqueue (an emergency's, perhaps) imports nothing: with ``--preload``
# (the Procfile) this runs once in gunicorn's master and every web process inherits it.
publishing_prepare()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == WEBHOOK_PATH:
        return wsgi_webhook(environ, start_response)
    return django_application(environ, start_response)
