"""Login required everywhere except the login page, the webhook and the public pages; and
for 承認者 and 管理者, a verified second factor (TOTP) as well."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse

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


# --- idle timeout: a person's action, not a page's polling, keeps a session alive -----------
LAST_ACTIVITY_KEY = "kashiwa_last_activity"
#: Views only a page's timer calls (dashboard sections, send progress): they never count as
#: activity, so a dashboard left open does not keep a session alive forever.
POLLING_VIEWS = frozenset({"broadcasts:dashboard_part", "broadcasts:progress"})


def _is_polling(request: HttpRequest) -> bool:
    try:
        return resolve(request.path_info).view_name in POLLING_VIEWS
    except Resolver404:
        return False


class IdleTimeoutMiddleware:
    """Logs a user out after SESSION_IDLE_SECONDS without a human request. Django's own
    sliding expiry (SESSION_SAVE_EVERY_REQUEST) would count the dashboard's polls as activity;
    here only requests a person makes do. The login page then says why."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()  # the edge: the clock is read here
            last = request.session.get(LAST_ACTIVITY_KEY)
            if isinstance(last, int | float) and now - last > settings.SESSION_IDLE_SECONDS:
                logout(request)
                messages.info(
                    request,
                    f"操作がないまま{settings.SESSION_IDLE_SECONDS // 60}分が過ぎたため、ログアウトしました。"
                    "もう一度ログインしてください。",
                )
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            if not isinstance(last, int | float) or not _is_polling(request):
                request.session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)


class PasswordChangeRequiredMiddleware:
    """A user whose password an admin set chooses their own before anything else (after the
    second factor, which comes first for 承認者 and 管理者)."""

    ALLOWED = (*SECOND_FACTOR_EXEMPT_PREFIXES, "/accounts/password/change/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and getattr(user, "must_change_password", False)
            and not request.path.startswith(self.ALLOWED)
        ):
            if request.headers.get("HX-Request") or request.path.endswith((".json", ".csv")):
                return HttpResponseForbidden(
                    "パスワードの変更が必要です。画面を再読み込みしてください。",
                    content_type="text/plain; charset=utf-8",
                )
            return redirect("password_change")
        return self.get_response(request)
