"""Insight API numbers (statistics) derived from the sandbox's delivery log.

Synthetic but stable: the same request ID always gives the same numbers. As on LINE, a day's
numbers are "unready" until the next day (``state.insight_delay_days``) and small numbers are
hidden as ``null`` for privacy (``state.insight_privacy_threshold``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .records import AGGREGATION_NOT_ALLOWED, JST, fraction
from .state import SandboxState
from .validation import LineError


def _ready(state: SandboxState, day: datetime) -> bool:
    today = state.clock().astimezone(JST).date()
    return (today - day.date()).days >= state.insight_delay_days


def _private(state: SandboxState, value: int) -> int | None:
    return None if value < state.insight_privacy_threshold else value


def delivery_count(state: SandboxState, endpoint: str, date: str) -> dict[str, Any]:
    """``NumberOfMessagesResponse`` for one endpoint and JST day ``YYYYMMDD``."""
    day = datetime.strptime(date, "%Y%m%d").replace(tzinfo=JST)
    if not _ready(state, day):
        return {"status": "unready"}
    with state.lock:
        success = sum(
            len(d.recipients)
            for d in state._deliveries
            if d.kind == endpoint and d.accepted_at.astimezone(JST).date() == day.date()
        )
    return {"status": "ready", "success": success}


def follower_statistics(state: SandboxState, date: str | None) -> dict[str, Any]:
    """``GetNumberOfFollowersResponse`` (followers on or before the JST day)."""
    day = (
        datetime.strptime(date, "%Y%m%d").replace(tzinfo=JST)
        if date
        else state.clock().astimezone(JST) - timedelta(days=state.insight_delay_days)
    )
    if not _ready(state, day):
        return {"status": "unready"}
    end = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with state.lock:
        known = [f for f in state._followers.values() if f.followed_at < end]
    blocks = sum(1 for f in known if f.blocked)
    reach = int((len(known) - blocks) * 0.77)
    return {
        "status": "ready",
        "followers": len(known),
        "targetedReaches": reach,
        "blocks": blocks,
    }


def message_event(state: SandboxState, request_id: str) -> dict[str, Any]:
    """``GetMessageEventResponse``: synthetic but stable numbers for a broadcast or
    narrowcast; an empty overview for anything else (LINE keeps no such statistics)."""
    delivery = state.delivery(request_id)
    empty_overview = {
        "requestId": request_id,
        "timestamp": None,
        "delivered": 0,
        "uniqueImpression": None,
        "uniqueClick": None,
        "uniqueMediaPlayed": None,
        "uniqueMediaPlayed100Percent": None,
    }
    if delivery is None or delivery.kind not in ("broadcast", "narrowcast"):
        return {"overview": empty_overview, "messages": [], "clicks": []}
    delivered = len(delivery.recipients)
    opened = int(delivered * fraction(request_id + ":open", 0.35, 0.75))
    urls = [
        (seq, uri)
        for seq, message in enumerate(delivery.messages, start=1)
        for uri in _message_uris(message)
    ]
    clicked = int(opened * fraction(request_id + ":click", 0.1, 0.5)) if urls else 0
    has_media = any(m.get("type") in ("video", "audio") for m in delivery.messages)
    played = int(opened * fraction(request_id + ":play", 0.2, 0.6)) if has_media else 0
    messages = []
    for seq, message in enumerate(delivery.messages, start=1):
        impressions = int(opened * fraction(f"{request_id}:{seq}", 0.8, 1.3))
        media = message.get("type") in ("video", "audio")
        row: dict[str, Any] = {"seq": seq, "impression": _private(state, impressions)}
        for key in ("mediaPlayed", "uniqueMediaPlayed"):
            row[key] = _private(state, played) if media else None
            for pct in (25, 50, 75, 100):
                value = int(played * (1 - pct / 125)) if media else 0
                row[f"{key}{pct}Percent"] = _private(state, value) if media else None
        messages.append(row)
    clicks = []
    for seq, url in urls:
        unique = int(clicked * fraction(f"{request_id}:{url}", 0.5, 1.0))
        clicks.append(
            {
                "seq": seq,
                "url": url,
                "click": _private(state, int(unique * 1.3)),
                "uniqueClick": _private(state, unique),
                "uniqueClickOfRequest": _private(state, unique),
            }
        )
    overview = {
        "requestId": request_id,
        "timestamp": int(delivery.accepted_at.timestamp()),
        "delivered": delivered,
        "uniqueImpression": _private(state, opened),
        "uniqueClick": _private(state, clicked) if urls else None,
        "uniqueMediaPlayed": _private(state, played) if has_media else None,
        "uniqueMediaPlayed100Percent": _private(state, int(played * 0.2)) if has_media else None,
    }
    return {"overview": overview, "messages": messages, "clicks": clicks}


def unit_statistics(state: SandboxState, unit: str, date_from: str, date_to: str) -> dict[str, Any]:
    """``GetStatisticsPerUnitResponse``: synthetic but stable numbers for the multicasts and
    pushes that carried ``unit`` between two JST days (at most 30 days apart, as on LINE).
    Days not yet "ready" (``insight_delay_days``) count nothing yet."""
    if not state.aggregation_units_allowed:
        raise LineError(403, AGGREGATION_NOT_ALLOWED)
    start = datetime.strptime(date_from, "%Y%m%d").replace(tzinfo=JST)
    end = datetime.strptime(date_to, "%Y%m%d").replace(tzinfo=JST)
    if end < start or (end - start).days > 30:
        raise ValueError("The aggregation period is invalid")
    with state.lock:
        deliveries = [
            d
            for d in state._deliveries
            if unit in d.aggregation_units
            and start.date() <= d.accepted_at.astimezone(JST).date() <= end.date()
            and _ready(state, d.accepted_at.astimezone(JST))
        ]
    delivered = sum(len(d.recipients) for d in deliveries)
    opened = int(delivered * fraction(unit + ":open", 0.35, 0.75))
    messages = deliveries[0].messages if deliveries else ()
    urls = [
        (seq, uri)
        for seq, message in enumerate(messages, start=1)
        for uri in _message_uris(message)
    ]
    clicked = int(opened * fraction(unit + ":click", 0.1, 0.5)) if urls else 0
    overview = {
        "uniqueImpression": _private(state, opened) if deliveries else None,
        "uniqueClick": _private(state, clicked) if deliveries and urls else None,
        "uniqueMediaPlayed": None,
        "uniqueMediaPlayed100Percent": None,
    }
    rows = [
        {
            "seq": seq,
            "impression": _private(state, int(opened * fraction(f"{unit}:{seq}", 0.8, 1.3))),
            "mediaPlayed": None,
            "uniqueMediaPlayed": None,
        }
        for seq in range(1, len(messages) + 1)
    ]
    clicks = [
        {
            "seq": seq,
            "url": url,
            "click": _private(state, int(clicked * 1.3)),
            "uniqueClick": _private(state, clicked),
            "uniqueClickOfRequest": _private(state, clicked),
        }
        for seq, url in urls
    ]
    return {"overview": overview, "messages": rows, "clicks": clicks}


def _message_uris(message: dict[str, Any]) -> list[str]:
    """The URIs a citizen could open from a message (URI actions in templates/quick replies)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "uri" and isinstance(node.get("uri"), str):
                found.append(node["uri"])
            if isinstance(node.get("linkUri"), str):
                found.append(node["linkUri"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message)
    return list(dict.fromkeys(found))
