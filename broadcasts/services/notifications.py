"""Staff alerts (issue 13): approvers are told, on their phones, that a broadcast waits.

* **Linking LINE.** A staff member asks for a one-time code on 「LINE 通知の設定」 and sends it
  (「職員連携 ABCD-EFGH」) to the official account from their own LINE. Webhook processing hands
  every text message to ``line_link_message`` first: a code links the account (audited) and is
  answered; any other text goes on to the citizens' automatic responses. Codes expire, are
  single use and stored only as a digest; wrong guesses are throttled per LINE account.
* **Emergencies and drills** alert every 承認者 who may approve (not its writers) at once, by
  LINE push and by e-mail. The rows are made in the submission's transaction; the send task is
  enqueued after commit on the ``emergency`` queue, and a beat task (``approval_alerts_tick``)
  is the backstop and escalates: a round nobody alerted has opened within
  ``ALERT_ESCALATION_MINUTES`` alerts every 承認者 and 管理者 once.
* **Ordinary submissions** queue e-mail rows for reviewers that ``review_digests_send`` (beat)
  sends as one digest per reviewer. Never LINE.

Effectively once, as the sender does it: one row per (round, person, channel, level) by a
unique constraint; a worker claims rows in a committed transaction before it sends (a second
worker skips them); LINE pushes carry the row's retry key, so a push repeated after a worker
died is answered 409 by LINE, not delivered twice. (An e-mail whose worker died between the
mail server's acceptance and the commit is sent again after ``STALE_CLAIM``: mail has no
retry key.)

Time is an input: every function takes ``now`` (or ``now_fn``) from its caller."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
import smtplib
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse

from ..line.errors import LinePermanentError, LineTemporaryError
from ..line.gateway import LineGateway, get_gateway
from ..models import (
    Alert,
    AlertRound,
    Broadcast,
    LineLink,
    LineLinkAttempt,
    LineLinkCode,
    User,
)
from ..schedule import format_jst
from ..selectors import notifications as alert_selectors
from . import enqueue
from .audit import audit_record
from .errors import BroadcastPermissionDenied

logger = logging.getLogger(__name__)

DRILL_MARKER = "【訓練】"
#: registered task names (``broadcasts/tasks/notifications.py``), sent through ``enqueue``
DELIVER_APPROVAL_ALERTS = "broadcasts.tasks.notifications.deliver_approval_alerts"
#: a claim older than this belongs to a worker that died: the alert is sent again
STALE_CLAIM = dt.timedelta(minutes=2)
#: temporary failures (LINE 5xx, mail server down) are retried by the beat task this often
MAX_ATTEMPTS = 5

# --- linking a staff member's LINE account ----------------------------------------------------

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
def line_link_remove(*, user: User) -> bool:
    """The staff member stops LINE alerts to their account. Returns whether one was linked."""
    link = LineLink.objects.select_for_update().filter(user=user).first()
    if link is None:
        return False
    suffix = _suffix(link.line_user_id)
    link.delete()
    audit_record(
        verb="line_unlinked",
        actor=user,
        comment="LINE アカウントの連携を解除しました。",
        data={"line_user": suffix},
    )
    return True


def line_link_attempts_purge(*, now: dt.datetime) -> int:
    deleted, _ = LineLinkAttempt.objects.filter(
        attempted_at__lt=now - dt.timedelta(days=1)
    ).delete()
    return deleted


# --- alerts ---------------------------------------------------------------------------------


def _create_alerts(
    alert_round: AlertRound,
    recipients: list[User],
    *,
    level: int,
    with_line: bool,
    now: dt.datetime,
) -> list[Alert]:
    """One row per person and channel they can be reached by (insert-or-ignore)."""
    line_ids = alert_selectors.line_ids(recipients) if with_line else {}
    rows = []
    for user in recipients:
        if user.pk in line_ids:
            rows.append(
                Alert(
                    round=alert_round,
                    recipient=user,
                    channel=Alert.Channel.LINE,
                    level=level,
                    address=line_ids[user.pk],
                    created_at=now,
                )
            )
        if user.email:
            rows.append(
                Alert(
                    round=alert_round,
                    recipient=user,
                    channel=Alert.Channel.EMAIL,
                    level=level,
                    address=user.email,
                    created_at=now,
                )
            )
    Alert.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


def _enqueue_delivery(round_id: int) -> None:
    """After commit, on the emergency queue. Robust: with the broker down the submission
    stands, and the beat task sends the alerts when it runs."""
    transaction.on_commit(
        lambda: enqueue.task_send(DELIVER_APPROVAL_ALERTS, args=(round_id,)),
        robust=True,
    )


def approval_alerts_open(*, broadcast: Broadcast, now: dt.datetime) -> AlertRound | None:
    """Called by ``broadcast_submit`` in its transaction (the row is locked): the alerts of
    this submission. Emergencies and drills: every 承認者 who may approve it, LINE and e-mail,
    sent at once. Ordinary: reviewers, e-mail, in the next digest."""
    if broadcast.submitted_at is None:
        return None
    emergency = broadcast.is_emergency
    alert_round, created = AlertRound.objects.get_or_create(
        broadcast=broadcast,
        submitted_at=broadcast.submitted_at,
        defaults={
            "kind": AlertRound.Kind.EMERGENCY if emergency else AlertRound.Kind.REVIEW,
            "escalate_at": now + dt.timedelta(minutes=settings.ALERT_ESCALATION_MINUTES)
            if emergency
            else None,
        },
    )
    if not created:
        return alert_round
    if emergency:
        recipients = alert_selectors.emergency_approvers(broadcast)
        if _create_alerts(
            alert_round, recipients, level=Alert.Level.FIRST, with_line=True, now=now
        ):
            _enqueue_delivery(alert_round.pk)
        else:
            # No 承認者 can be reached (no LINE link, no e-mail): waiting for nobody to open
            # it helps no one; the next beat tick alerts every 承認者 and 管理者.
            alert_round.escalate_at = now
            alert_round.save(update_fields=["escalate_at"])
    else:
        recipients = alert_selectors.reviewers(broadcast)
        _create_alerts(alert_round, recipients, level=Alert.Level.FIRST, with_line=False, now=now)
    return alert_round


def alert_url(broadcast: Broadcast) -> str:
    """The alert's link: after login and the second factor it opens the approval screen."""
    return settings.SITE_URL + reverse("broadcasts:alert_open", args=[broadcast.pk])


