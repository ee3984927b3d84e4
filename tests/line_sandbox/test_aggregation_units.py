"""The sandbox's custom aggregation units (issue 16), as LINE answers them: the unit name's
pattern and the one-unit limit (OpenAPI), the month's usage and names, the per-unit
statistics, and the 403 for accounts without the corporate application."""

from __future__ import annotations

import pytest

from line_sandbox.records import JST

from .test_sandbox import api, client, raw  # noqa: F401

MULTICAST = "/v2/bot/message/multicast"


def multicast(client, to, units):  # noqa: F811
    body = {"to": to, "messages": [{"type": "text", "text": "お知らせ"}]}
    if units is not None:
        body["customAggregationUnits"] = units
    return raw(client, "POST", MULTICAST, body)


def test_units_are_recorded_counted_and_listed(line_sandbox, client):  # noqa: F811
    to = line_sandbox.follower_ids()[:5]
    assert multicast(client, to, ["kashiwa_b1"])[0] == 200
    assert multicast(client, to, ["kashiwa_b2"])[0] == 200
    assert multicast(client, to, ["kashiwa_b1"])[0] == 200
    assert multicast(client, to, None)[0] == 200
    assert [d.aggregation_units for d in line_sandbox.deliveries(endpoint="multicast")] == [
        ("kashiwa_b1",),
        ("kashiwa_b2",),
        ("kashiwa_b1",),
        (),
    ]
    status, _, body = raw(client, "GET", "/v2/bot/message/aggregation/info")
    assert (status, body) == (200, {"numOfCustomAggregationUnits": 2})
    status, _, body = raw(client, "GET", "/v2/bot/message/aggregation/list?limit=1")
    assert status == 200 and body["customAggregationUnits"] == ["kashiwa_b1"] and body["next"]


@pytest.mark.parametrize("units", [["bad name"], ["x" * 31], ["a", "b"]])
def test_unit_names_and_count_follow_lines_schema(line_sandbox, client, units):  # noqa: F811
    status, _, body = multicast(client, line_sandbox.follower_ids()[:1], units)
    assert status == 400
    assert "customAggregationUnits" in str(body.get("details"))


def test_per_unit_statistics(line_sandbox, client):  # noqa: F811
    line_sandbox.state.configure(insight_delay_days=0, insight_privacy_threshold=0)
    assert multicast(client, line_sandbox.follower_ids(), ["kashiwa_b7"])[0] == 200
    day = line_sandbox.state.clock().astimezone(JST).strftime("%Y%m%d")
    path = f"/v2/bot/insight/message/event/aggregation?customAggregationUnit=kashiwa_b7&from={day}&to={day}"
    status, _, body = raw(client, "GET", path)
    assert status == 200
    assert 0 < body["overview"]["uniqueImpression"] <= 20
    assert [m["seq"] for m in body["messages"]] == [1]
    # an unknown unit has no numbers; a bad period is refused
    status, _, body = raw(client, "GET", path.replace("kashiwa_b7", "other"))
    assert status == 200 and body["overview"]["uniqueImpression"] is None
    status, _, _ = raw(client, "GET", path.replace(f"to={day}", "to=20000101"))
    assert status == 400


def test_an_account_without_the_application_gets_403(line_sandbox, client):  # noqa: F811
    line_sandbox.state.configure(aggregation_units_allowed=False)
    status, _, body = multicast(client, line_sandbox.follower_ids()[:1], ["kashiwa_b1"])
    assert status == 403 and "not available" in body["message"]
    assert line_sandbox.deliveries(endpoint="multicast") == []
    assert raw(client, "GET", "/v2/bot/message/aggregation/info")[0] == 403
    assert multicast(client, line_sandbox.follower_ids()[:1], None)[0] == 200
