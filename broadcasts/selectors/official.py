"""Reads for 「受信した防災情報」 and 運用状況 (issue 15)."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from ..models import OfficialFeed, OfficialMessage

FILTER_RULE_MATCHED = "matched"
FILTER_RULE_NONE = "unmatched"


def official_messages(
    *, outcome: str = "", kind: str = "", rule: str = "", drafted: bool = False
) -> QuerySet[OfficialMessage]:
    """Newest first, with the rule and the draft (one query for the page)."""
    rows = OfficialMessage.objects.select_related("rule", "broadcast").defer("raw")
    if outcome:
        rows = rows.filter(outcome=outcome)
    if kind:
        rows = rows.filter(kind=kind)
    if rule == FILTER_RULE_MATCHED:
        rows = rows.filter(rule__isnull=False)
    elif rule == FILTER_RULE_NONE:
        rows = rows.filter(rule__isnull=True)
    if drafted:
        rows = rows.filter(broadcast__isnull=False)
    return rows.order_by("-received_at", "-id")


def official_feed_problems() -> list[OfficialFeed]:
    """Feeds whose last poll failed (運用状況)."""
    return list(OfficialFeed.objects.filter(consecutive_failures__gt=0).order_by("url"))


def official_refused_count(now: dt.datetime) -> int:
    """Messages refused (hostile, malformed, too large, unknown sender) or that failed to
    process in the last day."""
    return OfficialMessage.objects.filter(
        outcome__in=[OfficialMessage.Outcome.REFUSED, OfficialMessage.Outcome.FAILED],
        received_at__gte=now - dt.timedelta(days=1),
    ).count()
