"""承認者 and 管理者 must verify a TOTP code after logging in (SECOND_FACTOR_REQUIRED_GROUPS);
others are not asked. The test settings turn the requirement off; these tests turn it on."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts import roles
from tests.broadcasts.test_otp import code
from tests.fixtures.users import PASSWORD


@pytest.fixture(autouse=True)
def _required(settings) -> None:
    settings.SECOND_FACTOR_REQUIRED_GROUPS = (roles.SUPERVISOR, roles.ADMIN)


def _login(client, user) -> None:
    response = client.post(
        reverse("login"), {"username": user.get_username(), "password": PASSWORD}
    )
    assert response.status_code == 302, response.content.decode()[:500]


def test_supervisor_without_a_device_is_sent_to_enrolment(client, supervisor):
    _login(client, supervisor)
    response = client.get("/calendar/")
    assert response.status_code == 302
    assert response["Location"] == reverse("otp_setup") + "?next=%2Fcalendar%2F"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "承認者・管理者は二要素認証が必要です" in page.content.decode()

    # Enrolling with the first code verifies this login too.
    device = TOTPDevice.objects.get(user=supervisor, confirmed=False)
    response = client.post(reverse("otp_setup"), {"token": code(device), "next": "/calendar/"})
    assert response["Location"] == "/calendar/"
    assert client.get("/calendar/").status_code == 200


def test_supervisor_with_a_device_verifies_then_reaches_every_page(client, supervisor):
    device = TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    _login(client, supervisor)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("otp_verify") + "?next=%2F"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "承認者・管理者は二要素認証が必要です" in page.content.decode()

    response = client.post(reverse("otp_verify"), {"token": code(device), "next": "/"})
    assert response["Location"] == "/"
    assert client.get(reverse("broadcasts:dashboard")).status_code == 200
    assert client.get(reverse("broadcasts:calendar")).status_code == 200


def test_a_new_login_must_verify_again(client, supervisor):
    device = TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    _login(client, supervisor)
    client.post(reverse("otp_verify"), {"token": code(device), "next": "/"})
    assert client.get("/").status_code == 200
    client.post(reverse("logout"))
    _login(client, supervisor)
    assert client.get("/")["Location"].startswith(reverse("otp_verify"))


def test_drafter_is_not_asked(client, drafter):
    _login(client, drafter)
    assert client.get(reverse("broadcasts:dashboard")).status_code == 200
    assert client.get(reverse("broadcasts:calendar")).status_code == 200


def test_htmx_and_data_requests_get_403(client, supervisor):
    TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    _login(client, supervisor)
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 403
    assert "二要素認証が必要です" in response.content.decode()
    assert client.get("/anything.json").status_code == 403
    assert client.get("/export.csv").status_code == 403


def test_logout_and_the_otp_pages_need_no_second_factor(client, supervisor):
    TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    _login(client, supervisor)
    assert client.get(reverse("otp_verify")).status_code == 200
    assert client.get(reverse("healthz")).status_code != 302
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert not response.wsgi_request.user.is_authenticated


def test_enrolment_page_is_reachable_without_a_device(client, supervisor):
    _login(client, supervisor)
    assert client.get(reverse("otp_setup")).status_code == 200


def test_admin_site_needs_the_second_factor(client, admin_user):
    device = TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    _login(client, admin_user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == reverse("otp_verify") + "?next=%2Fadmin%2F"
    client.post(reverse("otp_verify"), {"token": code(device), "next": "/admin/"})
    assert client.get("/admin/").status_code == 200


def test_off_when_the_setting_is_empty(client, supervisor, settings):
    settings.SECOND_FACTOR_REQUIRED_GROUPS = ()
    _login(client, supervisor)
    assert client.get(reverse("broadcasts:dashboard")).status_code == 200


def test_seed_demo_prints_the_totp_secrets_once_created(db, settings, tmp_path):
    import base64
    from io import StringIO

    from django.core.management import call_command

    settings.DATA_DIR = tmp_path
    settings.LINE_USES_SANDBOX = True
    first, second = StringIO(), StringIO()
    call_command("seed_demo", followers=3, stdout=first)
    call_command("seed_demo", followers=3, stdout=second)
    devices = TOTPDevice.objects.filter(confirmed=True)
    assert sorted(d.user.username for d in devices) == ["admin", "supervisor"]
    for device in devices:
        secret = base64.b32encode(device.bin_key).decode()
        for out in (first, second):
            assert secret in out.getvalue()
            assert device.config_url in out.getvalue()


def test_seed_demo_creates_nothing_when_connected_to_real_line(db, settings):
    from io import StringIO

    from django.core.management import call_command

    from broadcasts.models import Follower, User

    settings.LINE_USES_SANDBOX = False
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "デモデータは作成しません" in out.getvalue()
    assert not User.objects.filter(username="drafter").exists()
    assert not Follower.objects.exists()
