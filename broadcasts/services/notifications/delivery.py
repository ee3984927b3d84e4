"""Once-only sending of staff alerts: the rows, the claim before a send, the outcome.

One ``Alert`` row per (round, person, channel, level) by a unique constraint; a worker claims
rows in a committed transaction before it sends (another worker skips them); a claim older
than ``STALE_CLAIM`` belongs to a worker that died and is taken over."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import smtplib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse

from ...models import (
    Alert,
    AlertRound,
    Broadcast,
    User,
)
from ...selectors import notifications as alert_selectors

logger = logging.getLogger(__name__)


#: a claim older than this belongs to a worker that died: the alert is sent again
STALE_CLAIM = dt.timedelta(minutes=2)
#: temporary failures (LINE 5xx, mail server down) are retried by the beat task this often
MAX_ATTEMPTS = 5


def create_alerts(
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


def claim(filters: Q, *, now: dt.datetime) -> list[int]:
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


def finish(
    alert: Alert, *, status: str, at: dt.datetime, error: str = "", request_id: str = ""
) -> None:
    fields: dict[str, Any] = {"status": status, "error": error[:500]}
    if status == Alert.Status.SENT:
        fields.update(sent_at=at, request_id=request_id[:100])
    Alert.objects.filter(pk=alert.pk, status=Alert.Status.SENDING).update(**fields)


def failed(alert: Alert, error: str, *, at: dt.datetime, permanent: bool) -> None:
    """A temporary failure goes back to the queue (the beat task retries it) until
    ``MAX_ATTEMPTS``; a permanent one stops."""
    final = permanent or alert.attempts >= MAX_ATTEMPTS
    logger.warning(
        "alert %s to user %s by %s failed: %s", alert.pk, alert.recipient_id, alert.channel, error
    )
    finish(alert, status=Alert.Status.FAILED if final else Alert.Status.PENDING, at=at, error=error)


def still_waiting(alert_round: AlertRound) -> bool:
    broadcast = alert_round.broadcast
    return (
        broadcast.status == Broadcast.Status.PENDING_REVIEW
        and broadcast.submitted_at == alert_round.submitted_at
    )


def alert_message_id(alert: Alert) -> str:
    """A Message-ID made of the alert's retry key (the LINE push's X-Line-Retry-Key)."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(" >") or "localhost"
    return f"<alert-{alert.retry_key}@{domain}>"


class MailSender:
    """E-mails over one connection; after the first failure the rest fail at once (they stay
    queued for the beat task) instead of each waiting for the mail server's timeout."""

    def __init__(self) -> None:
        self._connection: Any = None
        self._error: Exception | None = None

    def send(self, message: AlertMessage, address: str, *, message_id: str = "") -> None:
        """``message_id``: the alert's own, the same on every attempt, so that a copy re-sent
        after a worker died between the mail server's acceptance and our commit is one mail
        twice (mail systems that de-duplicate by Message-ID show it once), not two alerts."""
        if self._error is not None:
            raise smtplib.SMTPException(f"メールサーバーに接続できませんでした（{self._error}）")
        try:
            if self._connection is None:
                self._connection = get_connection(fail_silently=False)
            email = EmailMessage(
                message.subject,
                message.body,
                None,
                [address],
                connection=self._connection,
                headers={"Message-ID": message_id} if message_id else None,
            )
            email.send()
        except (smtplib.SMTPException, OSError) as exc:
            self._error = exc
            raise

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
