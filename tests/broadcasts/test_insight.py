"""LINE's statistics fetched through the gateway from the sandbox and stored (issue 6).

The sandbox keeps LINE's rules: a day's numbers are "unready" until the next day and numbers
under 20 are hidden; most tests switch both off to see the numbers at once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache

from broadcasts import services, tasks
from broadcasts.models import Broadcast, BroadcastStats, DailyStats, Delivery
from broadcasts.services import insight

from .sending.helpers import approved_broadcast, jst, make_followers

NOW = jst(2026, 12, 1, 10, 0)
EVENT = "/v2/bot/insight/message/event"


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(NOW, tick=True)
    return NOW


@pytest.fixture
def ready_numbers(line_sandbox):
    line_sandbox.state.configure(insight_delay_days=0, insight_privacy_threshold=0)
    return line_sandbox


def sent(author, approver, **kwargs) -> Broadcast:
    broadcast = approved_broadcast(author=author, approver=approver, **kwargs)
    result = services.broadcasts_dispatch_due(now=broadcast.scheduled_for)
    assert broadcast.pk in result.claimed
    outcome = services.broadcast_send(broadcast_id=broadcast.pk, sleep=no_sleep)
    assert outcome.status == "sent"
    broadcast.refresh_from_db()
    return broadcast


def test_broadcast_numbers_come_from_the_message_event_insight(
    ready_numbers, drafter, reviewer, in_window
):
    broadcast = sent(drafter, reviewer, audience=Broadcast.Audience.ALL)
    request_id = broadcast.deliveries.get().request_id
    assert broadcast.deliveries.get().kind == Delivery.Kind.BROADCAST

    stats = insight.broadcast_stats_fetch(broadcast=broadcast)

    assert stats.ready
    assert stats.delivered == 20  # the sandbox's followers
    assert stats.unique_impression is not None and 0 < stats.unique_impression <= 20
    assert stats.unique_click is None  # no links in the message
    assert stats.raw["source"] == "line"
    assert stats.raw["events"][request_id]["overview"]["requestId"] == request_id
    # Stable: fetching again updates the same row with the same numbers.
    again = insight.broadcast_stats_fetch(broadcast=broadcast)
    assert BroadcastStats.objects.count() == 1
    assert again.unique_impression == stats.unique_impression


def test_numbers_under_the_privacy_threshold_are_unknown_not_zero(
    line_sandbox, drafter, reviewer, in_window
):
    broadcast = sent(drafter, reviewer, audience=Broadcast.Audience.ALL)
    stats = insight.broadcast_stats_fetch(broadcast=broadcast)
    assert stats.delivered == 20
    assert stats.unique_impression is None  # < 20 opened: LINE hides it


def test_multicast_sends_without_a_unit_use_our_records_and_ask_line_nothing(
    ready_numbers, drafter, reviewer, in_window
):
    # An account without LINE's custom aggregation units (issue 16: refused, so the
    # multicasts carry none): no per-unit statistics either.
    ready_numbers.state.configure(aggregation_units_allowed=False)
    ids = ready_numbers.state.active_follower_ids()[:5]
    make_followers(ids, ["childcare_education"])
    broadcast = sent(drafter, reviewer)  # subscribers → multicast
    ready_numbers.state.set_fault(EVENT, 500, count=10)  # would fail if it were called

    stats = insight.broadcast_stats_fetch(broadcast=broadcast)

    assert stats.delivered == 5
    assert stats.unique_impression is None
    assert stats.raw["source"] == "app"


def test_daily_figures_followers_and_deliveries(ready_numbers, drafter, reviewer, in_window):
    sent(drafter, reviewer, audience=Broadcast.Audience.ALL)
    day = NOW.date()

    stats = insight.daily_stats_fetch(day=day)

    assert stats.followers == 20
    assert stats.blocks == 0
    assert stats.targeted_reaches is not None
    assert stats.broadcast_delivered == 20
    assert stats.multicast_delivered == 0
    assert stats.raw == {"followers": "ready", "broadcast": "ready", "multicast": "ready"}


def test_unready_days_are_fetched_again_later(line_sandbox, time_machine, db):
    time_machine.move_to(NOW, tick=False)  # the fixture's followers followed long before
    line_sandbox.state.configure(insight_delay_days=2)
    assert insight.daily_stats_refresh(days=3) == 3
    yesterday = DailyStats.objects.get(date=NOW.date() - dt.timedelta(days=1))
    assert yesterday.followers is None and yesterday.raw["followers"] == "unready"
    two_days = DailyStats.objects.get(date=NOW.date() - dt.timedelta(days=2))
    assert two_days.followers == 20

    line_sandbox.state.configure(insight_delay_days=1)
    # Only the day that was unready is asked again.
    assert insight.daily_stats_refresh(days=3) == 1
    yesterday.refresh_from_db()
    assert yesterday.followers == 20


def test_refresh_takes_recent_sends_and_skips_fresh_numbers(
    ready_numbers, drafter, reviewer, time_machine
):
    time_machine.move_to(NOW, tick=True)
    broadcast = sent(drafter, reviewer, audience=Broadcast.Audience.ALL)
    old = Broadcast.objects.create(
        title="古い配信",
        author=drafter,
        status=Broadcast.Status.SENT,
        sent_at=NOW - dt.timedelta(days=20),
    )

    assert insight.broadcasts_needing_stats(now=NOW) == [broadcast.pk]
    assert insight.broadcasts_stats_refresh(now=NOW) == 1
    assert insight.broadcasts_stats_refresh(now=NOW + dt.timedelta(minutes=10)) == 0
    assert insight.broadcasts_stats_refresh(now=NOW + dt.timedelta(hours=2)) == 1
    assert not BroadcastStats.objects.filter(broadcast=old).exists()


def test_refresh_stops_quietly_when_line_fails(ready_numbers, drafter, reviewer, in_window):
    broadcast = sent(drafter, reviewer, audience=Broadcast.Audience.ALL)
    ready_numbers.state.set_fault(EVENT, 500, count=100)
    assert insight.broadcasts_stats_refresh() == 0
    assert not BroadcastStats.objects.filter(broadcast=broadcast).exists()


def test_tasks_refresh_on_demand_and_hourly(ready_numbers, drafter, reviewer, in_window, settings):
    broadcast = sent(drafter, reviewer, audience=Broadcast.Audience.ALL)
    assert tasks.refresh_broadcast_stats(broadcast.pk) == 20
    assert tasks.refresh_broadcast_stats(999_999) is None
    result = tasks.refresh_insight()
    assert result["days"] == 7
    assert settings.CELERY_BEAT_SCHEDULE["refresh-insight"]["task"] == (
        "broadcasts.tasks_insight.refresh_insight"
    )


def test_quota_is_cached_and_never_raises(line_sandbox, settings, db):
    cache.delete(insight.QUOTA_CACHE_KEY)
    line_sandbox.state.set_quota(type="limited", value=1000)
    quota = insight.line_quota_cached()
    assert quota.ok and quota.type == "limited" and quota.value == 1000
    assert quota.consumption == 0 and quota.percent == 0 and quota.remaining == 1000

    cache.delete(insight.QUOTA_CACHE_KEY)
    settings.LINE_API_BASE_URL = "http://127.0.0.1:9"
    down = insight.line_quota_cached()
    assert not down.ok and "接続できません" in down.error
    cache.delete(insight.QUOTA_CACHE_KEY)
