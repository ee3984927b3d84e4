"""Policy 10: the admins' page of personal data is generated from the models, so it stays
true: a model with a personal-data field and no declaration fails here."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.urls import reverse

from broadcasts.selectors.personal_data import PERSONAL_FIELD_NAMES, declaration_of
from broadcasts.services import citizens, moderation

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2027, 2, 26, 1, 30, tzinfo=dt.UTC)


def test_every_model_with_personal_data_declares_it():
    undeclared = []
    for model in apps.get_models():
        names = {f.name for f in model._meta.get_fields()}
        found = names & PERSONAL_FIELD_NAMES
        declaration = declaration_of(model)
        if found and declaration is None:
            undeclared.append(f"{model._meta.label}: {sorted(found)}")
        if declaration is not None:
            assert found <= set(declaration.fields), (
                f"{model._meta.label} keeps {sorted(found - set(declaration.fields))} "
                "without naming them in personal_data"
            )
            for name in declaration.fields:
                model._meta.get_field(name)  # raises if the declaration names no field
    assert not undeclared, "declare personal_data on: " + "; ".join(undeclared)


def test_purge_jobs_named_by_declarations_are_scheduled():
    from django.conf import settings

    for model in apps.get_models():
        declaration = declaration_of(model)
        if declaration is not None and declaration.purge_beat:
            assert declaration.purge_beat in settings.CELERY_BEAT_SCHEDULE


def test_the_page_lists_what_where_how_long_and_the_last_purge(client, admin_user, reviewer):
    moderation.citizen_message_receive(
        webhook_event_id="e1",
        line_user_id="U" + "e5" * 16,
        message_type="text",
        text="古い",
        at=T0,
    )
    moderation.citizen_messages_purge(now=T0 + dt.timedelta(days=31))
    citizens.webhook_events_purge(now=T0)

    client.force_login(reviewer)
    assert client.get(reverse("broadcasts:personal_data")).status_code == 403

    client.force_login(admin_user)
    html = client.get(reverse("broadcasts:personal_data")).content.decode()
    row = html.split('data-table="broadcasts_citizenmessage"')[1].split("</tr>")[0]
    assert "市民からのメッセージ" in row
    assert "LINE ユーザーID、本文、メモ" in row
    assert "受信から 30 日（市が設定）" in row
    assert "6時間ごと" in row and "1 件削除" in row
    for table in (
        "broadcasts_follower",
        "broadcasts_webhookevent",
        "broadcasts_delivery",
        "broadcasts_user",
        "axes_accesslog",
    ):
        assert f'data-table="{table}"' in html
    # citizens' data comes first
    assert html.index('data-table="broadcasts_follower"') < html.index(
        'data-table="broadcasts_user"'
    )
