"""Test sends are limited per person (settings.TEST_SEND_LIMIT in TEST_SEND_WINDOW_MINUTES):
each one costs LINE quota and buzzes the staff test recipients' phones."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from broadcasts.models import BroadcastEvent, Follower
from broadcasts.schedule import JST
from broadcasts.services import TooManyTestSends, broadcast_send_test
from tests.factories import BroadcastFactory

# Wednesday 2026-11-25 10:00 JST.
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=JST)
REFUSED = "テスト送信は10分間に5回までです。10:10 以降にもう一度お試しください。"


@pytest.fixture
def sandbox_followers(line_sandbox):
    """Our follower table mirrors the sandbox's: 20 followers, the first 3 staff."""
    staff = set(line_sandbox.staff_ids())
    for user_id in line_sandbox.follower_ids():
        Follower.objects.create(line_user_id=user_id, is_staff_test_recipient=user_id in staff)
    return line_sandbox


@pytest.fixture(autouse=True)
def _default_limit(settings):
    settings.TEST_SEND_LIMIT = 5
    settings.TEST_SEND_WINDOW_MINUTES = 10


def press_test_send(client, user, broadcast) -> list[str]:
    """POST the test-send button as ``user``; the messages on the page it leads back to."""
    client.force_login(user)
    response = client.post(reverse("broadcasts:test_send", args=[broadcast.pk]), follow=True)
    assert response.redirect_chain == [(reverse("broadcasts:detail", args=[broadcast.pk]), 302)]
    shown = [str(m) for m in response.context["messages"]]
    assert all(m in response.content.decode() for m in shown)
    return shown


def multicasts(sandbox) -> int:
    return len(sandbox.deliveries(endpoint="multicast"))


def test_the_sixth_test_send_in_ten_minutes_is_refused(client, drafter, sandbox_followers):
    broadcast = BroadcastFactory(author=drafter)
    for minute in range(5):
        with time_machine.travel(NOW + dt.timedelta(minutes=minute), tick=False):
            [message] = press_test_send(client, drafter, broadcast)
        assert message.startswith("【テスト】職員テスト受信者 3 人に送信しました")
    assert multicasts(sandbox_followers) == 5

    with time_machine.travel(NOW + dt.timedelta(minutes=9, seconds=59), tick=False):
        assert press_test_send(client, drafter, broadcast) == [REFUSED]
    assert multicasts(sandbox_followers) == 5  # nothing reached LINE
    assert BroadcastEvent.objects.filter(verb="test_send").count() == 5

    # 10:10: the first of the five has left the window; the next one waits for 10:11.
    with time_machine.travel(NOW + dt.timedelta(minutes=10), tick=False):
        [message] = press_test_send(client, drafter, broadcast)
        assert message.startswith("【テスト】")
        assert press_test_send(client, drafter, broadcast) == [REFUSED.replace("10:10", "10:11")]
    assert multicasts(sandbox_followers) == 6


def test_after_the_window_a_person_may_test_send_again(client, drafter, sandbox_followers):
    broadcast = BroadcastFactory(author=drafter)
    with time_machine.travel(NOW, tick=False):
        for _ in range(5):
            press_test_send(client, drafter, broadcast)
        assert press_test_send(client, drafter, broadcast) == [REFUSED]
    with time_machine.travel(NOW + dt.timedelta(minutes=10, seconds=1), tick=False):
        for _ in range(5):
            [message] = press_test_send(client, drafter, broadcast)
            assert message.startswith("【テスト】")
        assert press_test_send(client, drafter, broadcast) == [
            "テスト送信は10分間に5回までです。10:21 以降にもう一度お試しください。"
        ]
    assert multicasts(sandbox_followers) == 10


def test_the_limit_is_per_person(client, drafter, other_drafter, reviewer, sandbox_followers):
    mine = BroadcastFactory(author=drafter)
    theirs = BroadcastFactory(author=other_drafter)
    with time_machine.travel(NOW, tick=False):
        for _ in range(5):
            press_test_send(client, drafter, mine)
        assert press_test_send(client, drafter, mine) == [REFUSED]
        # Someone else, on another broadcast or on the very same one, is not held back.
        [message] = press_test_send(client, other_drafter, theirs)
        assert message.startswith("【テスト】")
        [message] = press_test_send(client, reviewer, mine)
        assert message.startswith("【テスト】")
        # ... and a new broadcast does not reset the author's count.
        assert press_test_send(client, drafter, BroadcastFactory(author=drafter)) == [REFUSED]
    assert multicasts(sandbox_followers) == 7


def test_failed_test_sends_do_not_count(client, drafter, sandbox_followers):
    broadcast = BroadcastFactory(author=drafter)
    sandbox_followers.set_fault("/v2/bot/message/multicast", 400, count=3)
    with time_machine.travel(NOW, tick=False):
        for _ in range(3):
            [message] = press_test_send(client, drafter, broadcast)
            assert message.startswith("テスト送信に失敗しました")
        for _ in range(5):
            [message] = press_test_send(client, drafter, broadcast)
            assert message.startswith("【テスト】")
        assert press_test_send(client, drafter, broadcast) == [REFUSED]


def test_the_limit_and_window_come_from_settings(client, drafter, sandbox_followers, settings):
    settings.TEST_SEND_LIMIT = 2
    settings.TEST_SEND_WINDOW_MINUTES = 60
    broadcast = BroadcastFactory(author=drafter)
    with time_machine.travel(NOW + dt.timedelta(seconds=30), tick=False):
        press_test_send(client, drafter, broadcast)
        press_test_send(client, drafter, broadcast)
        assert press_test_send(client, drafter, broadcast) == [
            # 11:00:30 is shown as 11:01: trying at the time shown always works.
            "テスト送信は1時間に2回までです。11:01 以降にもう一度お試しください。"
        ]
    assert multicasts(sandbox_followers) == 2


def test_a_retry_time_on_another_day_names_the_day(drafter, sandbox_followers, settings):
    settings.TEST_SEND_LIMIT = 1
    late = dt.datetime(2026, 11, 25, 23, 55, tzinfo=JST)
    broadcast = BroadcastFactory(author=drafter)
    with time_machine.travel(late, tick=False):
        broadcast_send_test(broadcast=broadcast, actor=drafter, now=late)
        with pytest.raises(TooManyTestSends) as refused:
            broadcast_send_test(broadcast=broadcast, actor=drafter, now=late)
    assert "11/26(木) 0:05 以降" in str(refused.value)
    assert refused.value.retry_at == late + dt.timedelta(minutes=10)


@pytest.mark.django_db(transaction=True)
def test_parallel_test_sends_by_one_person_stay_within_the_limit(drafter, sandbox_followers):
    """The attacker's version of the bug: many requests at once, each counting before any
    has written its audit row. The sender's row lock makes them count one after another."""
    if connection.vendor != "postgresql":
        pytest.skip("parallel writers need PostgreSQL; SQLite serializes every write anyway")
    broadcast = BroadcastFactory(author=drafter)
    sandbox_followers.set_fault(
        "/v2/bot/message/multicast", mode="latency", latency_ms=200, count=None
    )
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def attempt() -> None:
        start.wait()
        try:
            broadcast_send_test(broadcast=broadcast, actor=drafter, now=dt.datetime.now(tz=JST))
            outcomes.append("sent")
        except TooManyTestSends:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refused"] * 3 + ["sent"] * 5
    assert multicasts(sandbox_followers) == 5
