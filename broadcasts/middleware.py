"""Login required everywhere except the login page, the webhook and the public pages."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

PUBLIC_PREFIXES = (
    "/accounts/login/",
    "/line/webhook/",
    "/public/",
    "/static/",
    "/i18n/",
    "/healthz",
    "/admin/login/",
)


_request_user = threading.local()


def current_user() -> Any:
    """The signed-in user of the request being handled in this thread, if any: lets audit
    receivers name the admin who changed a permission in the admin screens."""
    user = getattr(_request_user, "user", None)
    return user if user is not None and user.is_authenticated else None


class LoginRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated and not request.path.startswith(PUBLIC_PREFIXES):
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        _request_user.user = request.user
        try:
            return self.get_response(request)
        finally:
            _request_user.user = None
