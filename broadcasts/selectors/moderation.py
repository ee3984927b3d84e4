"""Reads for moderation (policy 6): the inbox, what the rules find in a text, masking of
personal data in lists, whether a citizen's automatic replies are stopped, and the clause-6
risks in the city's own drafts."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.db.models import Exists, OuterRef, Q, QuerySet

from ..models import (
    CitizenMessage,
    DraftRiskWordList,
    ModerationMeasure,
    ModerationRule,
    ModerationSettings,
    ProhibitedItem,
    ReplySuppression,
)
from ..models.moderation import DEFAULT_RETENTION_DAYS
from ..policy.prohibited import PERSONAL_DATA_PATTERNS

MASK = "＊＊＊"
URL_RE = re.compile(r"https?://[^\s<>\"'「」（）()、。]+", re.IGNORECASE)


def normalize(text: str) -> str:
    """Full-width/half-width and case differences do not matter when matching words."""
    return unicodedata.normalize("NFKC", text or "").casefold()


# --- settings ---------------------------------------------------------------------------------


def moderation_settings() -> ModerationSettings:
    """The city's settings (an unsaved default row if the seed is missing)."""
    return ModerationSettings.objects.filter(pk=1).first() or ModerationSettings(
        pk=1, retention_days=DEFAULT_RETENTION_DAYS
    )


def retention() -> dt.timedelta:
    return dt.timedelta(days=moderation_settings().retention_days)


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleHit:
    rule: str
    item: int
    match: str

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "item": self.item, "match": self.match}


def active_rules() -> list[ModerationRule]:
    return list(ModerationRule.objects.filter(is_active=True).select_related("item"))


def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # the admin form refuses a bad pattern; an old row must not stop the inbox


