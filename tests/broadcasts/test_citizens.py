"""Citizen-side services: 受信設定 reaching the sender, rule selection, audited admin edits."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from broadcasts import selectors, services
from broadcasts.models import AutoReplyRule, Broadcast, BroadcastEvent, Follower, PublicNotice
from broadcasts.services import citizens
from broadcasts.services.errors import BroadcastInvalid
from line_sandbox.state import synthetic_user_id
from tests.broadcasts.sending.helpers import approved_broadcast, jst

pytestmark = pytest.mark.django_db

MULTICAST = "/v2/bot/message/multicast"


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(jst(2026, 12, 1, 10, 0), tick=True)
    return jst(2026, 12, 1, 10, 0)


def test_subscribed_only_to_childcare_gets_childcare_not_events(
    line_sandbox, drafter, reviewer, in_window
):
    parent = synthetic_user_id(700_001)  # chooses 子育て・教育 only
    fan = synthetic_user_id(700_002)  # keeps every category (the default)
    line_sandbox.state.add_followers(user_ids=[parent, fan])
    for uid in (parent, fan):
        citizens.follower_follow(line_user_id=uid)
    citizens.postback_handle(line_user_id=parent, data="action=unsubscribe_all")
    citizens.postback_handle(
        line_user_id=parent, data="action=subscribe&category=childcare_education"
    )

    childcare = approved_broadcast(
        author=drafter, approver=reviewer, now=in_window, categories=["childcare_education"]
    )
    events = approved_broadcast(
        author=drafter,
        approver=reviewer,
        now=in_window,
        categories=["events"],
        text="手賀沼花火大会のお知らせです。",
        title="イベント",
    )
    assert (
        selectors.recipient_count(
            Broadcast.Audience.SUBSCRIBERS, [c.pk for c in childcare.categories.all()]
        )
        == 2
    )
    assert (
        selectors.recipient_count(
            Broadcast.Audience.SUBSCRIBERS, [c.pk for c in events.categories.all()]
        )
        == 1
    )

    result = services.broadcasts_dispatch_due(now=in_window)
    assert set(result.claimed) == {childcare.pk, events.pk}
    for b in (childcare, events):
        assert services.broadcast_send(broadcast_id=b.pk, sleep=no_sleep).status == "sent"

    received = {
        uid: [m["text"] for d in line_sandbox.deliveries(user_id=uid) for m in d.messages]
        for uid in (parent, fan)
    }
    assert received[parent] == ["子育て支援センターからのお知らせです。"]
    assert sorted(received[fan]) == sorted(
        ["子育て支援センターからのお知らせです。", "手賀沼花火大会のお知らせです。"]
    )
    assert all(d.endpoint == MULTICAST for d in line_sandbox.deliveries())


def test_unfollowed_citizen_is_not_a_recipient():
    uid = synthetic_user_id(700_003)
    citizens.follower_follow(line_user_id=uid)
    citizens.follower_unfollow(line_user_id=uid)
    assert not selectors.followers_active().filter(line_user_id=uid).exists()


def test_stale_unfollow_does_not_undo_a_newer_follow():
    uid = synthetic_user_id(700_004)
    now = timezone.now()
    citizens.follower_follow(line_user_id=uid, at=now)
    citizens.follower_unfollow(line_user_id=uid, at=now - dt.timedelta(seconds=5))
    assert Follower.objects.get(line_user_id=uid).unfollowed_at is None


def test_many_follows_at_once_keep_each_followers_rules():
    """followers_follow (a burst of follow events): new followers get every category, a
    returning one keeps their choices, an unfollow newer than the follow stands."""
    from broadcasts.models import Category

    now = timezone.now()
    new, back, gone = (synthetic_user_id(700_100 + i) for i in range(3))
    citizens.follower_follow(line_user_id=back, at=now - dt.timedelta(days=9))
    Follower.objects.get(line_user_id=back).categories.set(Category.objects.filter(code="fire"))
    citizens.follower_unfollow(line_user_id=back, at=now - dt.timedelta(days=1))
    citizens.follower_follow(line_user_id=gone, at=now - dt.timedelta(days=9))
    citizens.follower_unfollow(line_user_id=gone, at=now)

    followers = citizens.followers_follow(
        follows={new: now, back: now, gone: now - dt.timedelta(seconds=5)}
    )

    assert set(followers) == {new, back, gone}
    assert Follower.objects.get(line_user_id=new).categories.count() == Category.objects.count()
    returning = Follower.objects.get(line_user_id=back)
    assert returning.unfollowed_at is None and returning.followed_at == now
    assert list(returning.categories.values_list("code", flat=True)) == ["fire"]
    assert Follower.objects.get(line_user_id=gone).unfollowed_at == now


def test_unknown_category_postback_says_so():
    uid = synthetic_user_id(700_005)
    # The 受信設定 menu is the last message (after the area/age/language buttons, issue 16).
    message = citizens.postback_handle(line_user_id=uid, data="action=subscribe&category=nope")[-1]
    assert "見つかりませんでした" in message["text"]
    assert citizens.postback_handle(line_user_id=uid, data="action=drop_tables") == []


def test_rules_by_priority_and_active_period():
    now = timezone.now()
    AutoReplyRule.objects.all().delete()
    low = AutoReplyRule.objects.create(
        name="low", keywords="図書館", priority=50, messages=[{"type": "text", "text": "low"}]
    )
    high = AutoReplyRule.objects.create(
        name="high", keywords="図書館", priority=5, messages=[{"type": "text", "text": "high"}]
    )
    assert citizens.auto_reply_rule_select(text="図書館の開館時間", now=now) == high
    high.active_until = now - dt.timedelta(days=1)
    high.save()
    assert citizens.auto_reply_rule_select(text="図書館の開館時間", now=now) == low
    low.active_from = now + dt.timedelta(days=1)
    low.save()
    assert citizens.auto_reply_rule_select(text="図書館の開館時間", now=now) is None
    low.active_from = None
    low.is_active = False
    low.save()
    assert citizens.auto_reply_rule_select(text="図書館の開館時間", now=now) is None
    assert "個別のご質問" in citizens.auto_reply_messages(text="図書館", now=now)[0]["text"]


def test_seeded_rules_are_there():
    names = set(AutoReplyRule.objects.values_list("name", flat=True))
    assert {"ごみの出し方", "休日当番医", "受信設定のご案内"} <= names
    for rule in AutoReplyRule.objects.all():
        assert citizens.reply_messages_check(rule.messages) == []


def test_rule_save_validates_and_audits(admin_user):
    rule = AutoReplyRule(name="空", keywords="x", messages=[{"type": "text", "text": " "}])
    with pytest.raises(BroadcastInvalid):
        citizens.auto_reply_rule_save(rule=rule, actor=admin_user)
    rule.messages = [{"type": "text", "text": "応答"}]
    citizens.auto_reply_rule_save(rule=rule, actor=admin_user)
    rule.priority = 3
    citizens.auto_reply_rule_save(rule=rule, actor=admin_user)
    citizens.auto_reply_rule_delete(rule=rule, actor=admin_user)
    verbs = list(
        BroadcastEvent.objects.filter(verb__startswith="auto_reply_rule")
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "auto_reply_rule_created",
        "auto_reply_rule_changed",
        "auto_reply_rule_deleted",
    ]
    changed = BroadcastEvent.objects.get(verb="auto_reply_rule_changed")
    assert (changed.data["before"]["priority"], changed.data["after"]["priority"]) == (100, 3)
    assert changed.actor == admin_user


def test_public_notice_publish_stamps_time_and_audits(admin_user):
    notice = PublicNotice(title="なりすましにご注意", body="偽アカウントがあります。")
    citizens.public_notice_save(notice=notice, actor=admin_user)
    assert notice.published_at is None
    notice.is_published = True
    citizens.public_notice_save(notice=notice, actor=admin_user)
    assert notice.published_at is not None
    assert BroadcastEvent.objects.filter(verb="public_notice_saved").count() == 2
