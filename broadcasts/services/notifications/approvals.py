"""Emergency and drill alerts to 承認者: at once, escalated once when nobody opens them."""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from ...line.errors import LinePermanentError, LineTemporaryError
from ...line.gateway import LineGateway, get_gateway
from ...models import (
    Alert,
    AlertRound,
    Broadcast,
    User,
)
from ...schedule import format_jst
from ...selectors import notifications as alert_selectors
from .. import enqueue
from ..audit import audit_record
from .delivery import (
    STALE_CLAIM,
    AlertMessage,
    MailSender,
    alert_message_id,
    alert_url,
    claim,
    create_alerts,
    failed,
    finish,
    still_waiting,
)

DRILL_MARKER = "【訓練】"
#: the registered task (``broadcasts/tasks/notifications.py``), sent through ``enqueue``
DELIVER_APPROVAL_ALERTS = enqueue.DELIVER_APPROVAL_ALERTS


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
        if create_alerts(alert_round, recipients, level=Alert.Level.FIRST, with_line=True, now=now):
            _enqueue_delivery(alert_round.pk)
        else:
            # No 承認者 can be reached (no LINE link, no e-mail): waiting for nobody to open
            # it helps no one; the next beat tick alerts every 承認者 and 管理者.
            alert_round.escalate_at = now
            alert_round.save(update_fields=["escalate_at"])
    else:
        recipients = alert_selectors.reviewers(broadcast)
        create_alerts(alert_round, recipients, level=Alert.Level.FIRST, with_line=False, now=now)
    return alert_round


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


def approval_alerts_deliver(
    *,
    round_id: int,
    now_fn: Callable[[], dt.datetime],
    gateway: LineGateway | None = None,
) -> int:
    """Send the round's unsent emergency alerts: LINE pushes first (the phone in a pocket),
    then e-mail. Alerts for a broadcast that no longer waits (approved, withdrawn) are not
    sent. Returns how many were sent."""
    ids = claim(Q(round_id=round_id), now=now_fn())
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
    if not still_waiting(alert_round):
        for alert in alerts:
            finish(alert, status=Alert.Status.SKIPPED, at=now_fn())
        return 0
    messages = {
        level: alert_message(broadcast, alert_round, level) for level in {a.level for a in alerts}
    }
    sent: list[Alert] = []
    # One connection to the mail server for the round; once it fails, the round's other
    # e-mails wait for the beat task: a mail server that does not answer holds this worker
    # (which also sends emergencies) for one EMAIL_TIMEOUT, not one per person.
    mail = MailSender()
    try:
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
                    mail.send(message, alert.address, message_id=alert_message_id(alert))
                    request_id = ""
            except LinePermanentError as exc:
                failed(alert, f"LINE: {exc}", at=now_fn(), permanent=True)
            except (LineTemporaryError, smtplib.SMTPException, OSError) as exc:
                failed(alert, f"{type(exc).__name__}: {exc}", at=now_fn(), permanent=False)
            else:
                finish(alert, status=Alert.Status.SENT, at=now_fn(), request_id=request_id)
                sent.append(alert)
    finally:
        mail.close()
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
            or not still_waiting(alert_round)
        ):
            return False
        alert_round.escalated_at = now
        alert_round.save(update_fields=["escalated_at"])
        broadcast = alert_round.broadcast
        recipients = alert_selectors.escalation_recipients(broadcast)
        create_alerts(
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
