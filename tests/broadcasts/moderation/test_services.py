"""Moderation services (policy 6): keep, flag by rules, act, audit, purge after retention."""

from __future__ import annotations

import datetime as dt

import pytest

from broadcasts.models import (
    BroadcastEvent,
    CitizenMessage,
    ModerationMeasure,
    ModerationRule,
    ProhibitedItem,
)
from broadcasts.permissions import BroadcastPermissionDenied
from broadcasts.selectors import moderation as sel
from broadcasts.services import moderation
from broadcasts.services.moderation import ModerationInvalid

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2027, 2, 26, 1, 30, tzinfo=dt.UTC)  # a Friday, 10:30 in Japan
USER = "U" + "a1" * 16


def receive(text: str, *, at: dt.datetime = T0, event_id: str = "ev-1", user: str = USER) -> bool:
    return moderation.citizen_message_receive(
        webhook_event_id=event_id, line_user_id=user, message_type="text", text=text, at=at
    )


def test_the_seed_has_the_policys_fifteen_items_in_its_own_words():
    from broadcasts.policy import POLICY_FILE

    policy_text = POLICY_FILE.read_text(encoding="utf-8")
    items = list(ProhibitedItem.objects.order_by("number"))
    assert [i.number for i in items] == list(range(1, 16))
    for item in items:
        assert f"({item.number}) {item.text}" in policy_text


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("市長は無能だ、税金泥棒", 2),
        ("次の選挙では〇〇党に清き一票を！投票してください", 3),
        ("副業で月50万稼げる！詳しくは https://example.com/money", 5),
        ("隣の山田さんの電話は 090-1234-5678 です", 9),
        ("ここを見て https://bad.example.net/x", 14),
    ],
)
def test_a_prohibited_message_is_kept_and_flagged_by_the_seeded_rules(text, number):
    assert receive(text) is False
    message = CitizenMessage.objects.get(webhook_event_id="ev-1")
    assert message.text == text
    assert message.line_user_id == USER
    assert message.flag_source == CitizenMessage.FlagSource.RULE
    assert number in {hit["item"] for hit in message.rule_hits}
    assert message.item is not None
    event = BroadcastEvent.objects.get(verb="citizen_message_auto_flagged")
    assert event.data["message"] == message.pk
    assert event.actor is None


def test_an_ordinary_message_is_kept_unflagged_and_links_to_the_city_are_fine():
    receive("ごみの収集日を教えてください https://www.city.kashiwa.lg.jp/gomi/")
    message = CitizenMessage.objects.get()
    assert message.item is None and message.rule_hits == []
    assert not BroadcastEvent.objects.filter(verb="citizen_message_auto_flagged").exists()


def test_keywords_match_whatever_the_width_and_case():
    receive("ＦＸで稼げる")  # full-width letters, rule word 稼げる
    assert CitizenMessage.objects.get().item.number == 5


def test_storing_the_same_event_twice_keeps_one_row():
    receive("副業で稼げる")
    receive("副業で稼げる")
    assert CitizenMessage.objects.count() == 1
    assert BroadcastEvent.objects.filter(verb="citizen_message_auto_flagged").count() == 1


def test_an_admin_edited_rule_flags_what_it_names(admin_user):
    item = ProhibitedItem.objects.get(number=7)
    moderation.moderation_rule_save(
        rule=ModerationRule(name="騒音の語句", kind="keyword", item=item, patterns="爆竹"),
        actor=admin_user,
    )
    receive("夜中に爆竹を鳴らそう")
    assert CitizenMessage.objects.get().item.number == 7
    assert BroadcastEvent.objects.filter(verb="moderation_rule_created", actor=admin_user).exists()


def test_a_broken_pattern_is_refused_with_a_japanese_message(admin_user):
    item = ProhibitedItem.objects.get(number=9)
    with pytest.raises(ModerationInvalid, match="正規表現"):
        moderation.moderation_rule_save(
            rule=ModerationRule(name="壊れた", kind="pattern", item=item, patterns="(abc"),
            actor=admin_user,
        )


def test_a_reviewer_flags_notes_suppresses_and_records_a_measure_each_audited(reviewer):
    receive("ちょっと聞きたいのですが")
    message = CitizenMessage.objects.get()
    item = ProhibitedItem.objects.get(number=2)

    moderation.citizen_message_flag(message=message, item=item, actor=reviewer, now=T0)
    moderation.citizen_message_note(message=message, note="何度も送ってくる", actor=reviewer)
    suppression = moderation.reply_suppress(
        line_user_id=USER,
        days=7,
        reason="誹謗中傷の繰り返し",
        message=message,
        actor=reviewer,
        now=T0,
    )
    moderation.moderation_measure_record(
        message=message,
        kind=ModerationMeasure.Kind.BLOCKED,
        detail="",
        actor=reviewer,
        now=T0,
    )

    message.refresh_from_db()
    assert message.item == item and message.flagged and message.flag_source == "staff"
    assert message.flagged_by == reviewer and message.note == "何度も送ってくる"
    assert suppression.until == T0 + dt.timedelta(days=7)
    measure = ModerationMeasure.objects.get()
    assert measure.get_kind_display() == "LINE 公式アカウント管理画面でブロック済み"
    assert measure.item == item and measure.line_user_id == USER
    verbs = set(BroadcastEvent.objects.filter(actor=reviewer).values_list("verb", flat=True))
    assert verbs == {
        "citizen_message_flagged",
        "citizen_message_noted",
        "reply_suppressed",
        "moderation_measure_recorded",
    }