def review_url(broadcast: Broadcast) -> str:
    return settings.SITE_URL + reverse("broadcasts:detail", args=[broadcast.pk])


@dataclass(frozen=True)
class AlertMessage:
    subject: str
    body: str

    @property
    def line_text(self) -> str:
        return f"{self.subject}\n{self.body}"[:5000]


def alert_message(broadcast: Broadcast, alert_round: AlertRound, level: int) -> AlertMessage:
    """The words of an emergency alert (LINE and e-mail say the same)."""
    drill = broadcast.is_drill
    marker = DRILL_MARKER if drill else ""
    author = broadcast.author
    who = f"{author}（{author.division}）" if author.division_id else str(author)
    if level == Alert.Level.ESCALATION:
        subject = (
            f"{marker}【至急・未対応】{'訓練の配信' if drill else '緊急配信'}が承認を待っています"
        )
        lead = (
            f"申請から{settings.ALERT_ESCALATION_MINUTES}分以上、通知した承認者の誰も承認画面を"
            "開いていません。対応できる承認者に連絡してください。"
        )
    else:
        subject = f"{marker}【{'訓練の承認依頼' if drill else '緊急配信の承認依頼'}】"
        lead = "承認者の承認を待っています。"
    lines = [
        f"「{broadcast.title}」",
        lead,
        f"起案：{who}",
        f"申請：{format_jst(alert_round.submitted_at)}",
    ]
    if drill:
        lines.append("これは訓練です。承認しても職員テスト受信者にだけ届き、市民には届きません。")
    lines.append(f"承認画面（ログインと二要素認証のあと開きます）：\n{alert_url(broadcast)}")
    return AlertMessage(subject=subject, body="\n".join(lines))


