"""The compose forms: LINE message JSON rebuilt on the server, errors placed next to fields."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from broadcasts.content import Problem
from broadcasts.forms.compose import BroadcastForm, apply_service_problems
from broadcasts.forms.messages import build_line_message, initial_from_line, message_formset
from broadcasts.models import Category
from broadcasts.schedule import JST
from tests.factories import card_message, image_message, sticker_message, text_message

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=JST)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def formset_data(messages):
    data = {"m-TOTAL_FORMS": str(len(messages)), "m-INITIAL_FORMS": "0"}
    for index, message in enumerate(messages):
        for key, value in message.items():
            data[f"m-{index}-{key}"] = value
    return data


@pytest.mark.parametrize(
    "message",
    [
        text_message("本文\n2行目"),
        image_message(),
        sticker_message(),
        card_message(),
        card_message(
            title="",
            actions=[("申請する", "https://a.city.kashiwa.lg.jp/"), ("予約する", "tel:0471671111")],
            thumbnail="https://www.city.kashiwa.lg.jp/t.png",
        ),
    ],
)
def test_stored_messages_round_trip_through_the_form(message):
    assert build_line_message(initial_from_line(message)) == message


def test_formset_builds_line_json_in_order():
    formset = message_formset(
        formset_data(
            [
                {"kind": "sticker", "package_id": "446", "sticker_id": "1988"},
                {"kind": "text", "text": "二番目"},
            ]
        )
    )
    assert formset.is_valid(), formset.errors
    assert formset.messages() == [sticker_message(), text_message("二番目")]


def test_text_keeps_its_whitespace():
    formset = message_formset(formset_data([{"kind": "text", "text": "  字下げ\n"}]))
    assert formset.is_valid()
    assert formset.messages()[0]["text"] == "  字下げ\n"


def test_unknown_kind_is_refused_in_japanese():
    formset = message_formset(formset_data([{"kind": "video"}]))
    assert not formset.is_valid()
    assert "video" in str(formset.forms[0].errors["kind"]) or "選択" in str(
        formset.forms[0].errors["kind"]
    )


def test_sticker_ids_must_be_numbers():
    formset = message_formset(
        formset_data([{"kind": "sticker", "package_id": "abc", "sticker_id": ""}])
    )
    assert not formset.is_valid()
    assert formset.forms[0].errors["package_id"] == ["スタンプのIDは数字で指定してください。"]
    assert formset.forms[0].errors["sticker_id"] == ["スタンプのIDは数字で指定してください。"]


def test_a_fifth_button_does_not_exist_and_empty_slots_are_skipped():
    formset = message_formset(
        formset_data(
            [
                {
                    "kind": "card",
                    "card_text": "本文",
                    "action3_label": "ホームページ",
                    "action3_uri": "https://www.city.kashiwa.lg.jp/",
                }
            ]
        )
    )
    assert formset.is_valid(), formset.errors
    actions = formset.messages()[0]["template"]["actions"]
    assert actions == [
        {"type": "uri", "label": "ホームページ", "uri": "https://www.city.kashiwa.lg.jp/"}
    ]


def test_a_card_without_buttons_is_refused_next_to_the_first_button():
    formset = message_formset(formset_data([{"kind": "card", "card_text": "本文"}]))
    assert not formset.is_valid()
    assert formset.forms[0].errors["action1_label"] == ["ボタンを1つ以上追加してください。"]


def test_six_forms_are_refused_with_a_japanese_message():
    formset = message_formset(formset_data([{"kind": "text", "text": "x"}] * 6))
    assert not formset.is_valid()
    assert formset.non_form_errors() == [
        "メッセージは1回の配信につき5件までです。不要なメッセージを削除してください。"
    ]
    assert len(formset.forms) == 6


def test_no_forms_is_refused():
    formset = message_formset(formset_data([]))
    assert not formset.is_valid()
    assert formset.non_form_errors() == ["メッセージを1件以上作成してください。"]


def broadcast_data(**overrides):
    data = {
        "title": "件名",
        "categories": [Category.objects.get(code="childcare_education").pk],
        "audience": "all",
        "timing": "asap",
        "priority": "normal",
        "notify": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_asap_ignores_a_leftover_time(db):
    form = BroadcastForm(broadcast_data(requested_at="2026-11-24T09:00"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["requested_at"] is None


def test_a_time_must_be_given_when_chosen(db):
    form = BroadcastForm(broadcast_data(timing="at"))
    assert not form.is_valid()
    assert form.errors["requested_at"] == [
        "配信希望日時を入力するか、「配信可能になり次第」を選んでください。"
    ]


def test_a_requested_time_is_japan_time(db):
    form = BroadcastForm(broadcast_data(timing="at", requested_at="2026-12-01T08:30"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["requested_at"] == dt.datetime(2026, 12, 1, 8, 30, tzinfo=JST)


def test_a_past_time_is_refused(db):
    form = BroadcastForm(broadcast_data(timing="at", requested_at="2026-11-25T09:59"))
    assert not form.is_valid()
    assert "過去の日時です" in form.errors["requested_at"][0]


def test_a_garbled_time_is_refused_in_japanese(db):
    form = BroadcastForm(broadcast_data(timing="at", requested_at="来週"))
    assert not form.is_valid()
    assert form.errors["requested_at"] == ["日時の形式が正しくありません（例: 2026-12-01 10:00）。"]


def test_no_category_is_refused(db):
    form = BroadcastForm(broadcast_data(categories=None))
    assert not form.is_valid()
    assert form.errors["categories"] == ["カテゴリを1つ以上選んでください。"]


def test_the_emergency_category_needs_a_reason(db):
    form = BroadcastForm(broadcast_data(categories=[Category.objects.get(code="emergency").pk]))
    assert not form.is_valid()
    assert "緊急配信の理由を入力してください" in form.errors["emergency_reason"][0]


def test_notification_off(db):
    form = BroadcastForm(broadcast_data(notify=None))
    formset = message_formset(formset_data([{"kind": "text", "text": "x"}]))
    assert form.is_valid() and formset.is_valid()
    assert form.service_kwargs(formset)["notification_disabled"] is True


def test_service_problems_are_placed_next_to_fields(db):
    form = BroadcastForm(broadcast_data())
    formset = message_formset(formset_data([{"kind": "text", "text": "【訓練】です"}]))
    assert form.is_valid() and formset.is_valid()
    apply_service_problems(
        form,
        formset,
        [
            Problem("messages", "本番の配信に「【訓練】」は使えません。"),
            Problem("messages[0].text", "本文の問題"),
            Problem("emergency_reason", "緊急配信の理由を入力してください。"),
        ],
    )
    assert "本番の配信に「【訓練】」は使えません。" in formset.non_form_errors()
    assert formset.forms[0].errors["text"] == ["本文の問題"]
    assert form.errors["emergency_reason"] == ["緊急配信の理由を入力してください。"]
