"""Polling the feeds against the local JMA feed sandbox (real HTTP on loopback): only unseen
entries, no duplicates over repeated polls or after a restart, the long feed catches up
after an outage of the app, and a feed's 5xx or outage is recorded, never raised."""

from __future__ import annotations

import datetime as dt

import pytest

from broadcasts import permissions
from broadcasts.models import Broadcast, OfficialFeed, OfficialMessage
from broadcasts.services.official import official_feeds_poll
from jma_sandbox.server import SHORT_FEED_ENTRIES, JmaSandbox
from tests.broadcasts.sending.helpers import jst, make_followers

from .samples import HEAVY_RAIN, HEAVY_RAIN_LIFTED, QUAKE_5_MINUS

PUBLISHED = jst(2026, 7, 15, 3, 12)


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def jma():
    sandbox = JmaSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def followers(db):
    return make_followers([f"U{i:032x}" for i in range(4)], ["disaster_crime", "emergency"])


def jma_drafts():
    return Broadcast.objects.filter(author__username=permissions.SYSTEM_AUTHOR_USERNAME)


def test_publish_poll_draft_and_no_duplicates_over_repeated_polls(jma, followers):
    clock = Clock(PUBLISHED + dt.timedelta(seconds=30))
    jma.state.publish(HEAVY_RAIN, when=PUBLISHED)
    jma.state.publish(QUAKE_5_MINUS, when=PUBLISHED)
    first = official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert first.failures == []
    assert len(first.created) == 2
    assert jma_drafts().count() == 2
    assert set(jma_drafts().values_list("status", flat=True)) == {Broadcast.Status.PENDING_REVIEW}
    # Polled again (the next beat): conditional GET answers 304, nothing new.
    clock.now += dt.timedelta(seconds=60)
    second = official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert second.created == [] and second.not_modified == 2
    # A restart that lost the feed validators: the whole feed is read again, still nothing new.
    OfficialFeed.objects.all().delete()
    clock.now += dt.timedelta(seconds=60)
    third = official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert third.created == [] and third.failures == []
    assert jma_drafts().count() == 2
    assert OfficialMessage.objects.count() == 2
    # The next message of the series updates the pending draft rather than making another.
    jma.state.publish(HEAVY_RAIN_LIFTED, when=PUBLISHED + dt.timedelta(hours=1))
    clock.now = PUBLISHED + dt.timedelta(hours=1, seconds=20)
    official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert jma_drafts().count() == 2
    assert jma_drafts().filter(title__contains="大雨警報解除").count() == 1


def test_a_5xx_is_recorded_and_the_entry_is_fetched_at_the_next_poll(jma, followers, caplog):
    clock = Clock(PUBLISHED + dt.timedelta(seconds=30))
    jma.state.publish(HEAVY_RAIN, when=PUBLISHED)
    official_feeds_poll(now_fn=clock, urls=jma.feed_urls()[:1])  # the feed's state exists
    jma.state.publish(QUAKE_5_MINUS, when=PUBLISHED)
    jma.state.fail_next(503, count=2)
    clock.now += dt.timedelta(seconds=60)
    failed = official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert len(failed.failures) == 2 and failed.created == []
    assert "HTTP 503" in caplog.text
    feed = OfficialFeed.objects.get(url=jma.feed_urls()[1])
    assert feed.consecutive_failures >= 1 and "HTTP 503" in feed.last_error
    clock.now += dt.timedelta(seconds=60)
    recovered = official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert recovered.failures == []
    assert jma_drafts().count() == 2
    feed.refresh_from_db()
    assert feed.consecutive_failures == 0


def test_an_unreachable_feed_never_raises(db):
    clock = Clock(PUBLISHED)
    result = official_feeds_poll(
        now_fn=clock, urls=["http://127.0.0.1:9/developer/xml/feed/extra.xml"]
    )
    assert len(result.failures) >= 1
    assert "接続できません" in OfficialFeed.objects.get().last_error


def test_the_long_feed_catches_up_after_the_app_was_down(jma, followers):
    clock = Clock(PUBLISHED)
    extra = [u for u in jma.feed_urls() if u.endswith("/extra.xml")]
    official_feeds_poll(now_fn=clock, urls=extra)  # up, nothing published
    # The app is down while more entries are published than the short feed lists.
    far_samples = ["15_15_01_220314_VPWW54.xml"] * (SHORT_FEED_ENTRIES + 4)
    for minute, name in enumerate(far_samples):
        jma.state.publish(name, when=PUBLISHED + dt.timedelta(minutes=minute))
    jma.state.publish(HEAVY_RAIN, when=PUBLISHED + dt.timedelta(minutes=40))
    clock.now = PUBLISHED + dt.timedelta(minutes=45)
    result = official_feeds_poll(now_fn=clock, urls=extra)
    assert result.failures == []
    assert OfficialMessage.objects.count() == len(far_samples) + 1
    assert jma_drafts().count() == 1


def test_a_message_the_code_cannot_handle_does_not_block_the_feed(jma, followers, monkeypatch):
    from broadcasts.official import drafts

    real_render = drafts.render

    def render(message, finding, **kwargs):
        if message.kind == "earthquake":
            raise KeyError("unexpected")
        return real_render(message, finding, **kwargs)

    monkeypatch.setattr(drafts, "render", render)
    clock = Clock(PUBLISHED + dt.timedelta(seconds=30))
    jma.state.publish(QUAKE_5_MINUS, when=PUBLISHED)
    jma.state.publish(HEAVY_RAIN, when=PUBLISHED)
    result = official_feeds_poll(now_fn=clock, urls=jma.feed_urls())
    assert len(result.created) == 2
    failed = OfficialMessage.objects.get(data_type="VXSE51")
    assert failed.outcome == OfficialMessage.Outcome.FAILED and failed.broadcast is None
    assert "手動で起案" in failed.reason
    assert jma_drafts().count() == 1  # the warning behind it was drafted
    # Not retried at every poll: stored once.
    clock.now += dt.timedelta(seconds=60)
    assert official_feeds_poll(now_fn=clock, urls=jma.feed_urls()).created == []
