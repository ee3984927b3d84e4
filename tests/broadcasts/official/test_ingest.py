"""Official messages → exactly the expected drafts and links, once: the Kashiwa 大雨警報 and
its 解除, a 震度５弱 in 千葉県北西部 and its 取消, re-ingested, re-polled and after a restart;
four eyes over a draft no person wrote; hostile input refused with a log line."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.core.management import call_command

from broadcasts import permissions, roles, services, tasks
from broadcasts.models import Broadcast, BroadcastEvent, OfficialMessage, OfficialRule
from broadcasts.schedule import format_jst
from broadcasts.services.official import official_message_ingest, system_author
from tests.broadcasts.sending.helpers import approve, jst, make_followers
from tests.fixtures.users import make_user

from .samples import (
    HEAVY_RAIN,
    HEAVY_RAIN_LIFTED,
    MESSAGES,
    QUAKE_5_MINUS,
    QUAKE_CANCELLED,
    sample,
)
from .test_jma import BILLION_LAUGHS, XXE, fifty_megabytes

S = Broadcast.Status
OUT = OfficialMessage.Outcome
FILE = OfficialMessage.Source.FILE
NIGHT = jst(2026, 7, 15, 3, 13)


def ingest(name: str, now: dt.datetime = NIGHT, source: str = FILE):
    return official_message_ingest(data=sample(name), source=source, url=name, now=now)


def jma_drafts():
    return Broadcast.objects.filter(author__username=permissions.SYSTEM_AUTHOR_USERNAME)


def send(broadcast: Broadcast, supervisor, now: dt.datetime) -> Broadcast:
    approve(broadcast, supervisor, now=now)
    assert tasks.send_emergency_broadcast(broadcast.pk) == "sent"
    broadcast.refresh_from_db()
    return broadcast


@pytest.fixture
def followers(db):
    return make_followers([f"U{i:032x}" for i in range(6)], ["disaster_crime", "emergency"])


def test_the_rules_are_seeded_and_the_system_author_cannot_log_in(db):
    assert OfficialRule.objects.filter(enabled=True).count() == 9
    author = system_author()
    assert not author.is_active and not author.has_usable_password()
    assert permissions.is_system_author(author)
    assert not author.has_perm("broadcasts.approve_emergency_broadcast")


def test_heavy_rain_warning_becomes_one_emergency_draft_awaiting_a_supervisor(db, followers):
    result = ingest(HEAVY_RAIN)
    assert result.created
    message = result.message
    assert message.outcome == OUT.DRAFTED
    assert message.finding == "柏市：大雨警報（発表）"
    broadcast = message.broadcast
    assert broadcast.status == S.PENDING_REVIEW
    assert broadcast.is_emergency
    assert broadcast.audience == Broadcast.Audience.SUBSCRIBERS
    assert [c.code for c in broadcast.categories.all()] == ["disaster_crime"]
    assert broadcast.messages[0]["text"].startswith(
        "【大雨警報】\n柏市に大雨警報が発表されました。"
    )
    assert broadcast.author.username == permissions.SYSTEM_AUTHOR_USERNAME
    # Submitted through the same service as a drafter's submission: the same audit row.
    assert broadcast.events.filter(verb="submit", to_status=S.PENDING_REVIEW).count() == 1
    # The same message again (re-poll, second beat, restart): nothing new.
    again = ingest(HEAVY_RAIN, now=NIGHT + dt.timedelta(minutes=1))
    assert not again.created and again.message.pk == message.pk
    assert jma_drafts().count() == 1
    assert OfficialMessage.objects.count() == 1


def test_the_lift_updates_a_draft_that_never_went_out(db, followers):
    draft = ingest(HEAVY_RAIN).message.broadcast
    lifted = ingest(HEAVY_RAIN_LIFTED, now=jst(2026, 7, 15, 11, 41)).message
    assert lifted.outcome == OUT.UPDATED
    assert lifted.broadcast_id == draft.pk
    assert "配信が不要なら取り消してください" in lifted.reason
    draft.refresh_from_db()
    assert draft.status == S.PENDING_REVIEW
    assert draft.messages[0]["text"].startswith(
        "【大雨警報解除】\n柏市の大雨警報は解除されました。"
    )
    assert draft.events.filter(verb="edit").count() == 1  # audited as an edit by the system
    assert jma_drafts().count() == 1


def test_the_lift_of_a_sent_warning_is_a_linked_follow_up(db, followers, supervisor, line_sandbox):
    draft = ingest(HEAVY_RAIN).message.broadcast
    sent = send(draft, supervisor, now=jst(2026, 7, 15, 3, 20))
    assert sent.status == S.SENT
    lifted = ingest(HEAVY_RAIN_LIFTED, now=jst(2026, 7, 15, 11, 41)).message
    assert lifted.outcome == OUT.FOLLOW_UP
    follow_up = lifted.broadcast
    assert follow_up.parent_id == sent.pk
    assert follow_up.status == S.PENDING_REVIEW
    assert follow_up.title.startswith("【解除】")
    assert follow_up.messages[0]["text"].startswith(
        "【大雨警報解除】\n柏市の大雨警報は解除されました。"
    )
    # Re-ingesting both changes nothing.
    ingest(HEAVY_RAIN)
    ingest(HEAVY_RAIN_LIFTED)
    assert jma_drafts().count() == 2


def test_intensity_5_minus_is_an_emergency_to_all_friends(db, followers, supervisor, line_sandbox):
    message = ingest(QUAKE_5_MINUS, now=jst(2026, 7, 17, 2, 17)).message
    broadcast = message.broadcast
    assert message.rule.name.startswith("震度５弱以上")
    assert broadcast.is_emergency and broadcast.audience == Broadcast.Audience.ALL
    assert [c.code for c in broadcast.categories.all()] == ["emergency"]
    assert "千葉県北西部で震度５弱を観測しました" in broadcast.messages[0]["text"]
    # No person wrote it: any supervisor may approve, with the typed count and second factor.
    assert permissions.can_approve(supervisor, broadcast)
    with pytest.raises(services.SecondFactorRequired):
        services.broadcast_approve(
            broadcast=broadcast,
            actor=supervisor,
            now=jst(2026, 7, 17, 2, 18),
            emergency=services.EmergencyConfirmation(
                typed_count="6", second_factor_verified_at=None
            ),
        )
    sent = send(broadcast, supervisor, now=jst(2026, 7, 17, 2, 18))
    assert sent.status == S.SENT
    received = {uid for d in line_sandbox.deliveries() for uid in d.recipients}
    assert received == set(line_sandbox.state.active_follower_ids())


def test_a_reviewer_or_the_system_never_approves_an_emergency_draft(db, followers, reviewer):
    broadcast = ingest(QUAKE_5_MINUS, now=jst(2026, 7, 17, 2, 17)).message.broadcast
    assert not permissions.can_approve(reviewer, broadcast)
    assert not permissions.can_approve(system_author(), broadcast)
    with pytest.raises(services.BroadcastPermissionDenied):
        approve(broadcast, system_author(), now=jst(2026, 7, 17, 2, 18))


def test_a_supervisor_who_edits_a_jma_draft_cannot_approve_it(db, followers, supervisor):
    broadcast = ingest(QUAKE_5_MINUS, now=jst(2026, 7, 17, 2, 17)).message.broadcast
    services.broadcast_update(
        broadcast=broadcast,
        actor=supervisor,
        title=broadcast.title,
        categories=list(broadcast.categories.all()),
        messages=[{"type": "text", "text": "書き換えた文面です。"}],
        audience=broadcast.audience,
        requested_at=None,
        priority=broadcast.priority,
        emergency_reason=broadcast.emergency_reason,
        notification_disabled=False,
    )
    assert not permissions.can_approve(supervisor, broadcast)
    with pytest.raises(services.BroadcastPermissionDenied):
        approve(broadcast, supervisor, now=jst(2026, 7, 17, 2, 18))
    other = make_user("supervisor2", roles.SUPERVISOR)
    assert permissions.can_approve(other, broadcast)


def test_the_cancellation_cancels_the_pending_draft(db, followers):
    draft = ingest(QUAKE_5_MINUS, now=jst(2026, 7, 17, 2, 17)).message.broadcast
    cancelled = ingest(QUAKE_CANCELLED, now=jst(2026, 7, 17, 2, 31)).message
    assert cancelled.outcome == OUT.CANCELLED
    draft.refresh_from_db()
    assert draft.status == S.CANCELLED
    assert jma_drafts().count() == 1


def test_the_cancellation_of_a_sent_alert_is_a_linked_torikeshi(
    db, followers, supervisor, line_sandbox
):
    draft = ingest(QUAKE_5_MINUS, now=jst(2026, 7, 17, 2, 17)).message.broadcast
    sent = send(draft, supervisor, now=jst(2026, 7, 17, 2, 18))
    cancelled = ingest(QUAKE_CANCELLED, now=jst(2026, 7, 17, 2, 31)).message
    assert cancelled.outcome == OUT.FOLLOW_UP
    torikeshi = cancelled.broadcast
    assert (torikeshi.kind, torikeshi.parent_id) == (Broadcast.Kind.CANCELLATION, sent.pk)
    assert torikeshi.status == S.PENDING_REVIEW and torikeshi.is_emergency
    assert "気象庁が情報を取り消しました" in torikeshi.messages[0]["text"]
    assert torikeshi.audience == sent.audience
    ingest(QUAKE_CANCELLED, now=jst(2026, 7, 17, 2, 40))
    assert Broadcast.objects.filter(parent=sent, kind=Broadcast.Kind.CANCELLATION).count() == 1


def test_a_drill_message_never_makes_a_draft(db, followers):
    data = sample(HEAVY_RAIN).replace(
        "<Status>通常</Status>".encode(), "<Status>訓練</Status>".encode()
    )
    message = official_message_ingest(data=data, source=FILE, now=NIGHT).message
    assert message.outcome == OUT.IGNORED
    assert "訓練" in message.reason
    assert not jma_drafts().exists()


def test_samples_far_from_kashiwa_are_stored_and_ignored_with_a_reason(db):
    for name in (
        "15_15_01_220314_VPWW54.xml",
        "32-35_06_03_240613_VXSE53.xml",
        "38-39_03_01_210805_VTSE41.xml",
    ):
        ingest(name)
    reasons = dict(OfficialMessage.objects.values_list("data_type", "reason"))
    assert reasons["VPWW54"] == "対象地域が含まれていません。"
    assert reasons["VXSE53"] == "対象地域の最大震度３は基準（震度４以上）に達していません。"
    assert "対象としない種類" in reasons["VTSE41"]
    assert not jma_drafts().exists()


@pytest.mark.parametrize(
    "data",
    [XXE, BILLION_LAUGHS, b"<Report><Control>"],
    ids=["external-entity", "billion-laughs", "malformed"],
)
def test_hostile_xml_is_refused_with_a_log_line_and_no_crash(db, caplog, data):
    caplog.set_level(logging.WARNING, logger="broadcasts.official")
    result = official_message_ingest(data=data, source=FILE, url="hostile.xml", now=NIGHT)
    assert result.message.outcome == OUT.REFUSED
    assert "hostile.xml" in caplog.text and "受信拒否" in caplog.text
    official_message_ingest(data=data, source=FILE, url="hostile.xml", now=NIGHT)
    assert OfficialMessage.objects.count() == 1
    assert not jma_drafts().exists()


def test_fifty_megabytes_are_refused(db, caplog):
    caplog.set_level(logging.WARNING, logger="broadcasts.official")
    result = official_message_ingest(data=fifty_megabytes(), source=FILE, now=NIGHT)
    assert result.message.outcome == OUT.REFUSED
    assert "大きすぎる電文" in result.message.reason
    assert "大きすぎる電文" in caplog.text


def test_an_old_feed_entry_is_stored_without_a_draft(db, followers):
    message = ingest(
        HEAVY_RAIN, now=NIGHT + dt.timedelta(hours=7), source=OfficialMessage.Source.FEED
    ).message
    assert message.outcome == OUT.IGNORED
    assert "6時間以上" in message.reason


def test_jma_ingest_command_feeds_the_same_path(db, followers, capsys):
    call_command("jma_ingest", str(MESSAGES / HEAVY_RAIN))
    call_command("jma_ingest", str(MESSAGES / HEAVY_RAIN))
    out = capsys.readouterr().out
    assert "下書きを作成" in out and "受信済みの電文です" in out
    assert jma_drafts().count() == 1


def test_every_rule_change_is_audited(db, admin_user):
    rule = OfficialRule.objects.get(kind="earthquake", min_intensity="4")
    rule.min_intensity = "3"
    services.official_rule_save(rule=rule, actor=admin_user)
    event = BroadcastEvent.objects.get(verb="official_rule_changed")
    assert event.actor == admin_user
    assert (event.data["before"]["min_intensity"], event.data["after"]["min_intensity"]) == (
        "4",
        "3",
    )
    services.official_rule_delete(rule=rule, actor=admin_user)
    assert (
        BroadcastEvent.objects.filter(verb="official_rule_deleted", actor=admin_user).count() == 1
    )


def test_jma_correction_of_a_sent_alert_is_a_linked_teisei(db, followers, supervisor, line_sandbox):
    draft = ingest(QUAKE_5_MINUS, now=jst(2026, 7, 17, 2, 17)).message.broadcast
    sent = send(draft, supervisor, now=jst(2026, 7, 17, 2, 18))
    corrected = (
        sample(QUAKE_5_MINUS)
        .replace("<InfoType>発表</InfoType>".encode(), "<InfoType>訂正</InfoType>".encode())
        .replace(b"<MaxInt>5-</MaxInt></Area>", b"<MaxInt>5+</MaxInt></Area>")
    )
    message = official_message_ingest(
        data=corrected, source=FILE, now=jst(2026, 7, 17, 2, 25)
    ).message
    assert message.outcome == OUT.FOLLOW_UP
    teisei = message.broadcast
    assert (teisei.kind, teisei.parent_id) == (Broadcast.Kind.CORRECTION, sent.pk)
    text = teisei.messages[0]["text"]
    sent_label = format_jst(sent.sent_at)
    assert text.startswith(f"【訂正】{sent_label}にお送りした情報は、気象庁が内容を訂正しました。")
    assert "千葉県北西部で震度５強を観測しました" in text
    assert teisei.status == S.PENDING_REVIEW


def upgraded_to_special_warning() -> bytes:
    """The Kashiwa fixture two hours later, 大雨警報 upgraded to 大雨特別警報 in 柏市."""
    return (
        sample(HEAVY_RAIN)
        .replace(b"2026-07-15T03:12:00+09:00", b"2026-07-15T05:12:00+09:00")
        .replace(
            "<Name>大雨警報</Name>\n<Code>03</Code>\n<Status>発表</Status>\n<LastKind>".encode(),
            "<Name>大雨特別警報</Name>\n<Code>33</Code>\n<Status>発表</Status>\n<LastKind>".encode(),
        )
    )


def test_an_upgrade_to_a_special_warning_updates_the_pending_draft(db, followers):
    draft = ingest(HEAVY_RAIN).message.broadcast
    upgraded = official_message_ingest(
        data=upgraded_to_special_warning(), source=FILE, now=jst(2026, 7, 15, 5, 13)
    ).message
    assert upgraded.outcome == OUT.UPDATED and upgraded.broadcast_id == draft.pk
    draft.refresh_from_db()
    assert draft.status == S.PENDING_REVIEW
    assert draft.audience == Broadcast.Audience.ALL
    assert [c.code for c in draft.categories.all()] == ["emergency"]
    assert draft.messages[0]["text"].startswith(
        "【大雨特別警報】\n柏市に大雨特別警報が発表されました。"
    )
    assert jma_drafts().count() == 1


def test_an_upgrade_after_the_warning_went_out_is_a_linked_follow_up(
    db, followers, supervisor, line_sandbox
):
    sent = send(ingest(HEAVY_RAIN).message.broadcast, supervisor, now=jst(2026, 7, 15, 3, 20))
    upgraded = official_message_ingest(
        data=upgraded_to_special_warning(), source=FILE, now=jst(2026, 7, 15, 5, 13)
    ).message
    assert upgraded.outcome == OUT.FOLLOW_UP
    follow_up = upgraded.broadcast
    assert follow_up.parent_id == sent.pk and follow_up.title.startswith("【続報】")
    assert follow_up.audience == Broadcast.Audience.ALL and follow_up.is_emergency
