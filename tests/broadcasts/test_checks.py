"""The pre-send checklist (broadcasts/checks.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from broadcasts import checks
from broadcasts.checks import ERROR, OK, WARN, run_checks
from broadcasts.line.errors import LinePermanentError, LineTemporaryError
from broadcasts.models import AllowedDomain, Broadcast, Category
from broadcasts.schedule import JST
from tests.factories import (
    BroadcastFactory,
    SentBroadcastFactory,
    card_message,
    image_message,
    text_message,
)

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=JST)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def by_label(results):
    return {r.label: r for r in results}


def run(messages, *, category_codes=("childcare_education",), validate=False, **kwargs):
    ids = list(Category.objects.filter(code__in=category_codes).values_list("id", flat=True))
    return by_label(
        run_checks(
            messages=messages,
            audience=kwargs.pop("audience", Broadcast.Audience.ALL),
            category_ids=ids,
            now=NOW,
            validate_with_line=validate,
            **kwargs,
        )
    )


# --- LINE's validate endpoint -----------------------------------------------------------------


def test_line_validate_passes_on_the_sandbox(db, line_sandbox):
    results = run([text_message(), image_message(), card_message()], validate=True)
    assert results["LINE の事前確認"].level == OK
    paths = [r.path for r in line_sandbox.requests()]
    assert "/v2/bot/message/validate/broadcast" in paths


def test_subscribers_are_validated_for_multicast(db, line_sandbox):
    run([text_message()], validate=True, audience=Broadcast.Audience.SUBSCRIBERS)
    paths = [r.path for r in line_sandbox.requests()]
    assert "/v2/bot/message/validate/multicast" in paths


def test_line_refusal_is_an_error_with_lines_message(db, monkeypatch):
    class Refusing:
        def validate(self, *, audience, messages):
            raise LinePermanentError(
                "The request body has 1 error(s)",
                status=400,
                details=[
                    {"message": "Length must be between 0 and 5000", "property": "messages[0].text"}
                ],
            )

    monkeypatch.setattr("broadcasts.line.gateway.get_gateway", lambda: Refusing())
    result = run([text_message()], validate=True)["LINE の事前確認"]
    assert result.level == ERROR
    assert "Length must be between 0 and 5000" in result.detail
    assert "messages[0].text" in result.detail


def test_line_unreachable_is_a_warning_not_a_crash(db, monkeypatch):
    class Down:
        def validate(self, *, audience, messages):
            raise LineTemporaryError("LINE に接続できません: ConnectionRefusedError")

    monkeypatch.setattr("broadcasts.line.gateway.get_gateway", lambda: Down())
    result = run([text_message()], validate=True)["LINE の事前確認"]
    assert result.level == WARN
    assert "LINE に接続できないため確認できませんでした" in result.detail


def test_line_is_not_asked_about_messages_we_already_know_are_bad(db, monkeypatch):
    monkeypatch.setattr(
        "broadcasts.line.gateway.get_gateway", lambda: pytest.fail("should not call LINE")
    )
    results = run([text_message("")], validate=True)
    assert results["メッセージの形式"].level == ERROR


# --- lengths and images ---------------------------------------------------------------------


def test_text_length_in_utf16_units(db):
    ok = run([text_message("あ" * 4998 + "😀")])["文字数"]
    assert ok.level == OK and "5,000 / 5,000" in ok.detail
    bad = run([text_message("あ" * 4999 + "😀")])["文字数"]
    assert bad.level == ERROR and "5,001 / 5,000" in bad.detail


def test_images_must_be_https_jpeg_or_png(db):
    assert run([image_message()])["画像の URL（https・JPEG/PNG）"].level == OK
    http = run([image_message(url="http://www.city.kashiwa.lg.jp/a.jpg")])
    assert http["画像の URL（https・JPEG/PNG）"].level == ERROR
    gif = run([image_message(url="https://www.city.kashiwa.lg.jp/a.gif")])
    assert ".jpg / .png ではありません" in gif["画像の URL（https・JPEG/PNG）"].detail


# --- links ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seeded_city_domains():
    assert set(AllowedDomain.objects.values_list("domain", flat=True)) >= {
        "city.kashiwa.lg.jp",
        "www.city.kashiwa.lg.jp",
        "kashiwa.lg.jp",
    }


def test_links_to_city_domains_pass(db):
    messages = [
        text_message(
            "詳しくは https://www.city.kashiwa.lg.jp/kosodate/index.html をご覧ください。"
        ),
        card_message(actions=[("予約する", "https://yoyaku.city.kashiwa.lg.jp/")]),
    ]
    assert run(messages)["リンク先のドメイン"].level == OK


def test_links_elsewhere_are_flagged(db):
    messages = [
        text_message("申込は https://forms.example.com/kashiwa から"),
        card_message(actions=[("ホームページ", "https://kashiwa.lg.jp.evil.example/")]),
    ]
    result = run(messages)["リンク先のドメイン"]
    assert result.level == WARN
    assert "https://forms.example.com/kashiwa" in result.detail
    assert "https://kashiwa.lg.jp.evil.example/" in result.detail


def test_an_admin_added_domain_is_allowed(db):
    AllowedDomain.objects.create(domain="pref.chiba.lg.jp", note="千葉県")
    assert run([text_message("https://www.pref.chiba.lg.jp/")])["リンク先のドメイン"].level == OK


# --- personal data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, found",
    [
        ("問い合わせは 04-7167-1111 まで", "04-7167-1111"),
        ("担当 090-1234-5678", "090-1234-5678"),
        ("携帯 09012345678", "09012345678"),
        ("ｍａｉｌ: taro.kashiwa@example.jp", "taro.kashiwa@example.jp"),
        ("番号 123456789012 を", "123456789012"),
        ("番号 1234-5678-9012 を", "1234-5678-9012"),
        ("全角 ０４－７１６７－１１１１", "04-7167-1111"),
    ],
)
def test_possible_personal_data_is_flagged(db, text, found):
    result = run([text_message(text)])["個人情報の可能性（ポリシー10）"]
    assert result.level == WARN
    assert found in result.detail


def test_ordinary_numbers_are_not_personal_data(db):
    text = "令和8年12月1日 10:00〜12:00、定員30名、参加費500円。"
    assert run([text_message(text)])["個人情報の可能性（ポリシー10）"].level == OK


# --- duplicates and fatigue -------------------------------------------------------------------


def test_duplicate_of_a_send_in_the_last_24_hours(db):
    SentBroadcastFactory(
        title="昨日の配信", messages=[text_message("同じ文面")], sent_at=NOW - dt.timedelta(hours=5)
    )
    result = run([text_message("同じ文面"), image_message()])["24時間以内の重複配信"]
    assert result.level == WARN
    assert "昨日の配信" in result.detail and "同じ文面" in result.detail


def test_identical_content_is_named_as_such(db):
    SentBroadcastFactory(messages=[image_message()], sent_at=NOW - dt.timedelta(hours=1))
    assert "同じ内容" in run([image_message()])["24時間以内の重複配信"].detail


def test_older_sends_are_not_duplicates(db):
    SentBroadcastFactory(messages=[text_message("同じ文面")], sent_at=NOW - dt.timedelta(hours=25))
    assert run([text_message("同じ文面")])["24時間以内の重複配信"].level == OK


def test_a_broadcast_is_not_its_own_duplicate(db):
    sent = SentBroadcastFactory(messages=[text_message("同じ文面")], sent_at=NOW)
    result = run([text_message("同じ文面")], exclude_id=sent.pk)["24時間以内の重複配信"]
    assert result.level == OK


def test_daily_category_fatigue(db, settings):
    for hour in (8, 9, 10):
        SentBroadcastFactory(sent_at=dt.datetime(2026, 11, 25, hour, 30, tzinfo=JST))
    result = run([text_message()], send_day=dt.date(2026, 11, 25))["カテゴリごとの1日の配信数"]
    assert result.level == WARN
    assert "子育て・教育 4件目" in result.detail
    assert (
        run([text_message()], send_day=dt.date(2026, 11, 26))["カテゴリごとの1日の配信数"].level
        == OK
    )
    settings.CATEGORY_DAILY_FATIGUE_THRESHOLD = 5
    assert (
        run([text_message()], send_day=dt.date(2026, 11, 25))["カテゴリごとの1日の配信数"].level
        == OK
    )


def test_scheduled_sends_count_towards_fatigue(db):
    for _ in range(3):
        BroadcastFactory(
            status=Broadcast.Status.SCHEDULED,
            scheduled_for=dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST),
        )
    result = run([text_message()], send_day=dt.date(2026, 11, 26))["カテゴリごとの1日の配信数"]
    assert result.level == WARN


def test_broadcast_checks_for_a_stored_broadcast(db, line_sandbox):
    broadcast = BroadcastFactory(messages=[text_message("電話 04-7167-1111")])
    results = by_label(checks.broadcast_checks(broadcast, now=NOW))
    assert results["LINE の事前確認"].level == OK
    assert results["個人情報の可能性（ポリシー10）"].level == WARN
    assert not checks.has_errors(results.values())
