"""broadcasts/line/gateway.py: a multicast reuses the messages the SDK validated for an
earlier chunk of the same send, and still sends each chunk to exactly its own recipients."""

from __future__ import annotations

import uuid

import pytest

from broadcasts.line.errors import LinePermanentError
from broadcasts.line.gateway import MULTICAST_MAX_RECIPIENTS, LineGateway


@pytest.fixture
def gateway(line_sandbox):
    return LineGateway(host=line_sandbox.url, token=line_sandbox.token)


def test_chunks_with_the_same_messages_each_reach_only_their_recipients(gateway, line_sandbox):
    ids = line_sandbox.follower_ids()
    messages = [{"type": "text", "text": "【柏市】お知らせ"}]
    for chunk in (ids[:7], ids[7:]):
        gateway.multicast(
            to=chunk, messages=messages, retry_key=uuid.uuid4(), notification_disabled=True
        )
    other = [{"type": "text", "text": "【柏市】別のお知らせ"}]
    gateway.multicast(
        to=ids[:2], messages=other, retry_key=uuid.uuid4(), notification_disabled=False
    )

    sent = line_sandbox.deliveries(endpoint="multicast")
    by_text = {}
    for delivery in sent:
        by_text.setdefault(delivery.messages[0]["text"], []).append(sorted(delivery.recipients))
    assert sorted(by_text["【柏市】お知らせ"]) == sorted([sorted(ids[:7]), sorted(ids[7:])])
    assert by_text["【柏市】別のお知らせ"] == [sorted(ids[:2])]


@pytest.mark.parametrize(
    "to",
    [[], ["U" + "0" * 32] * (MULTICAST_MAX_RECIPIENTS + 1), ["U" + "0" * 32, 12345]],
    ids=["none", "501", "not a string"],
)
def test_a_chunk_outside_the_sdk_model_is_refused_before_any_request(gateway, line_sandbox, to):
    messages = [{"type": "text", "text": "【柏市】お知らせ"}]
    gateway.multicast(
        to=line_sandbox.follower_ids()[:1],
        messages=messages,
        retry_key=uuid.uuid4(),
        notification_disabled=False,
    )
    before = len(line_sandbox.state.requests())

    with pytest.raises(LinePermanentError):
        gateway.multicast(
            to=to, messages=messages, retry_key=uuid.uuid4(), notification_disabled=False
        )

    assert len(line_sandbox.state.requests()) == before


def test_messages_the_sdk_refuses_are_refused_for_every_chunk(gateway, line_sandbox):
    bad = [{"type": "text"}]  # no text
    for _ in range(2):
        with pytest.raises(LinePermanentError):
            gateway.multicast(
                to=line_sandbox.follower_ids()[:1],
                messages=bad,
                retry_key=uuid.uuid4(),
                notification_disabled=False,
            )
    assert line_sandbox.deliveries(endpoint="multicast") == []


def test_pace_runs_once_for_each_request_that_leaves_just_before_it_leaves(gateway, line_sandbox):
    """The multicast rate limiter's wait (``pace``) runs after the SDK built the request and
    before LINE gets it; once per request LINE gets (a 409 or a 403 was a request all the
    same); not for a chunk refused before it could leave (no slot of LINE's second spent)."""
    requests = line_sandbox.state.requests
    seen: list[int] = []

    def pace() -> None:
        seen.append(len(requests()))

    ids = line_sandbox.follower_ids()[:3]
    messages = [{"type": "text", "text": "【柏市】お知らせ"}]
    before = len(requests())
    key = uuid.uuid4()
    first = gateway.multicast(
        to=ids, messages=messages, retry_key=key, notification_disabled=False, pace=pace
    )
    again = gateway.multicast(
        to=ids, messages=messages, retry_key=key, notification_disabled=False, pace=pace
    )
    assert (again.duplicate, again.request_id) == (True, first.request_id)  # LINE's 409
    with pytest.raises(LinePermanentError):
        gateway.multicast(
            to=[], messages=messages, retry_key=uuid.uuid4(), notification_disabled=False, pace=pace
        )
    line_sandbox.state.configure(aggregation_units_allowed=False)
    with pytest.raises(LinePermanentError) as refused:
        gateway.multicast(
            to=ids,
            messages=messages,
            retry_key=uuid.uuid4(),
            notification_disabled=False,
            aggregation_unit="kashiwa_b1",
            pace=pace,
        )
    assert refused.value.status == 403

    assert seen == [before, before + 1, before + 2]  # each time, the request not yet at LINE
    assert len(requests()) == before + 3
