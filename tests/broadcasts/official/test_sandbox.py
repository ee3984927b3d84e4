"""The JMA feed sandbox (development tooling) publishes as JMA would, now."""

from __future__ import annotations

import datetime as dt
import urllib.request

from broadcasts.official.feed import parse_feed
from broadcasts.official.jma import parse_message
from jma_sandbox.server import JmaSandbox, restamp

from .samples import QUAKE_5_MINUS, sample


def test_publishing_moves_every_time_by_the_same_amount():
    when = dt.datetime(2027, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    message = parse_message(restamp(sample(QUAKE_5_MINUS), when))
    assert message.report_at == when
    original = parse_message(sample(QUAKE_5_MINUS))
    assert message.report_at - message.target_at == original.report_at - original.target_at


def test_the_feed_lists_what_was_published_and_answers_304():
    jma = JmaSandbox().start()
    try:
        published = jma.state.publish(QUAKE_5_MINUS)
        eqvol = jma.feed_urls()[0]
        with urllib.request.urlopen(eqvol) as reply:  # noqa: S310 - loopback
            etag = reply.headers["ETag"]
            entries = parse_feed(reply.read())
        assert [e.title for e in entries] == ["震度速報"]
        assert entries[0].link.endswith(f"/{published.entry_id}.xml")
        request = urllib.request.Request(eqvol, headers={"If-None-Match": etag})  # noqa: S310
        try:
            urllib.request.urlopen(request)  # noqa: S310
            raise AssertionError("expected 304")
        except urllib.error.HTTPError as exc:
            assert exc.code == 304
    finally:
        jma.stop()
