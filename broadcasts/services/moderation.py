"""Moderation (policy 6): keep citizens' messages for the retention the city sets, flag likely
cases by the admins' rules, and record what staff do (flag, note, stop automatic replies,
措置), each with an audit row. The purge deletes kept messages after the retention.

The LINE Messaging API cannot block a user: blocking is done in LINE 公式アカウント管理画面
(LINE Official Account Manager); staff record here that they did it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.db import transaction

from ..models import (
    CitizenMessage,
    DraftRiskWordList,
    ModerationMeasure,
    ModerationRule,
    ModerationSettings,
    ProhibitedItem,
    ReplySuppression,
    User,
)
from ..permissions import BroadcastPermissionDenied, can_administer, can_moderate
from ..selectors import moderation as moderation_selectors
from .audit import audit_record

MAX_TEXT = 5000
MAX_SUPPRESSION_DAYS = 365
PURGE_JOB = "citizen_messages"


class ModerationInvalid(ValueError):
    """Bad input for a moderation action (shown to staff as it is)."""


def _require_moderator(actor: User) -> None:
    if not can_moderate(actor):
        raise BroadcastPermissionDenied(
            "市民からのメッセージに対応できるのは広報担当と管理者です。"
        )


def _require_admin(actor: User) -> None:
    if not can_administer(actor):
        raise BroadcastPermissionDenied("この設定を変更できるのは管理者だけです。")


# --- the webhook's hook ---------------------------------------------------------------------


def citizen_message_receive(
    *,
    webhook_event_id: str,
    line_user_id: str,
    message_type: str,
    text: str,
    at: dt.datetime,
) -> bool:
    """Keep a citizen's message for the inbox and flag it if a rule finds something.

    Called while the webhook event is processed, inside its transaction (storing it twice is
    harmless: one row per webhook event). Returns whether automatic replies to this citizen
    are stopped at ``at``: the caller then sends none."""
    suppressed = (
        moderation_selectors.suppression_active(line_user_id=line_user_id, now=at) is not None
    )
    hits = moderation_selectors.rule_hits(text, moderation_selectors.active_rules())
    first = hits[0] if hits else None
    message, created = CitizenMessage.objects.get_or_create(
        webhook_event_id=webhook_event_id,
        defaults={
            "line_user_id": line_user_id,
            "message_type": message_type[:20],
            "text": text[:MAX_TEXT],
            "received_at": at,
            "rule_hits": [h.as_json() for h in hits],
            "item": ProhibitedItem.objects.filter(number=first.item).first() if first else None,
            "flagged": first is not None,
            "flag_source": CitizenMessage.FlagSource.RULE if first else "",
            "flagged_at": at if first else None,
            "replies_suppressed": suppressed,
        },
    )
    if created and first:
        audit_record(
            verb="citizen_message_auto_flagged",
            actor=None,
            data={
                "message": message.pk,
                "item": first.item,
                "rules": sorted({h.rule for h in hits}),
            },
        )
    return suppressed


# --- staff actions -----------------------------------------------------------------------------


@transaction.atomic
def citizen_message_flag(
    *, message: CitizenMessage, item: ProhibitedItem, actor: User, now: dt.datetime
) -> CitizenMessage:
    """Flag a message with the clause-6 item it breaks (or change the item)."""
    _require_moderator(actor)
    message = CitizenMessage.objects.select_for_update().get(pk=message.pk)
    before = message.item.number if message.item_id else None
    message.item = item
    message.flagged = True
    message.flag_source = CitizenMessage.FlagSource.STAFF
    message.flagged_by = actor
    message.flagged_at = now
    message.save(update_fields=["item", "flagged", "flag_source", "flagged_by", "flagged_at"])
    audit_record(
        verb="citizen_message_flagged",
        actor=actor,
        data={"message": message.pk, "before": before, "item": item.number},
    )
    return message


@transaction.atomic
def citizen_message_unflag(
    *, message: CitizenMessage, actor: User, now: dt.datetime
) -> CitizenMessage:
    """Take a flag off (a rule's false alarm, or staff's mistake)."""
    _require_moderator(actor)
    message = CitizenMessage.objects.select_for_update().get(pk=message.pk)
    before = message.item.number if message.item_id else None
    message.item = None
    message.flagged = False
    message.flag_source = ""
    message.flagged_by = actor
    message.flagged_at = now
    message.save(update_fields=["item", "flagged", "flag_source", "flagged_by", "flagged_at"])
    audit_record(
        verb="citizen_message_unflagged",
        actor=actor,
        data={"message": message.pk, "before": before},
    )
    return message


@transaction.atomic
def citizen_message_note(*, message: CitizenMessage, note: str, actor: User) -> CitizenMessage:
    _require_moderator(actor)
    note = note.strip()
    if len(note) > 2000:
        raise ModerationInvalid("メモは2000文字以内にしてください。")
    message = CitizenMessage.objects.select_for_update().get(pk=message.pk)
    before = message.note
    message.note = note
    message.save(update_fields=["note"])
    audit_record(
        verb="citizen_message_noted",
        actor=actor,
        data={"message": message.pk, "before": before, "after": note},
    )
    return message


@transaction.atomic
def reply_suppress(
    *,
    line_user_id: str,
    days: int,
    reason: str,
    actor: User,
    now: dt.datetime,
    message: CitizenMessage | None = None,
) -> ReplySuppression:
    """Stop automatic replies to this citizen for ``days`` days from ``now``."""
    _require_moderator(actor)
    if not line_user_id:
        raise ModerationInvalid("LINE ユーザーID がありません。")
    if not 1 <= days <= MAX_SUPPRESSION_DAYS:
        raise ModerationInvalid(f"停止する日数は1〜{MAX_SUPPRESSION_DAYS}日にしてください。")
    suppression = ReplySuppression.objects.create(
        line_user_id=line_user_id,
        until=now + dt.timedelta(days=days),
        reason=reason.strip()[:300],
        message=message,
        created_by=actor,
        created_at=now,
    )
    audit_record(
        verb="reply_suppressed",
        actor=actor,
        data={
            "suppression": suppression.pk,
            "message": message.pk if message else None,
            "days": days,
            "until": suppression.until.isoformat(),
            "reason": suppression.reason,
        },
    )
    return suppression


@transaction.atomic
def reply_suppression_lift(
    *, suppression: ReplySuppression, actor: User, now: dt.datetime
) -> ReplySuppression:
    _require_moderator(actor)
    suppression = ReplySuppression.objects.select_for_update().get(pk=suppression.pk)
    if suppression.lifted_at is not None or suppression.until <= now:
        raise ModerationInvalid("この停止はすでに終わっています。")
    suppression.lifted_at = now
    suppression.save(update_fields=["lifted_at"])
    audit_record(
        verb="reply_suppression_lifted",
        actor=actor,
        data={"suppression": suppression.pk, "until": suppression.until.isoformat()},
    )
    return suppression


@transaction.atomic
def moderation_measure_record(
    *,
    message: CitizenMessage,
    kind: str,
    detail: str,
    actor: User,
    now: dt.datetime,
) -> ModerationMeasure:
    """Record a 措置 the city took (e.g. blocked in LINE 公式アカウント管理画面)."""
    _require_moderator(actor)
    if kind not in ModerationMeasure.Kind.values:
        raise ModerationInvalid("措置の種類を選んでください。")
    detail = detail.strip()
    message = CitizenMessage.objects.select_related("item").get(pk=message.pk)
    if kind == ModerationMeasure.Kind.OTHER and not detail:
        raise ModerationInvalid("「その他」を選んだときは内容を入力してください。")
    measure = ModerationMeasure.objects.create(
        message=message,
        line_user_id=message.line_user_id,
        kind=kind,
        item=message.item,
        detail=detail[:300],
        actor=actor,
        created_at=now,
    )
    audit_record(
        verb="moderation_measure_recorded",
        actor=actor,
        data={
            "measure": measure.pk,
            "message": message.pk,
            "kind": kind,
            "item": message.item.number if message.item_id else None,
            "detail": measure.detail,
        },
    )
    return measure


# --- retention --------------------------------------------------------------------------------


@transaction.atomic
def citizen_messages_purge(*, now: dt.datetime) -> int:
    """Delete kept messages older than the retention (policy 10). The run is audited, with
    the number deleted, so the personal-data page can show the last run. Records of 措置
    and stops keep no text and stay."""
    cutoff = now - moderation_selectors.retention()
    _, per_model = CitizenMessage.objects.filter(received_at__lt=cutoff).delete()
    deleted_messages = per_model.get(CitizenMessage._meta.label, 0)
    audit_record(
        verb="data_purged",
        actor=None,
        data={"job": PURGE_JOB, "deleted": deleted_messages, "cutoff": cutoff.isoformat()},
    )
    return deleted_messages


# --- admin-edited rules, word lists and settings (Django admin) -------------------------------------


def _rule_data(rule: ModerationRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "item": rule.item.number if rule.item_id else None,
        "patterns": rule.pattern_list(),
        "is_active": rule.is_active,
    }


def moderation_rule_problems(rule: ModerationRule) -> list[str]:
    """What is wrong with a rule (shown on the admin form)."""
    problems = []
    if rule.is_active and not rule.pattern_list() and rule.kind != ModerationRule.Kind.URL:
        problems.append("キーワードまたはパターンを1つ以上入力してください。")
    if rule.kind == ModerationRule.Kind.PATTERN:
        for pattern in rule.pattern_list():
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"正規表現「{pattern}」が正しくありません（{exc}）。")
    return problems


@transaction.atomic
def moderation_rule_save(*, rule: ModerationRule, actor: User) -> ModerationRule:
    _require_admin(actor)
    problems = moderation_rule_problems(rule)
    if problems:
        raise ModerationInvalid(" ".join(problems))
    created = rule.pk is None
    before = (
        None if created else _rule_data(ModerationRule.objects.select_for_update().get(pk=rule.pk))
    )
    rule.save()
    audit_record(
        verb="moderation_rule_created" if created else "moderation_rule_changed",
        actor=actor,
        data={"id": rule.pk, "before": before, "after": _rule_data(rule)},
    )
    return rule


@transaction.atomic
def moderation_rule_delete(*, rule: ModerationRule, actor: User) -> None:
    _require_admin(actor)
    data = {"id": rule.pk, "before": _rule_data(rule)}
    rule.delete()
    audit_record(verb="moderation_rule_deleted", actor=actor, data=data)


def _word_list_data(word_list: DraftRiskWordList) -> dict[str, Any]:
    return {
        "name": word_list.name,
        "item": word_list.item.number if word_list.item_id else None,
        "words": word_list.word_list(),
        "is_active": word_list.is_active,
    }


@transaction.atomic
def draft_word_list_save(*, word_list: DraftRiskWordList, actor: User) -> DraftRiskWordList:
    _require_admin(actor)
    created = word_list.pk is None
    before = (
        None
        if created
        else _word_list_data(DraftRiskWordList.objects.select_for_update().get(pk=word_list.pk))
    )
    word_list.save()
    audit_record(
        verb="draft_word_list_created" if created else "draft_word_list_changed",
        actor=actor,
        data={"id": word_list.pk, "before": before, "after": _word_list_data(word_list)},
    )
    return word_list


@transaction.atomic
def draft_word_list_delete(*, word_list: DraftRiskWordList, actor: User) -> None:
    _require_admin(actor)
    data = {"id": word_list.pk, "before": _word_list_data(word_list)}
    word_list.delete()
    audit_record(verb="draft_word_list_deleted", actor=actor, data=data)


@transaction.atomic
def moderation_settings_save(
    *, retention_days: int, default_suppression_days: int, actor: User
) -> ModerationSettings:
    _require_admin(actor)
    if not 1 <= retention_days <= 3650:
        raise ModerationInvalid("保存期間は1〜3650日にしてください。")
    if not 1 <= default_suppression_days <= MAX_SUPPRESSION_DAYS:
        raise ModerationInvalid(
            f"自動応答停止の既定日数は1〜{MAX_SUPPRESSION_DAYS}日にしてください。"
        )
    row, _ = ModerationSettings.objects.select_for_update().get_or_create(pk=1)
    before = {
        "retention_days": row.retention_days,
        "default_suppression_days": row.default_suppression_days,
    }
    row.retention_days = retention_days
    row.default_suppression_days = default_suppression_days
    row.save()
    audit_record(
        verb="moderation_settings_changed",
        actor=actor,
        data={
            "before": before,
            "after": {
                "retention_days": retention_days,
                "default_suppression_days": default_suppression_days,
            },
        },
    )
    return row
