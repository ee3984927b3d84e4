"""The lean LINE stand-in of the benches (bench/lean_line.py) answers the sender as LINE does:
through the real gateway (line-bot-sdk), a retry key it has accepted gets 409 with the
accepted request's id, which the gateway turns into "already accepted"; a second request with
a new key for the same recipients is delivered again and counted twice (so a bench that
measures "exactly once" against it would see the duplicate)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from broadcasts.line.gateway import LineGateway

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.lean_line import LeanLine, recipient_digest

MULTICAST = "/v2/bot/message/multicast"


@pytest.fixture
def lean():
    line = LeanLine(latency_ms=5)
    yield line
    line.stop()


def test_a_repeated_retry_key_is_answered_409_and_delivered_once(lean):
    gateway = LineGateway(host=lean.url, token="t")
    key = uuid.uuid4()
    to = ["U" + "a" * 32, "U" + "b" * 32]
    messages = [{"type": "text", "text": "hi"}]

    first = gateway.multicast(to=to, messages=messages, retry_key=key, notification_disabled=False)
    again = gateway.multicast(to=to, messages=messages, retry_key=key, notification_disabled=False)

    assert (first.duplicate, first.http_status) == (False, 200)
    assert first.request_id
    assert (again.duplicate, again.http_status) == (True, 409)
    assert again.request_id == first.request_id
    assert lean.recipients() == {to[0]: 1, to[1]: 1}
    statuses = [entry[3] for entry in lean.log()["log"] if entry[2] == MULTICAST]
    assert statuses == [200, 409]


def test_a_new_key_for_the_same_recipients_counts_them_twice(lean):
    gateway = LineGateway(host=lean.url, token="t")
    to = ["U" + "c" * 32]
    messages = [{"type": "text", "text": "hi"}]
    for _ in range(2):
        gateway.multicast(
            to=to, messages=messages, retry_key=uuid.uuid4(), notification_disabled=False
        )

    stats = lean.log()
    assert lean.recipients() == {to[0]: 2}
    assert (stats["recipients_distinct"], stats["recipients_twice"]) == (1, 1)
    assert stats["digest"] == recipient_digest(to[0])


def test_quota_reads_as_unlimited_and_reset_forgets_keys(lean):
    gateway = LineGateway(host=lean.url, token="t")
    key = uuid.uuid4()
    messages = [{"type": "text", "text": "hi"}]
    gateway.broadcast(messages=messages, retry_key=key, notification_disabled=False)
    assert gateway.quota().type == "none"

    lean.reset(latency_ms=1)

    assert lean.log()["log"] == []
    again = gateway.broadcast(messages=messages, retry_key=key, notification_disabled=False)
    assert again.duplicate is False


def test_a_reply_token_is_accepted_once_and_a_second_use_is_refused_and_counted(lean):
    """As LINE: the gateway's second reply with the same token is refused (400), and the
    stand-in counts it, so a webhook bench sees a reply sent twice."""
    from broadcasts.line.errors import LineError

    gateway = LineGateway(host=lean.url, token="t")
    messages = [{"type": "text", "text": "友だち追加ありがとうございます"}]
    gateway.reply(reply_token="token-1", messages=messages)
    with pytest.raises(LineError) as refused:
        gateway.reply(reply_token="token-1", messages=messages)
    gateway.reply(reply_token="token-2", messages=messages)

    assert "Invalid reply token" in refused.value.describe()
    replies = lean.replies()
    assert sorted(replies["accepted"]) == ["token-1", "token-2"]
    assert all(at > 0 for at in replies["accepted"].values())
    assert replies["duplicates"] == 1
