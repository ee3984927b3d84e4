"""The ``kashiwa`` template tags and the base layout, without a browser (fast).

Kept next to the browser tests because they check the same page chrome."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from broadcasts.models import Broadcast
from broadcasts.templatetags.kashiwa import (
    jst,
    role_names,
    status_badge,
    url_if_exists,
)


class TestJst:
    def test_formats_in_tokyo_with_kanji_weekday(self):
        # 2025-11-30 23:30 UTC is Monday 1 December 08:30 in Tokyo.
        assert jst(datetime(2025, 11, 30, 23, 30, tzinfo=UTC)) == "12/1(月) 8:30"

    def test_ignores_the_active_time_zone(self):
        with timezone.override("America/New_York"):
            assert jst(datetime(2025, 11, 29, 8, 15, tzinfo=UTC)) == "11/29(土) 17:15"

    def test_every_weekday(self):
        labels = [jst(date(2025, 12, day)) for day in range(1, 8)]
        assert labels == [
            f"12/{d}({w})" for d, w in zip(range(1, 8), "月火水木金土日", strict=True)
        ]

    def test_time_only(self):
        assert jst(datetime(2025, 11, 30, 23, 30, tzinfo=UTC), "time") == "8:30"

    def test_naive_is_read_as_tokyo_time(self):
        assert jst(datetime(2025, 12, 1, 8, 30)) == "12/1(月) 8:30"  # noqa: DTZ001

    def test_empty(self):
        assert jst(None) == ""
        assert jst("") == ""


class TestStatusBadge:
    @pytest.mark.parametrize(
        ("status", "label"),
        [
            ("draft", "下書き"),
            ("pending_review", "承認待ち"),
            ("rejected", "差し戻し"),
            ("scheduled", "配信予定"),
            ("sending", "配信中"),
            ("sent", "配信済み"),
            ("failed", "失敗"),
            ("needs_attention", "要対応"),
            ("cancelled", "取消済み"),
        ],
    )
    def test_colour_class_and_word(self, status, label):
        html = status_badge(status)
        assert html == f'<span class="badge kw-status-{status}">{label}</span>'

    def test_accepts_a_broadcast(self):
        broadcast = Broadcast(status=Broadcast.Status.SCHEDULED)
        assert status_badge(broadcast) == '<span class="badge kw-status-scheduled">配信予定</span>'

    def test_every_status_has_a_style(self):
        from django.conf import settings

        css = (settings.BASE_DIR / "static" / "css" / "kashiwa.css").read_text()
        for value in Broadcast.Status.values:
            assert f".kw-status-{value} " in css

    def test_english_label(self):
        with translation.override("en"):
            assert status_badge("sent") == '<span class="badge kw-status-sent">Sent</span>'

    def test_unknown_value_is_escaped(self):
        assert status_badge("<x>") == '<span class="badge kw-status-&lt;x&gt;">&lt;x&gt;</span>'


def test_url_if_exists():
    assert url_if_exists("broadcasts:dashboard") == "/"
    assert url_if_exists("broadcasts:no_such_page") == ""


class TestRoleNames:
    def test_roles_in_design_order(self, reviewer):
        from django.contrib.auth.models import Group

        reviewer.groups.add(Group.objects.get(name="起案者"))
        assert role_names(reviewer) == ["起案者", "広報担当"]

    def test_english(self, admin_user):
        with translation.override("en"):
            assert role_names(admin_user) == ["Administrator"]

    def test_anonymous(self):
        assert role_names(AnonymousUser()) == []
        assert role_names(None) == []


def test_messages_are_bootstrap_alerts_with_live_roles():
    messages = [
        Message(constants.SUCCESS, "保存しました"),
        Message(constants.ERROR, "送信できませんでした"),
        Message(constants.INFO, "お知らせ"),
    ]
    html = render_to_string("includes/messages.html", {"messages": messages})
    assert '<div class="alert alert-success" role="status">保存しました</div>' in html
    assert '<div class="alert alert-danger" role="alert">送信できませんでした</div>' in html
    assert '<div class="alert alert-info" role="status">お知らせ</div>' in html


class TestLayout:
    def test_login_page_is_japanese(self, client, db):
        response = client.get(reverse("login"))
        html = response.content.decode()
        assert response.status_code == 200
        assert '<html lang="ja">' in html
        assert "柏市役所" in html
        assert "@kashiwa_shi" in html
        assert "<script>" not in html  # no inline scripts (CSP)

    def test_english_nav_after_set_language(self, client, drafter):
        client.force_login(drafter)
        response = client.post(reverse("set_language"), {"language": "en", "next": "/"})
        assert response.status_code == 302

        html = client.get("/").content.decode()
        assert '<html lang="en">' in html
        assert ">Dashboard</a>" in html
        assert ">Log out</button>" in html
        assert "Connected to the sandbox" in html

    def test_no_sandbox_banner_when_connected_to_line(self, client, drafter, settings):
        settings.LINE_USES_SANDBOX = False
        client.force_login(drafter)
        html = client.get("/").content.decode()
        assert "kw-sandbox-banner" not in html

    def test_logout_is_a_post_form(self, client, drafter):
        client.force_login(drafter)
        html = client.get("/").content.decode()
        assert f'method="post" action="{reverse("logout")}"' in html


def test_user_label_object():
    # role_names needs only ``is_authenticated``, ``groups`` and ``is_superuser``.
    user = SimpleNamespace(
        is_authenticated=True,
        is_superuser=True,
        groups=SimpleNamespace(all=lambda: []),
    )
    assert role_names(user) == ["システム管理者"]
