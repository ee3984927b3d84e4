"""EMAIL_URL becomes Django's EMAIL_* settings; a bad one stops start-up with one clear line."""

from __future__ import annotations

import pytest

from kashiwa.settings import env

CONSOLE = "django.core.mail.backends.console.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def test_without_email_url_the_embedded_default_prints_mail():
    assert env.email(None, CONSOLE)["EMAIL_BACKEND"] == CONSOLE


def test_submission_url_with_credentials():
    config = env.email("submission://alerts%40city:p%40ss@mail.city.kashiwa.lg.jp", CONSOLE)
    assert config == {
        "EMAIL_BACKEND": SMTP,
        "EMAIL_HOST": "mail.city.kashiwa.lg.jp",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "alerts@city",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
    }


def test_smtps_and_explicit_port():
    config = env.email("smtps://mail.example.lg.jp:2465", CONSOLE)
    assert (config["EMAIL_PORT"], config["EMAIL_USE_SSL"], config["EMAIL_USE_TLS"]) == (
        2465,
        True,
        False,
    )


@pytest.mark.parametrize("url", ["http://mail.example.lg.jp", "smtp://", "smtp://host:port"])
def test_a_bad_email_url_is_a_config_error(url):
    with pytest.raises(env.ConfigError, match="EMAIL_URL"):
        env.email(url, CONSOLE)
