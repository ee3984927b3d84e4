"""Staff accounts: the TOTP second factor (django-otp) and admins' powers over accounts, audited.

The rules an insider with one account must not get around:

* a confirmed authenticator app is added to or replaced only by a login that has already
  verified with it (``verified_device``); no login path deletes or replaces it otherwise;
* a lost app is reset by another admin (never by the user themself), with an audit row and a
  notice to the user and to the other admins; the user enrols again at the next login;
* an admin who sets another user's password makes that user choose a new one at the next
  login (and, as every login, verify the second factor again).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django_otp.models import VerifyNotAllowed
from django_otp.plugins.otp_totp.models import TOTPDevice

from .. import permissions, roles
from ..models import User
from .audit import audit_record


class AccountActionRefused(permissions.BroadcastPermissionDenied):
    """The actor may not do this to this account (message in Japanese for the screen)."""


def second_factor_required(user: User) -> bool:
    """Whether this user must verify a TOTP code after logging in (settings.
    SECOND_FACTOR_REQUIRED_GROUPS: 承認者 and 管理者)."""
    groups = getattr(settings, "SECOND_FACTOR_REQUIRED_GROUPS", ())
    if not groups or not user.is_authenticated:
        return False
    return user.groups.filter(name__in=groups).exists()


def _confirmed(user: User):  # type: ignore[no-untyped-def]
    return TOTPDevice.objects.filter(user=user, confirmed=True)


def _may_enrol(user: User, verified_device: TOTPDevice | None) -> bool:
    """A user without a confirmed app may enrol; one with an app only from a login that
    verified with that very app."""
    confirmed = _confirmed(user)
    if not confirmed.exists():
        return True
    return verified_device is not None and confirmed.filter(pk=verified_device.pk).exists()


ENROLMENT_REFUSED = (
    "認証アプリはすでに登録されています。登録済みのアプリのコードで確認してから変更してください。"
    "アプリをなくした場合は、管理者にリセットを依頼してください。"
)


@transaction.atomic
def totp_device_start(*, user: User, verified_device: TOTPDevice | None) -> TOTPDevice:
    """A fresh unconfirmed device for enrolment (earlier unconfirmed ones are replaced).

    Refused while the user has a confirmed device this login has not verified with."""
    if not _may_enrol(user, verified_device):
        raise AccountActionRefused(ENROLMENT_REFUSED)
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="認証アプリ", confirmed=False)


@transaction.atomic
def totp_device_confirm(
    *, user: User, device: TOTPDevice, token: str, verified_device: TOTPDevice | None
) -> bool:
    """Confirm enrolment with the first code from the app. Replaces the older app only when
    this login verified with it (checked again here, not only when enrolment started)."""
    # Lock the user's devices so that two confirmations cannot interleave.
    list(TOTPDevice.objects.select_for_update().filter(user=user))
    if not _may_enrol(user, verified_device):
        raise AccountActionRefused(ENROLMENT_REFUSED)
    if device.user_id != user.pk or device.confirmed or not device.verify_token(token.strip()):
        return False
    replaced = list(_confirmed(user).exclude(pk=device.pk).values_list("pk", flat=True))
    TOTPDevice.objects.filter(pk__in=replaced).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    audit_record(
        verb="second_factor_enrolled", actor=user, data={"device": device.pk, "replaced": replaced}
    )
    return True


@dataclass(frozen=True)
class VerifyResult:
    """A TOTP check: the device that accepted the code, or why not (``locked_until`` when
    django-otp throttles after wrong codes)."""

    device: TOTPDevice | None
    locked_until: dt.datetime | None = None


def totp_verify(*, user: User, token: str) -> VerifyResult:
    """The confirmed device that accepts this code, if any. After a wrong code django-otp
    refuses every code for a growing delay (1 s, 2 s, 4 s …): the result says until when."""
    locked_until: dt.datetime | None = None
    for device in _confirmed(user):
        allowed, info = device.verify_is_allowed()
        if not allowed:
            if info and info.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS:
                until = info.get("locked_until")
                locked_until = max(filter(None, [locked_until, until]), default=None)
            continue
        if device.verify_token(token.strip()):
            audit_record(verb="second_factor_verified", actor=user, data={"device": device.pk})
            return VerifyResult(device)
    audit_record(
        verb="second_factor_failed",
        actor=user,
        data={"throttled": locked_until is not None},
    )
    return VerifyResult(None, locked_until=locked_until)


def _admins_other_than(*users: User) -> list[str]:
    return list(
        User.objects.filter(is_active=True, groups__name=roles.ADMIN)
        .exclude(pk__in=[u.pk for u in users])
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )


def _notify(*, subject: str, body: str, to: list[str]) -> None:
    recipients = [address for address in to if address]
    if recipients:
        transaction.on_commit(
            lambda: send_mail(subject, body, None, recipients, fail_silently=True)
        )


@transaction.atomic
def second_factor_reset(*, user: User, actor: User) -> int:
    """An admin resets another user's lost authenticator app. The user's sessions lose their
    verification at once (django-otp no longer finds the device) and the user must enrol again
    at the next login. Returns how many devices were removed."""
    if not permissions.can_manage_accounts(actor):
        raise AccountActionRefused("二要素認証をリセットする権限がありません。")
    if actor.pk == user.pk:
        raise AccountActionRefused(
            "自分の二要素認証はリセットできません。別の管理者に依頼してください。"
        )
    devices = list(TOTPDevice.objects.select_for_update().filter(user=user))
    TOTPDevice.objects.filter(pk__in=[d.pk for d in devices]).delete()
    audit_record(
        verb="second_factor_reset",
        actor=actor,
        comment="管理者が二要素認証（認証アプリ）をリセットしました。",
        data={"user": user.username, "devices": len(devices)},
    )
    text = (
        f"{actor} さんが {user} さん（{user.username}）の認証アプリの登録をリセットしました。\n"
        "次回のログインで認証アプリを登録し直してください。"
        "心当たりがない場合は、すぐに情報政策課に連絡してください。"
    )
    _notify(
        subject="【柏市 LINE 配信管理】二要素認証がリセットされました", body=text, to=[user.email]
    )
    _notify(
        subject="【柏市 LINE 配信管理】職員の二要素認証がリセットされました",
        body=text,
        to=_admins_other_than(user, actor),
    )
    return len(devices)


@transaction.atomic
def password_set_by_admin(*, user: User, actor: User, password: str) -> None:
    """An admin sets another user's password (a forgotten one). The user must choose their own
    at the next login; every session of theirs ends (Django ties sessions to the password)."""
    if not permissions.can_manage_accounts(actor):
        raise AccountActionRefused("パスワードを設定する権限がありません。")
    if actor.pk == user.pk:
        raise AccountActionRefused("自分のパスワードは「パスワードの変更」から変更してください。")
    user = User.objects.select_for_update().get(pk=user.pk)
    user.set_password(password)
    user.must_change_password = True
    user.save(update_fields=["password", "must_change_password"])
    audit_record(
        verb="password_set_by_admin",
        actor=actor,
        comment="管理者がパスワードを設定しました。本人は次回ログイン時に変更が必要です。",
        data={"user": user.username},
    )
    text = (
        f"{actor} さんが {user} さん（{user.username}）のパスワードを設定しました。\n"
        "次回のログインで新しいパスワードへの変更が必要です。"
    )
    _notify(subject="【柏市 LINE 配信管理】パスワードが設定されました", body=text, to=[user.email])
    _notify(
        subject="【柏市 LINE 配信管理】職員のパスワードが設定されました",
        body=text,
        to=_admins_other_than(user, actor),
    )


@transaction.atomic
def password_changed_by_user(*, user: User) -> None:
    """The user chose a new password themself: the admin-set one is gone."""
    if user.must_change_password:
        user.must_change_password = False
        user.save(update_fields=["must_change_password"])
    audit_record(verb="password_changed", actor=user)


@transaction.atomic
def login_unlock(*, user: User, actor: User) -> int:
    """An admin lifts the login lockouts of a user (every address), audited. Returns how many
    lockout records were removed."""
    from axes.utils import reset

    if not permissions.can_manage_accounts(actor):
        raise AccountActionRefused("ログイン制限を解除する権限がありません。")
    removed = reset(username=user.get_username())
    audit_record(
        verb="login_unlocked",
        actor=actor,
        comment="管理者がログイン制限を解除しました。",
        data={"user": user.username, "records": removed},
    )
    return removed


# --- login throttle per account (no hard lock) -----------------------------------------------
def _throttle_keys(username: str) -> tuple[str, str]:
    name = username.strip().lower()[:150]
    return f"login:failures:{name}", f"login:last-try:{name}"


def login_failure_record(*, username: str) -> None:
    """Count a wrong password for this account, whatever the address (15-minute window)."""
    failures, _ = _throttle_keys(username)
    if cache.add(failures, 1, timeout=settings.LOGIN_THROTTLE_WINDOW_SECONDS):
        return
    try:
        cache.incr(failures)
    except ValueError:  # expired between add and incr
        cache.add(failures, 1, timeout=settings.LOGIN_THROTTLE_WINDOW_SECONDS)


def login_throttle_wait(*, username: str, now: float) -> int:
    """Seconds this login attempt must wait (0: go ahead). After many wrong passwords for one
    account from anywhere, the account takes one try per LOGIN_THROTTLE_INTERVAL_SECONDS:
    guessing from many addresses is slowed to a crawl, while the owner, who knows the
    password, gets in after at most a few seconds. Never a hard lock."""
    failures_key, last_key = _throttle_keys(username)
    failures = cache.get(failures_key) or 0
    if failures < settings.LOGIN_THROTTLE_AFTER_FAILURES:
        return 0
    interval = settings.LOGIN_THROTTLE_INTERVAL_SECONDS
    last = cache.get(last_key)
    if last is not None and now - last < interval:
        return max(1, math.ceil(interval - (now - last)))
    cache.set(last_key, now, timeout=interval * 2)
    return 0
