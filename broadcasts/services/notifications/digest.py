"""The reviewers' digest: ordinary submissions reach reviewers as one e-mail, never LINE."""

from __future__ import annotations

import datetime as dt
import smtplib
from collections import defaultdict
from collections.abc import Callable

from django.core.mail import send_mail
from django.db.models import Q

from ...models import (
    Alert,
    AlertRound,
    Broadcast,
    User,
)
from ...schedule import format_jst
from .delivery import AlertMessage, claim, failed, finish, review_url, still_waiting


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
    ids = claim(Q(round__kind=AlertRound.Kind.REVIEW, channel=Alert.Channel.EMAIL), now=now_fn())
    if not ids:
        return 0
    alerts = list(
        Alert.objects.filter(pk__in=ids)
        .select_related("recipient", "round__broadcast__author")
        .order_by("recipient_id", "round__submitted_at", "id")
    )
    by_recipient: dict[int, list[Alert]] = defaultdict(list)
    for alert in alerts:
        if still_waiting(alert.round):
            by_recipient[alert.recipient_id].append(alert)
        else:
            finish(alert, status=Alert.Status.SKIPPED, at=now_fn())
    sent = 0
    for group in by_recipient.values():
        recipient = group[0].recipient
        message = digest_message(recipient, [a.round.broadcast for a in group])
        try:
            send_mail(message.subject, message.body, None, [group[0].address])
        except (smtplib.SMTPException, OSError) as exc:
            for alert in group:
                failed(alert, f"{type(exc).__name__}: {exc}", at=now_fn(), permanent=False)
            continue
        at = now_fn()
        for alert in group:
            finish(alert, status=Alert.Status.SENT, at=at)
        sent += 1
    return sent
