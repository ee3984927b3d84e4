"""Emergency follow-ups: a 訂正 (correction) or 取消 (cancellation) of a sent broadcast.

The lesson of the 2018 Hawaii false alert: the correction took 38 minutes. Here one click
on a sent broadcast creates the follow-up, pre-filled and linked, which then goes through
the same emergency approval (supervisor, typed count, fresh second factor)."""

from __future__ import annotations

from django.db import transaction

from .. import permissions
from ..content import CORRECTION_PLACEHOLDER, message_texts
from ..models import Broadcast, User
from ..schedule import format_jst
from . import audiences
from .audit import audit_record
from .errors import BroadcastPermissionDenied, InvalidTransition
from .lifecycle import broadcast_create

K = Broadcast.Kind
FOLLOW_UP_KINDS = {K.CORRECTION: "訂正", K.CANCELLATION: "取消"}


def _snippet(broadcast: Broadcast, length: int = 40) -> str:
    texts = message_texts(broadcast.messages)
    first = texts[0].splitlines()[0] if texts else broadcast.title
    return first if len(first) <= length else first[: length - 1] + "…"


def follow_up_text(original: Broadcast, kind: str) -> str:
    when = format_jst(original.sent_at) if original.sent_at else ""
    quoted = _snippet(original)
    if kind == K.CORRECTION:
        return (
            f"【訂正】{when}にお送りした「{quoted}」の内容に誤りがありました。"
            f"正しくは次のとおりです。\n\n{CORRECTION_PLACEHOLDER}\n\n柏市役所"
        )
    return (
        f"【取消】{when}にお送りした「{quoted}」は誤りでした。この配信を取り消します。"
        "ご迷惑をおかけし、申し訳ありません。\n\n柏市役所"
    )


# A follow-up still being prepared: a second click opens it instead of making another.
OPEN_STATUSES = (
    Broadcast.Status.DRAFT,
    Broadcast.Status.REJECTED,
    Broadcast.Status.PENDING_REVIEW,
    Broadcast.Status.SCHEDULED,
)


def open_follow_up(original: Broadcast, kind: str) -> Broadcast | None:
    """The 訂正 (or 取消) of ``original`` that has not gone out yet, if there is one.

    A drill's follow-ups are drills (kind 訓練), told apart by the 【訂正】/【取消】 title
    they are created with."""
    qs = Broadcast.objects.filter(parent=original, status__in=OPEN_STATUSES)
    if original.is_drill:
        qs = qs.filter(kind=K.DRILL, title__startswith=f"【{FOLLOW_UP_KINDS[kind]}】")
    else:
        qs = qs.filter(kind=kind)
    return qs.order_by("created_at", "id").first()


@transaction.atomic
def broadcast_follow_up_open_or_create(
    *, original: Broadcast, actor: User, kind: str
) -> tuple[Broadcast, bool]:
    """The open 訂正/取消 of ``original`` if there is one (``created`` False), else a new
    draft (issue 13 item 8: one correction in preparation, not one per click). The original
    row is locked, so two clicks at once still make one draft."""
    if kind not in FOLLOW_UP_KINDS:
        raise ValueError(f"unknown follow-up kind {kind!r}")
    original = Broadcast.objects.select_for_update().get(pk=original.pk)
    if not permissions.can_draft(actor):
        raise BroadcastPermissionDenied("訂正・取消を作成する権限がありません。")
    existing = open_follow_up(original, kind)
    if existing is not None:
        return existing, False
    return broadcast_create_follow_up(original=original, actor=actor, kind=kind), True


@transaction.atomic
def broadcast_create_follow_up(*, original: Broadcast, actor: User, kind: str) -> Broadcast:
    """A draft correction or cancellation of a sent broadcast: same audience and
    categories, emergency priority, linked to the original."""
    if kind not in FOLLOW_UP_KINDS:
        raise ValueError(f"unknown follow-up kind {kind!r}")
    original = Broadcast.objects.select_for_update().get(pk=original.pk)
    if not permissions.can_draft(actor):
        raise BroadcastPermissionDenied("訂正・取消を作成する権限がありません。")
    if original.status not in (Broadcast.Status.SENT, Broadcast.Status.SENDING):
        raise InvalidTransition(original.status, f"{FOLLOW_UP_KINDS[kind]}の作成")
    label = FOLLOW_UP_KINDS[kind]
    follow_up = broadcast_create(
        author=actor,
        title=f"【{label}】{original.title}"[:120],
        categories=list(original.categories.all()),
        messages=[{"type": "text", "text": follow_up_text(original, kind)}],
        audience=original.audience,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason=f"配信済み「{original.title}」の{label}",
        notification_disabled=original.notification_disabled,
        kind=K.DRILL if original.is_drill else kind,
        parent=original,
    )
    # The same areas, age groups and languages, with a version per language (issue 16).
    audiences.targeting_copy(source=original, target=follow_up, kind=kind)
    audit_record(
        verb="follow_up_created",
        actor=actor,
        broadcast=original,
        from_status=original.status,
        to_status=original.status,
        comment=f"{label}の下書きを作成しました（#{follow_up.pk}）",
        data={"follow_up": follow_up.pk, "kind": kind},
    )
    return follow_up
