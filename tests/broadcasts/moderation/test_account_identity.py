"""Policy 3: the configured channel is 「柏市役所」 @kashiwa_shi, as LINE's bot info says;
運用状況 and /healthz (details for admins) report a channel that is not."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from broadcasts.line.identity import account_identity
from line_sandbox.validation import validator_for

pytestmark = pytest.mark.django_db


def test_the_sandbox_answers_bot_info_as_line_does_and_is_the_city_by_default(line_sandbox):
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

    config = Configuration(host=line_sandbox.url, access_token=line_sandbox.token)
    with ApiClient(config) as client:
        response = MessagingApi(client).get_bot_info_with_http_info()
    raw = json.loads(response.raw_data)
    errors = list(validator_for("BotInfoResponse").iter_errors(raw))
    assert errors == []
    assert (raw["displayName"], raw["basicId"]) == ("柏市役所", "@kashiwa_shi")


def test_the_citys_channel_passes(line_sandbox):
    identity = account_identity(use_cache=False)
    assert identity.matches and identity.problem == ""


def test_another_channel_is_reported_on_ops_and_healthz(client, line_sandbox, admin_user):
    line_sandbox.state.set_bot_info(basic_id="@kashiwa_test", display_name="柏市テスト")
    client.force_login(admin_user)

    html = client.get(reverse("broadcasts:ops")).content.decode()
    assert "設定されているチャネルは「柏市テスト」@kashiwa_test です" in html
    assert "「柏市役所」@kashiwa_shi ではありません" in html
    assert 'data-testid="ops-problem"' in html
    status = client.get(reverse("broadcasts:ops"), {"format": "json"}).json()
    assert status["account"]["ok"] is False and status["healthy"] is False

    health = client.get("/healthz").json()
    assert health["account"]["ok"] is False
    assert "柏市テスト" in health["account"]["warning"]


def test_the_public_sees_no_account_details_in_healthz(client, line_sandbox):
    line_sandbox.state.set_bot_info(basic_id="@kashiwa_test", display_name="柏市テスト")
    body = client.get("/healthz", REMOTE_ADDR="203.0.113.5").json()
    assert "account" not in body and "checks" not in body


def test_the_fixture_restores_the_citys_identity(line_sandbox):
    # runs after a test that changed it (same sandbox server, restore_defaults per test)
    assert account_identity(use_cache=False).matches
