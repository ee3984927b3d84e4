"""Linking a staff member's own LINE account: a one-time code sent to the official account.

Codes expire, are single use and stored only as a digest; wrong guesses are throttled per
LINE account. The code's text is answered here and never treated as a citizen's message."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import unicodedata
from typing import Any

from django.conf import settings
from django.db import transaction

from ...models import (
    LineLink,
    LineLinkAttempt,
    LineLinkCode,
    User,
)
from ..audit import audit_record
from ..errors import BroadcastPermissionDenied

LINK_PREFIX = "職員連携"
#: no 0/O, 1/I/L: a code read off a screen and typed into LINE on a phone
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_HALF = 4
LINK_ATTEMPT_LIMIT = 5
LINK_ATTEMPT_WINDOW = dt.timedelta(minutes=15)
_PREFIXED_CODE = re.compile(rf"^{LINK_PREFIX}[\s:：]*([A-Z0-9]{{4}})[-‐ー－]?([A-Z0-9]{{4}})$")
_BARE_CODE = re.compile(rf"^([{CODE_ALPHABET}]{{4}})-([{CODE_ALPHABET}]{{4}})$")

LINKED_REPLY = (
    "{name} さんの通知先として、この LINE アカウントを連携しました。"
    "緊急配信の承認依頼はこのトークに届きます。公式アカウントのブロックや通知のオフはしないでください。"
)
WRONG_CODE_REPLY = (
    "連携コードが正しくありません。職員用画面「LINE 通知の設定」に表示されたコードを"
    "そのまま送ってください。"
)
EXPIRED_CODE_REPLY = (
    "この連携コードは有効期限が切れています。職員用画面「LINE 通知の設定」で新しいコードを"
    "発行してください。"
)
USED_CODE_REPLY = (
    "この連携コードは使用済みです。連携し直す場合は、職員用画面で新しいコードを発行してください。"
)
TAKEN_REPLY = (
    "この LINE アカウントは別の職員の通知先として連携済みのため、連携できませんでした。"
    "コードは無効にしました。ご自身の LINE から新しいコードを送ってください。"
)
THROTTLED_REPLY = (
    "連携コードの誤りが続いたため、しばらく受け付けません。15分ほど待ってから、"
    "職員用画面に表示された最新のコードを送ってください。"
)


def normalise_code(text: str) -> str | None:
    """The code in a message, as ``ABCDEFGH``, or None if the text is not a link code."""
    cleaned = unicodedata.normalize("NFKC", text or "").strip().upper()
    match = _PREFIXED_CODE.match(cleaned) or _BARE_CODE.match(cleaned)
    return "".join(match.groups()) if match else None


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def format_code(code: str) -> str:
    return f"{code[:CODE_HALF]}-{code[CODE_HALF:]}"


@transaction.atomic
def line_link_code_issue(*, user: User, now: dt.datetime) -> str:
    """A new one-time code for ``user`` (any earlier unused code stops working). Returned
    once, formatted ``ABCD-EFGH``; only its digest is stored."""
    if not user.is_active:
        raise BroadcastPermissionDenied("無効なアカウントです。")
    LineLinkCode.objects.filter(user=user, used_at__isnull=True).delete()
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_HALF * 2))
    LineLinkCode.objects.create(
        user=user,
        code_digest=_digest(code),
        created_at=now,
        expires_at=now + dt.timedelta(minutes=settings.LINE_LINK_CODE_MINUTES),
    )
    audit_record(verb="line_link_code_issued", actor=user, data={})
    return format_code(code)


def _reply(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def _suffix(line_user_id: str) -> str:
    """Enough of a LINE user ID to tell two accounts apart in the audit log."""
    return f"…{line_user_id[-4:]}"


@transaction.atomic
def line_link_message(
    *, line_user_id: str, text: str, now: dt.datetime
) -> list[dict[str, Any]] | None:
    """Webhook processing calls this for every text message before anything else. A link
    code (right or wrong) is answered here and is never a citizen's message; any other text
    returns None."""
    code = normalise_code(text)
    if code is None or not line_user_id:
        return None
    recent = LineLinkAttempt.objects.filter(
        line_user_id=line_user_id, attempted_at__gt=now - LINK_ATTEMPT_WINDOW
    ).count()
    if recent >= LINK_ATTEMPT_LIMIT:
        return _reply(THROTTLED_REPLY)
    found = (
        LineLinkCode.objects.select_for_update()
        .select_related("user")
        .filter(code_digest=_digest(code))
        .first()
    )
    refusal = None
    if found is None or not found.user.is_active:
        refusal = WRONG_CODE_REPLY
    elif found.used_at is not None:
        refusal = USED_CODE_REPLY
    elif found.expires_at <= now:
        refusal = EXPIRED_CODE_REPLY
    if found is None or refusal is not None:
        LineLinkAttempt.objects.create(line_user_id=line_user_id, attempted_at=now)
        return _reply(refusal or WRONG_CODE_REPLY)
    user = found.user
    found.used_at = now
    found.save(update_fields=["used_at"])
    taken = LineLink.objects.filter(line_user_id=line_user_id).exclude(user=user).first()
    if taken is not None:
        audit_record(
            verb="line_link_refused",
            actor=user,
            comment="この LINE アカウントは別の職員に連携済みのため、連携しませんでした。",
            data={"line_user": _suffix(line_user_id), "linked_to": taken.user_id},
        )
        return _reply(TAKEN_REPLY)
    previous = LineLink.objects.filter(user=user).first()
    LineLink.objects.update_or_create(
        user=user, defaults={"line_user_id": line_user_id, "linked_at": now}
    )
    audit_record(
        verb="line_linked",
        actor=user,
        comment="LINE アカウントを通知先として連携しました。",
        data={
            "line_user": _suffix(line_user_id),
            "replaced": _suffix(previous.line_user_id) if previous else None,
        },
    )
    return _reply(LINKED_REPLY.format(name=user))


@transaction.atomic
def line_link_remove(*, user: User, actor: User | None = None) -> bool:
    """Stop LINE alerts to ``user``'s account: the staff member themselves, or a 管理者
    (``actor``) when the phone was lost or the person left. Returns whether one was linked."""
    actor = actor or user
    link = LineLink.objects.select_for_update().filter(user=user).first()
    if link is None:
        return False
    suffix = _suffix(link.line_user_id)
    link.delete()
    audit_record(
        verb="line_unlinked",
        actor=actor,
        comment=(
            "LINE アカウントの連携を解除しました。"
            if actor.pk == user.pk
            else f"{user} の LINE アカウントの連携を解除しました（管理者による解除）。"
        ),
        data={"line_user": suffix, "user": user.pk},
    )
    return True


def line_link_attempts_purge(*, now: dt.datetime) -> int:
    deleted, _ = LineLinkAttempt.objects.filter(
        attempted_at__lt=now - dt.timedelta(days=1)
    ).delete()
    return deleted
