"""Staff accounts: the TOTP second factor (django-otp), audited."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from ..models import User
from .audit import audit_record


def second_factor_required(user: User) -> bool:
    """Whether this user must verify a TOTP code after logging in (settings.
    SECOND_FACTOR_REQUIRED_GROUPS: 承認者 and 管理者)."""
    groups = getattr(settings, "SECOND_FACTOR_REQUIRED_GROUPS", ())
    if not groups or not user.is_authenticated:
        return False
    return user.groups.filter(name__in=groups).exists()


@transaction.atomic
def totp_device_start(*, user: User) -> TOTPDevice:
    """A fresh unconfirmed device for enrolment (earlier unconfirmed ones are replaced)."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="認証アプリ", confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: User, device: TOTPDevice, token: str) -> bool:
    """Confirm enrolment with the first code from the app; replaces older devices."""
    if device.user_id != user.pk or not device.verify_token(token.strip()):
        return False
    TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    audit_record(verb="second_factor_enrolled", actor=user, data={"device": device.pk})
    return True


def totp_verify(*, user: User, token: str) -> TOTPDevice | None:
    """The confirmed device that accepts this code, if any (django-otp throttles guesses)."""
    for device in TOTPDevice.objects.devices_for_user(user, confirmed=True):
        if device.verify_token(token.strip()):
            audit_record(verb="second_factor_verified", actor=user, data={"device": device.pk})
            return device
    audit_record(verb="second_factor_failed", actor=user)
    return None
