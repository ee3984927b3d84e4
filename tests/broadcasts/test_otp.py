"""The TOTP second factor: enrolment and verification, with the time kept in the session."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts.models import BroadcastEvent
from broadcasts.views.otp import SESSION_KEY


def code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_enrol_then_verify(client, supervisor):
    client.force_login(supervisor)
    page = client.get(reverse("otp_setup"))
    assert page.status_code == 200
    assert "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user=supervisor, confirmed=False)

    wrong = client.post(reverse("otp_setup"), {"token": "000000"})
    assert "コードが一致しません" in wrong.content.decode()
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # guesses are throttled
    device.throttle_reset()
    response = client.post(reverse("otp_setup"), {"token": code(device), "next": "/"})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert BroadcastEvent.objects.filter(verb="second_factor_enrolled", actor=supervisor).exists()

    device.last_t = -1  # a fresh code window for the next verification
    device.save()
    response = client.post(reverse("otp_verify"), {"token": code(device), "next": "/calendar/"})
    assert response.status_code == 302
    assert response["Location"] == "/calendar/"
    verified = dt.datetime.fromisoformat(client.session[SESSION_KEY])
    assert timezone.now() - verified < dt.timedelta(seconds=5)


def test_verify_rejects_a_wrong_code_and_audits_it(client, supervisor):
    TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    client.force_login(supervisor)
    response = client.post(reverse("otp_verify"), {"token": "12345x"})
    assert "6桁の数字" in response.content.decode()
    response = client.post(reverse("otp_verify"), {"token": "123456"})
    assert "コードが正しくありません" in response.content.decode()
    assert SESSION_KEY not in client.session
    assert BroadcastEvent.objects.filter(verb="second_factor_failed", actor=supervisor).exists()


def test_verify_without_a_device_goes_to_enrolment(client, supervisor):
    client.force_login(supervisor)
    response = client.get(reverse("otp_verify"), {"next": "/x/"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("otp_setup"))


def test_open_redirects_are_refused(client, supervisor):
    device = TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    client.force_login(supervisor)
    response = client.post(
        reverse("otp_verify"), {"token": code(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"