def test_while_suppressed_the_hook_says_so_and_the_message_is_still_kept(reviewer):
    receive("一通目", event_id="ev-1")
    moderation.reply_suppress(line_user_id=USER, days=3, reason="", actor=reviewer, now=T0)
    assert receive("二通目", event_id="ev-2", at=T0 + dt.timedelta(days=1)) is True
    assert CitizenMessage.objects.get(webhook_event_id="ev-2").replies_suppressed
    # another citizen is answered as before
    assert receive("別の人", event_id="ev-3", user="U" + "b2" * 16) is False
    # after the period, replies resume
    assert receive("四日後", event_id="ev-4", at=T0 + dt.timedelta(days=3, seconds=1)) is False


def test_unflagging_takes_the_message_out_of_the_flagged_first_order(reviewer):
    receive("副業で稼げる", event_id="spam")
    receive("こんにちは", event_id="hello", at=T0 + dt.timedelta(minutes=1))
    first = sel.inbox(sel.InboxFilter()).first()
    assert first.webhook_event_id == "spam" and first.flagged
    moderation.citizen_message_unflag(message=first, actor=reviewer, now=T0)
    assert sel.inbox(sel.InboxFilter()).first().webhook_event_id == "hello"
    assert not CitizenMessage.objects.get(webhook_event_id="spam").flagged


def test_a_lifted_suppression_no_longer_stops_replies(reviewer):
    suppression = moderation.reply_suppress(
        line_user_id=USER, days=30, reason="", actor=reviewer, now=T0
    )
    moderation.reply_suppression_lift(
        suppression=suppression, actor=reviewer, now=T0 + dt.timedelta(hours=1)
    )
    assert receive("もう一度", at=T0 + dt.timedelta(hours=2)) is False
    assert BroadcastEvent.objects.filter(verb="reply_suppression_lifted").exists()


@pytest.mark.parametrize("days", [0, -1, 366])
def test_suppression_days_out_of_range_are_refused(reviewer, days):
    with pytest.raises(ModerationInvalid):
        moderation.reply_suppress(line_user_id=USER, days=days, reason="", actor=reviewer, now=T0)


def test_a_drafter_cannot_act_on_citizens_messages(drafter):
    receive("こんにちは")
    message = CitizenMessage.objects.get()
    with pytest.raises(BroadcastPermissionDenied):
        moderation.citizen_message_flag(
            message=message, item=ProhibitedItem.objects.get(number=2), actor=drafter, now=T0
        )
    with pytest.raises(BroadcastPermissionDenied):
        moderation.reply_suppress(line_user_id=USER, days=1, reason="", actor=drafter, now=T0)


def test_messages_are_purged_after_the_retention_and_the_run_is_audited(reviewer, admin_user):
    receive("古い 090-1234-5678", event_id="old", at=T0)
    receive("新しい", event_id="new", at=T0 + dt.timedelta(days=20))
    old = CitizenMessage.objects.get(webhook_event_id="old")
    moderation.moderation_measure_record(
        message=old, kind="blocked", detail="", actor=reviewer, now=T0
    )

    # 30 days (the default) after the first: nothing older than 30 days yet
    assert moderation.citizen_messages_purge(now=T0 + dt.timedelta(days=30)) == 0
    deleted = moderation.citizen_messages_purge(now=T0 + dt.timedelta(days=30, seconds=1))
    assert deleted == 1
    assert list(CitizenMessage.objects.values_list("webhook_event_id", flat=True)) == ["new"]
    # the 措置 stays, without the text
    measure = ModerationMeasure.objects.get()
    assert measure.message is None and measure.line_user_id == USER
    runs = BroadcastEvent.objects.filter(verb="data_purged").order_by("id")
    assert [r.data["deleted"] for r in runs] == [0, 1]
    assert all(r.data["job"] == "citizen_messages" for r in runs)

    # the city shortens the retention to 7 days: the newer one goes at the next run
    moderation.moderation_settings_save(
        retention_days=7, default_suppression_days=7, actor=admin_user
    )
    assert moderation.citizen_messages_purge(now=T0 + dt.timedelta(days=27, seconds=1)) == 1
    assert not CitizenMessage.objects.exists()


def test_personal_data_is_masked_for_lists():
    masked = sel.mask_personal_data(
        "山田です。電話 090-1234-5678、mail yamada@example.jp、番号 1234 5678 9012、"
        "柏市柏5丁目10番1号"
    )
    for secret in ("090-1234-5678", "yamada@example.jp", "1234 5678 9012", "5丁目10番1号"):
        assert secret not in masked
    assert masked.startswith("山田です。")
    assert "＊＊＊" in masked


def test_the_purge_task_is_in_beat_and_registered():
    from django.conf import settings

    from kashiwa.celery import app

    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "broadcasts.tasks.moderation.purge_citizen_messages" in names
    app.loader.import_default_modules()
    assert "broadcasts.tasks.moderation.purge_citizen_messages" in app.tasks
