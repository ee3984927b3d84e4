"""Second factor (TOTP): enrol an authenticator app, and verify a code before an
emergency approval. The time of the last verification lives in the session."""

from __future__ import annotations

import base64
import datetime as dt
import math
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from ..services import accounts

SESSION_KEY = "kashiwa_second_factor_verified_at"


class TokenForm(forms.Form):
    token = forms.RegexField(
        label="認証アプリの6桁のコード",
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": "6桁の数字を入力してください。"},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def second_factor_verified_at(request: HttpRequest) -> dt.datetime | None:
    value = request.session.get(SESSION_KEY)
    if not value:
        return None
    try:
        verified = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    max_age = dt.timedelta(seconds=settings.SECOND_FACTOR_MAX_AGE_SECONDS)
    return verified if timezone.now() - verified <= max_age else None


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return "/"


def _verified_device(request: HttpRequest) -> TOTPDevice | None:
    """The device this login verified with (django-otp), if any."""
    device = getattr(request.user, "otp_device", None)
    return device if request.user.is_verified() and isinstance(device, TOTPDevice) else None


def _mark_verified(request: HttpRequest, device: TOTPDevice) -> None:
    """The session becomes verified: a new session key (no fixation across the step-up) and
    the time of the verification for the emergency screen's five minutes."""
    otp_login(request, device)
    request.session.cycle_key()
    request.session[SESSION_KEY] = timezone.now().isoformat()


def otp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app. A user who already has one must first verify with it:
    a password alone never replaces a confirmed app (an admin resets a lost one)."""
    verified_device = _verified_device(request)
    device_id = request.session.get("kashiwa_totp_enrolment")
    device = TOTPDevice.objects.filter(pk=device_id, user=request.user, confirmed=False).first()
    try:
        if request.method == "POST" and device is not None:
            form = TokenForm(request.POST)
            if form.is_valid() and accounts.totp_device_confirm(
                user=request.user,
                device=device,
                token=form.cleaned_data["token"],
                verified_device=verified_device,
            ):
                request.session.pop("kashiwa_totp_enrolment", None)
                _mark_verified(request, device)  # the first code proved the app
                messages.success(request, gettext("認証アプリを登録しました。"))
                return redirect(_next_url(request))
            if form.is_valid():
                form.add_error(
                    "token",
                    "コードが一致しません。アプリに表示されている最新のコードを入力してください。",
                )
        else:
            form = TokenForm()
            if device is None:
                device = accounts.totp_device_start(
                    user=request.user, verified_device=verified_device
                )
                request.session["kashiwa_totp_enrolment"] = device.pk
    except accounts.AccountActionRefused as exc:
        request.session.pop("kashiwa_totp_enrolment", None)
        messages.error(request, str(exc))
        return redirect(f"{reverse('otp_verify')}?{urlencode({'next': _next_url(request)})}")
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=5, title="登録用 QR コード")
    return render(
        request,
        "registration/otp_setup.html",
        {
            "form": form,
            "qr_svg": qr_svg,
            "secret": base64.b32encode(device.bin_key).decode("ascii"),
            "next": _next_url(request),
            "required": accounts.second_factor_required(request.user),
            "replacing": verified_device is not None,
        },
    )


def _throttled_message(locked_until: dt.datetime) -> str:
    wait = max(1, math.ceil((locked_until - timezone.now()).total_seconds()))
    return (
        f"コードの誤りが続いたため、確認を一時的に止めています。{wait}秒後に、"
        "アプリに表示されている最新のコードを入力してください。"
    )


def otp_verify(request: HttpRequest) -> HttpResponse:
    has_device = TOTPDevice.objects.devices_for_user(request.user, confirmed=True).exists()
    if not has_device:
        messages.info(request, gettext("先に認証アプリを登録してください。"))
        return redirect(f"{reverse('otp_setup')}?{urlencode({'next': _next_url(request)})}")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = accounts.totp_verify(user=request.user, token=form.cleaned_data["token"])
        if result.device is not None:
            _mark_verified(request, result.device)
            messages.success(
                request,
                gettext(
                    "二要素認証を確認しました。緊急配信・時間外配信の承認に使えるのは、"
                    "この確認から5分間です（ログインは5分で切れません）。"
                ),
            )
            return redirect(_next_url(request))
        if result.locked_until is not None:
            form.add_error("token", _throttled_message(result.locked_until))
        else:
            form.add_error("token", "コードが正しくありません。もう一度入力してください。")
    return render(
        request,
        "registration/otp_verify.html",
        {
            "form": form,
            "next": _next_url(request),
            "required": accounts.second_factor_required(request.user),
        },
    )