def _host_allowed(host: str, domains: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def rule_hits(text: str, rules: Iterable[ModerationRule]) -> list[RuleHit]:
    """What each rule finds in ``text``: keywords (width and case ignored), links to domains
    the rule does not allow, and patterns (personal data)."""
    hits: list[RuleHit] = []
    if not text:
        return hits
    wide = normalize(text)
    for rule in rules:
        number = rule.item.number
        if rule.kind == ModerationRule.Kind.KEYWORD:
            for word in rule.pattern_list():
                if normalize(word) and normalize(word) in wide:
                    hits.append(RuleHit(rule.name, number, word))
        elif rule.kind == ModerationRule.Kind.URL:
            domains = [d.lower().strip(".") for d in rule.pattern_list()]
            for link in URL_RE.findall(unicodedata.normalize("NFKC", text)):
                if not _host_allowed(urlparse(link).hostname or "", domains):
                    hits.append(RuleHit(rule.name, number, link))
        elif rule.kind == ModerationRule.Kind.PATTERN:
            halfwidth = unicodedata.normalize("NFKC", text)
            for pattern in rule.pattern_list():
                compiled = _compiled(pattern)
                if compiled is None:
                    continue
                for found in compiled.finditer(halfwidth):
                    hits.append(RuleHit(rule.name, number, found.group(0)))
    return list(dict.fromkeys(hits))


def mask_personal_data(text: str, patterns: Iterable[str] = ()) -> str:
    """``text`` with phone numbers, e-mail addresses, マイナンバー-like numbers, addresses and
    whatever the admins' pattern rules describe replaced by ＊＊＊ (lists show this)."""
    masked = unicodedata.normalize("NFKC", text or "")
    for pattern in (*PERSONAL_DATA_PATTERNS, *patterns):
        compiled = _compiled(pattern)
        if compiled is not None:
            masked = compiled.sub(MASK, masked)
    return masked


def mask_patterns() -> list[str]:
    """The admins' personal-data patterns (rules of the pattern kind, active)."""
    patterns: list[str] = []
    for rule in ModerationRule.objects.filter(
        is_active=True, kind=ModerationRule.Kind.PATTERN
    ).only("patterns"):
        patterns += rule.pattern_list()
    return patterns


# --- suppression ------------------------------------------------------------------------------


def suppression_active(*, line_user_id: str, now: dt.datetime) -> ReplySuppression | None:
    """The stop in force for this citizen at ``now`` (the one lasting longest), if any."""
    return (
        ReplySuppression.objects.filter(
            line_user_id=line_user_id, until__gt=now, lifted_at__isnull=True
        )
        .order_by("-until")
        .first()
    )


def suppressions_active_for(user_ids: Iterable[str], *, now: dt.datetime) -> dict[str, dt.datetime]:
    """For a page of the inbox: each citizen whose replies are stopped → until when."""
    until: dict[str, dt.datetime] = {}
    for user_id, end in ReplySuppression.objects.filter(
        line_user_id__in=set(user_ids), until__gt=now, lifted_at__isnull=True
    ).values_list("line_user_id", "until"):
        until[user_id] = max(end, until.get(user_id, end))
    return until


# --- the inbox ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    q: str = ""
    state: str = ""  # "" all / flagged / auto / unflagged / measured
    item: int | None = None
    date_from: dt.datetime | None = None
    date_to: dt.datetime | None = None


def has_case(term: str) -> bool:
    """Whether case can matter when searching for ``term``: it has a letter with an upper or
    a lower case (Japanese, digits and punctuation have none)."""
    return any(c.upper() != c or c.lower() != c for c in term)


def text_contains(field: str, term: str) -> Q:
    """``field`` contains ``term``, case ignored. For a term without cased letters case cannot
    matter, so a plain ``contains``: on PostgreSQL it spares ``UPPER()`` on every row read, and
    the planner estimates it from the column's own statistics (both expressions have a trigram
    index, migration 0016). On SQLite both are the same ``LIKE``."""
    lookup = "icontains" if has_case(term) else "contains"
    return Q(**{f"{field}__{lookup}": term})


def inbox(filters: InboxFilter) -> QuerySet[CitizenMessage]:
    """Kept messages, flagged ones first, then newest first (an index scan: ``flagged`` is
    kept in step with ``item`` by the services). No annotations, so the paginator reads the
    ids plainly; ``measured_ids`` marks a page's rows."""
    rows = CitizenMessage.objects.select_related("item", "flagged_by")
    if filters.q:
        rows = rows.filter(
            text_contains("text", filters.q)
            | Q(line_user_id=filters.q)
            | text_contains("note", filters.q)
        )
    if filters.state == "flagged":
        rows = rows.filter(flagged=True)
    elif filters.state == "auto":
        rows = rows.filter(flag_source=CitizenMessage.FlagSource.RULE)
    elif filters.state == "unflagged":
        rows = rows.filter(flagged=False)
    elif filters.state == "measured":
        rows = rows.filter(Exists(ModerationMeasure.objects.filter(message=OuterRef("pk"))))
    if filters.item:
        rows = rows.filter(item__number=filters.item)
    if filters.date_from:
        rows = rows.filter(received_at__gte=filters.date_from)
    if filters.date_to:
        rows = rows.filter(received_at__lt=filters.date_to)
    return rows.order_by("-flagged", "-received_at", "-id")


def measured_ids(message_ids: Iterable[int]) -> set[int]:
    """Which of these messages have a 措置 recorded (one query for a page)."""
    return set(
        ModerationMeasure.objects.filter(message_id__in=list(message_ids)).values_list(
            "message_id", flat=True
        )
    )


def inbox_counts() -> dict[str, int]:
    return {
        "total": CitizenMessage.objects.count(),
        "flagged": CitizenMessage.objects.filter(flagged=True).count(),
    }


def flagged_open_count() -> int:
    """Flagged messages nobody has recorded a 措置 for (the dashboard's reminder)."""
    return (
        CitizenMessage.objects.filter(flagged=True)
        .exclude(Exists(ModerationMeasure.objects.filter(message=OuterRef("pk"))))
        .count()
    )


def citizen_history(*, line_user_id: str, exclude_id: int | None = None) -> dict[str, Any]:
    """This citizen's other kept messages, the 措置 recorded and the stops, newest first."""
    others = CitizenMessage.objects.filter(line_user_id=line_user_id).select_related("item")
    if exclude_id:
        others = others.exclude(pk=exclude_id)
    return {
        "messages": list(others.order_by("-received_at", "-id")[:20]),
        "measures": list(
            ModerationMeasure.objects.filter(line_user_id=line_user_id)
            .select_related("actor", "item")
            .order_by("-created_at", "-id")[:50]
        ),
        "suppressions": list(
            ReplySuppression.objects.filter(line_user_id=line_user_id)
            .select_related("created_by")
            .order_by("-created_at", "-id")[:50]
        ),
    }


def prohibited_items() -> list[ProhibitedItem]:
    return list(ProhibitedItem.objects.order_by("number"))


# --- the city's own drafts (pre-send checklist) --------------------------------------------------


@dataclass(frozen=True)
class DraftRisk:
    """A clause-6 risk in a draft, shaped like a pre-send check result (``checks.CheckResult``:
    level, label, detail) so the checklist shows it; ``clause`` names the item, and the review
    screen repeats these next to the approve button."""

    item: ProhibitedItem
    list_name: str
    words: tuple[str, ...]
    level: str = "warn"
    level_label: str = "要確認"

    @property
    def clause(self) -> str:
        return self.item.clause

    @property
    def label(self) -> str:
        """「ポリシー6(3)「政治・宗教活動」: 選挙・政治活動の可能性」"""
        return f"{self.item.clause}「{self.item.label}」: {self.list_name}の可能性"

    @property
    def detail(self) -> str:
        found = "、".join(f"「{w}」" for w in self.words)
        return (
            f"{self.list_name}に当たる語句があります: {found}。"
            f"運用ポリシー6({self.item.number})「{self.item.text}」に当たらないか確認してください。"
        )


def draft_risks(texts: Iterable[str]) -> list[DraftRisk]:
    """Each active word list that a draft's texts hit, with the words found, naming the
    clause-6 item."""
    wide = normalize("\n".join(texts))
    risks = []
    if not wide.strip():
        return risks
    for word_list in DraftRiskWordList.objects.filter(is_active=True).select_related("item"):
        found = tuple(
            dict.fromkeys(w for w in word_list.word_list() if normalize(w) and normalize(w) in wide)
        )
        if found:
            risks.append(DraftRisk(item=word_list.item, list_name=word_list.name, words=found))
    return risks


def draft_risk_checks(messages: list[dict[str, Any]]) -> list[DraftRisk]:
    """The pre-send checklist's clause-6 warnings for a draft's messages."""
    from ..content import message_texts

    return draft_risks(message_texts(messages))