def _claim(filters: Q, *, now: dt.datetime) -> list[int]:
    """Take unsent alerts (and those whose worker died); committed before anything is sent,
    so another worker skips them."""
    due = Q(status=Alert.Status.PENDING) | Q(
        status=Alert.Status.SENDING, claimed_at__lt=now - STALE_CLAIM
    )
    with transaction.atomic():
        ids = list(
            Alert.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(filters)
            .filter(due)
            .values_list("pk", flat=True)
        )
        Alert.objects.filter(pk__in=ids).update(
            status=Alert.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    return ids


def _finish(
    alert: Alert, *, status: str, at: dt.datetime, error: str = "", request_id: str = ""
) -> None:
    fields: dict[str, Any] = {"status": status, "error": error[:500]}
    if status == Alert.Status.SENT:
        fields.update(sent_at=at, request_id=request_id[:100])
    Alert.objects.filter(pk=alert.pk, status=Alert.Status.SENDING).update(**fields)


def _failed(alert: Alert, error: str, *, at: dt.datetime, permanent: bool) -> None:
    """A temporary failure goes back to the queue (the beat task retries it) until
    ``MAX_ATTEMPTS``; a permanent one stops."""
    final = permanent or alert.attempts >= MAX_ATTEMPTS
    logger.warning(
        "alert %s to user %s by %s failed: %s", alert.pk, alert.recipient_id, alert.channel, error
    )
    _finish(
        alert, status=Alert.Status.FAILED if final else Alert.Status.PENDING, at=at, error=error
    )


def _still_waiting(alert_round: AlertRound) -> bool:
    broadcast = alert_round.broadcast
    return (
        broadcast.status == Broadcast.Status.PENDING_REVIEW
        and broadcast.submitted_at == alert_round.submitted_at
    )


def approval_alerts_deliver(
    *,
    round_id: int,
    now_fn: Callable[[], dt.datetime],
    gateway: LineGateway | None = None,
) -> int:
    """Send the round's unsent emergency alerts: LINE pushes first (the phone in a pocket),
    then e-mail. Alerts for a broadcast that no longer waits (approved, withdrawn) are not
    sent. Returns how many were sent."""
    ids = _claim(Q(round_id=round_id), now=now_fn())
    if not ids:
        return 0
    alert_round = AlertRound.objects.select_related("broadcast__author__division").get(pk=round_id)
    broadcast = alert_round.broadcast
    alerts = list(
        Alert.objects.filter(pk__in=ids)
        .select_related("recipient")
        .order_by("channel", "level", "recipient__username")
    )
    alerts.sort(key=lambda a: (a.channel != Alert.Channel.LINE, a.level, a.recipient.username))
    if not _still_waiting(alert_round):
        for alert in alerts:
            _finish(alert, status=Alert.Status.SKIPPED, at=now_fn())
        return 0
    messages = {
        level: alert_message(broadcast, alert_round, level) for level in {a.level for a in alerts}
    }
    sent: list[Alert] = []
    for alert in alerts:
        message = messages[alert.level]
        try:
            if alert.channel == Alert.Channel.LINE:
                gateway = gateway or get_gateway()
                result = gateway.push(
                    to=alert.address,
                    messages=[{"type": "text", "text": message.line_text}],
                    retry_key=alert.retry_key,
                )
                request_id = result.request_id
            else:
                send_mail(message.subject, message.body, None, [alert.address])
                request_id = ""
        except LinePermanentError as exc:
            _failed(alert, f"LINE: {exc}", at=now_fn(), permanent=True)
        except (LineTemporaryError, smtplib.SMTPException, OSError) as exc:
            _failed(alert, f"{type(exc).__name__}: {exc}", at=now_fn(), permanent=False)
        else:
            _finish(alert, status=Alert.Status.SENT, at=now_fn(), request_id=request_id)
            sent.append(alert)
    if sent:
        audit_record(
            verb="approval_alerts_sent",
            actor=None,
            broadcast=broadcast,
            from_status=broadcast.status,
            to_status=broadcast.status,
            comment="、".join(f"{a.recipient}（{a.get_channel_display()}）" for a in sent)
            + " に承認依頼を通知しました。",
            data={
                "round": alert_round.pk,
                "alerts": [
                    {"user": a.recipient_id, "channel": a.channel, "level": a.level} for a in sent
                ],
            },
        )
    return len(sent)


def approval_alerts_escalate(*, round_id: int, now: dt.datetime) -> bool:
    """Alert every 承認者 and 管理者 (not the broadcast's writers) because nobody alerted has
    opened the approval screen in time. Once per round: the round row is locked and marked."""
    with transaction.atomic():
        alert_round = (
            AlertRound.objects.select_for_update(skip_locked=True)
            .select_related("broadcast")
            .filter(pk=round_id)
            .first()
        )
        if (
            alert_round is None
            or alert_round.escalated_at is not None
            or alert_round.first_opened_at is not None
            or alert_round.escalate_at is None
            or alert_round.escalate_at > now
            or not _still_waiting(alert_round)
        ):
            return False
        alert_round.escalated_at = now
        alert_round.save(update_fields=["escalated_at"])
        broadcast = alert_round.broadcast
        recipients = alert_selectors.escalation_recipients(broadcast)
        _create_alerts(
            alert_round, recipients, level=Alert.Level.ESCALATION, with_line=True, now=now
        )
        audit_record(
            verb="approval_alerts_escalated",
            actor=None,
            broadcast=broadcast,
            from_status=broadcast.status,
            to_status=broadcast.status,
            comment=(
                f"{settings.ALERT_ESCALATION_MINUTES}分以内に通知を受けた承認者の誰も承認画面を"
                f"開かなかったため、承認者・管理者 {len(recipients)} 人に再通知します。"
            ),
            data={"round": alert_round.pk, "recipients": [u.pk for u in recipients]},
        )
    return True


@dataclass(frozen=True)
class TickResult:
    escalated: list[int]
    sent: int


def approval_alerts_tick(
    *, now_fn: Callable[[], dt.datetime], gateway: LineGateway | None = None
) -> TickResult:
    """Beat, every few seconds: escalate unopened emergency rounds, and send every emergency
    alert still unsent (lost enqueue, a temporary failure, a dead worker)."""
    now = now_fn()
    escalated = [
        rid
        for rid in alert_selectors.rounds_due_for_escalation(now=now)
        if approval_alerts_escalate(round_id=rid, now=now)
    ]
    sent = 0
    for rid in alert_selectors.rounds_with_undelivered_alerts(now=now, stale=STALE_CLAIM):
        sent += approval_alerts_deliver(round_id=rid, now_fn=now_fn, gateway=gateway)
    return TickResult(escalated=escalated, sent=sent)


@transaction.atomic
def approval_alert_opened(*, broadcast: Broadcast, user: User, now: dt.datetime) -> bool:
    """``user`` opened the approval screen: their alerts of the current round count as
    opened (which stops the escalation). Only an alerted person counts."""
    alert_round = alert_selectors.current_round(broadcast)
    if alert_round is None:
        return False
    updated = Alert.objects.filter(
        round=alert_round, recipient=user, opened_at__isnull=True
    ).update(opened_at=now)
    if not updated:
        return False
    AlertRound.objects.filter(pk=alert_round.pk, first_opened_at__isnull=True).update(
        first_opened_at=now
    )
    audit_record(
        verb="approval_alert_opened",
        actor=user,
        broadcast=broadcast,
        from_status=broadcast.status,
        to_status=broadcast.status,
        comment="通知を受けて承認画面を開きました。",
        data={"round": alert_round.pk},
    )
    return True


# --- the reviewers' digest --------------------------------------------------------------------


def digest_message(recipient: User, broadcasts: list[Broadcast]) -> AlertMessage:
    lines = [f"{recipient} さん", "", "次の配信が承認を待っています。", ""]
    for broadcast in broadcasts:
        lines.append(
            f"・{broadcast.title}（{broadcast.author}、{format_jst(broadcast.submitted_at)} 申請）"
        )
        lines.append(f"  {review_url(broadcast)}")
    lines += ["", "このメールは承認待ちの一覧をまとめてお送りしています。"]
    return AlertMessage(
        subject=f"【承認待ち】{len(broadcasts)} 件の配信が承認を待っています",
        body="\n".join(lines),
    )


def review_digests_send(*, now_fn: Callable[[], dt.datetime]) -> int:
    """Beat: one e-mail per reviewer listing every ordinary submission queued for them since
    the last digest and still waiting. Returns how many e-mails were sent."""
    ids = _claim(Q(round__kind=AlertRound.Kind.REVIEW, channel=Alert.Channel.EMAIL), now=now_fn())
    if not ids:
        return 0
    alerts = list(
        Alert.objects.filter(pk__in=ids)
        .select_related("recipient", "round__broadcast__author")
        .order_by("recipient_id", "round__submitted_at", "id")
    )
    by_recipient: dict[int, list[Alert]] = defaultdict(list)
    for alert in alerts:
        if _still_waiting(alert.round):
            by_recipient[alert.recipient_id].append(alert)
        else:
            _finish(alert, status=Alert.Status.SKIPPED, at=now_fn())
    sent = 0
    for group in by_recipient.values():
        recipient = group[0].recipient
        message = digest_message(recipient, [a.round.broadcast for a in group])
        try:
            send_mail(message.subject, message.body, None, [group[0].address])
        except (smtplib.SMTPException, OSError) as exc:
            for alert in group:
                _failed(alert, f"{type(exc).__name__}: {exc}", at=now_fn(), permanent=False)
            continue
        at = now_fn()
        for alert in group:
            _finish(alert, status=Alert.Status.SENT, at=at)
        sent += 1
    return sent
