"""A 承認者 logs in through the real form, is asked for the TOTP code, and lands on the
dashboard after typing it."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts import roles
from tests.broadcasts.test_otp import code
from tests.fixtures.browser import url
from tests.fixtures.users import PASSWORD

pytestmark = pytest.mark.browser


def enrolled_supervisor_logs_in(page, live_server, supervisor, settings) -> TOTPDevice:
    """A 承認者 with an authenticator app types user name and password (no code yet)."""
    settings.SECOND_FACTOR_REQUIRED_GROUPS = (roles.SUPERVISOR, roles.ADMIN)
    device = TOTPDevice.objects.create(user=supervisor, name="app", confirmed=True)
    page.goto(url(live_server, "login"))
    page.fill("#id_username", supervisor.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("#kw-login-form button[type=submit]")
    return device


def test_supervisor_types_the_code_and_reaches_the_dashboard(
    page, live_server, supervisor, settings
):
    device = enrolled_supervisor_logs_in(page, live_server, supervisor, settings)
    page.wait_for_url(url(live_server, "otp_verify") + "?next=%2F")
    assert "承認者・管理者は二要素認証が必要です" in page.content()

    page.fill("#id_token", code(device))
    page.click("main form button[type=submit]")
    page.wait_for_url(url(live_server, "broadcasts:dashboard"))


def test_a_password_alone_cannot_enrol_over_the_owners_app(page, live_server, supervisor, settings):
    """Finding 1 of issue 11, as the attacker clicked it: password → verify → setup."""
    device = enrolled_supervisor_logs_in(page, live_server, supervisor, settings)
    page.wait_for_url("**/accounts/otp/verify/**")
    page.goto(url(live_server, "otp_setup"))
    page.wait_for_url("**/accounts/otp/verify/**")
    assert "認証アプリはすでに登録されています" in page.content()
    assert "<svg" not in page.inner_html("main")  # no new secret, no QR code
    assert list(TOTPDevice.objects.filter(user=supervisor)) == [device]

    page.goto(url(live_server, "broadcasts:dashboard"))
    page.wait_for_url("**/accounts/otp/verify/**")  # still not past the second factor
    page.fill("#id_token", code(device))
    page.click("main form button[type=submit]")
    page.wait_for_url(url(live_server, "broadcasts:dashboard"))
