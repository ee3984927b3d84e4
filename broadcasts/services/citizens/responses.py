"""Automatic responses: keyword rules and standard replies, and their staff edits."""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ... import citizen_defaults
from ...content import Problem, check_messages
from ...models import (
    AutoReplyRule,
    StandardReply,
    User,
)
from ..audit import audit_record
from ..errors import BroadcastInvalid

logger = logging.getLogger(__name__)


def normalize(text: str) -> str:
    """Full-width/half-width and case differences do not matter when matching keywords."""
    return unicodedata.normalize("NFKC", text or "").casefold().strip()


def auto_reply_rule_select(*, text: str, now: dt.datetime | None = None) -> AutoReplyRule | None:
    """The first active rule (by priority) whose keyword matches ``text``."""
    now = now or timezone.now()
    wanted = normalize(text)
    if not wanted:
        return None
    rules = AutoReplyRule.objects.filter(
        Q(active_from__isnull=True) | Q(active_from__lte=now),
        Q(active_until__isnull=True) | Q(active_until__gt=now),
        is_active=True,
    ).order_by("priority", "id")
    for rule in rules:
        for keyword in (normalize(k) for k in rule.keyword_list()):
            if not keyword:
                continue
            if rule.match_type == AutoReplyRule.MatchType.EXACT and wanted == keyword:
                return rule
            if rule.match_type == AutoReplyRule.MatchType.CONTAINS and keyword in wanted:
                return rule
    return None


def auto_reply_messages(*, text: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    rule = auto_reply_rule_select(text=text, now=now)
    if rule is not None:
        return list(rule.messages)
    return standard_reply_messages(StandardReply.Kind.DEFAULT)


def standard_reply_messages(kind: str) -> list[dict[str, Any]]:
    reply = StandardReply.objects.filter(kind=kind).first()
    if reply is not None and reply.messages:
        return list(reply.messages)
    body = (
        citizen_defaults.GREETING_TEXT
        if kind == StandardReply.Kind.GREETING
        else citizen_defaults.DEFAULT_REPLY_TEXT
    )
    return [citizen_defaults.text(body)]


def reply_messages_check(messages: Any) -> list[Problem]:
    """The broadcast builder's checks, for automatic responses (reply API: 5 messages)."""
    return check_messages(messages)


def _rule_data(rule: AutoReplyRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "match_type": rule.match_type,
        "keywords": rule.keyword_list(),
        "priority": rule.priority,
        "active_from": rule.active_from.isoformat() if rule.active_from else None,
        "active_until": rule.active_until.isoformat() if rule.active_until else None,
        "is_active": rule.is_active,
        "messages": rule.messages,
    }


@transaction.atomic
def auto_reply_rule_save(*, rule: AutoReplyRule, actor: User) -> AutoReplyRule:
    problems = reply_messages_check(rule.messages)
    if problems:
        raise BroadcastInvalid(problems)
    created = rule.pk is None
    before = (
        None if created else _rule_data(AutoReplyRule.objects.select_for_update().get(pk=rule.pk))
    )
    rule.save()
    audit_record(
        verb="auto_reply_rule_created" if created else "auto_reply_rule_changed",
        actor=actor,
        data={"id": rule.pk, "before": before, "after": _rule_data(rule)},
    )
    return rule


@transaction.atomic
def auto_reply_rule_delete(*, rule: AutoReplyRule, actor: User) -> None:
    data = {"id": rule.pk, "before": _rule_data(rule)}
    rule.delete()
    audit_record(verb="auto_reply_rule_deleted", actor=actor, data=data)


@transaction.atomic
def standard_reply_save(*, reply: StandardReply, actor: User) -> StandardReply:
    problems = reply_messages_check(reply.messages)
    if problems:
        raise BroadcastInvalid(problems)
    before = StandardReply.objects.filter(pk=reply.pk).values_list("messages", flat=True).first()
    reply.save()
    audit_record(
        verb="standard_reply_changed",
        actor=actor,
        data={"kind": reply.kind, "before": before, "after": reply.messages},
    )
    return reply
