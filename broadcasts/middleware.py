"""Login required everywhere except the login page, the webhook and the public pages; and
for 承認者 and 管理者, a verified second factor (TOTP) as well."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import reverse

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


# Reachable before the second factor: the OTP pages themselves, logging out, and everything
# that needs no login at all.
SECOND_FACTOR_EXEMPT_PREFIXES = (
    *PUBLIC_PREFIXES,
    "/accounts/otp/",
    "/accounts/logout/",
    "/admin/logout/",
)


class SecondFactorRequiredMiddleware:
    """承認者 and 管理者 (settings.SECOND_FACTOR_REQUIRED_GROUPS) must verify a TOTP code after
    logging in: until then every page sends them to verification (or to enrolment if they
    have no authenticator app yet); htmx and JSON/CSV requests get 403. Needs django-otp's
    OTPMiddleware (``request.user.is_verified``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.user.is_authenticated
            and not request.path.startswith(SECOND_FACTOR_EXEMPT_PREFIXES)
            and not request.user.is_verified()
        ):
            from .services.accounts import second_factor_required

            if second_factor_required(request.user):
                return self._refuse(request)
        return self.get_response(request)

    def _refuse(self, request: HttpRequest) -> HttpResponse:
        from django_otp import user_has_device

        if request.headers.get("HX-Request") or request.path.endswith((".json", ".csv")):
            return HttpResponseForbidden(
                "承認者・管理者は二要素認証が必要です。画面を再読み込みしてください。",
                content_type="text/plain; charset=utf-8",
            )
        view = "otp_verify" if user_has_device(request.user, confirmed=True) else "otp_setup"
        return redirect(f"{reverse(view)}?{urlencode({'next': request.get_full_path()})}")
