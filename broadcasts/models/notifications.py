"""Staff alerts (issue 13): who is told that a broadcast waits for them, how, and who looked.

An emergency (or drill) waiting for approval alerts every 承認者 at once, by a LINE push to
the LINE account they linked (``LineLink``) and by e-mail; one ``Alert`` row per person,
channel and level, made in the submission's transaction and sent after it commits. If no
alerted person opens the approval screen in time, the round escalates (level 1) to every
承認者 and 管理者. Ordinary submissions queue e-mail rows that a digest sends in batches."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .broadcast import Broadcast
from .personal_data import PersonalData


class LineLink(models.Model):
    """A staff member's own LINE account, linked once with a one-time code they sent to the
    official account from it. Approval alerts are pushed to it."""

    personal_data = PersonalData(
        subject="職員",
        fields=("line_user_id",),
        purpose="緊急配信の承認依頼を職員本人の LINE に送るため",
        retention="職員が連携を解除するまで",
    )

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="line_link"
    )
    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, unique=True)
    linked_at = models.DateTimeField(_("連携日時"))

    class Meta:
        verbose_name = _("LINE 連携（職員）")
        verbose_name_plural = _("LINE 連携（職員）")

    def __str__(self) -> str:
        return f"{self.user} (LINE)"


class LineLinkCode(models.Model):
    """A one-time code a staff member sends to the official account to link their LINE.

    Only its SHA-256 digest is kept: the code is shown once, when it is issued."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="line_link_codes"
    )
    code_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("LINE 連携コード")
        verbose_name_plural = _("LINE 連携コード")

    def __str__(self) -> str:
        return f"{self.user} ({self.created_at:%Y-%m-%d %H:%M})"


class LineLinkAttempt(models.Model):
    """A link code sent from a LINE account that did not link it (wrong, expired, used):
    counted per LINE account to slow down guessing. Nothing of the text is kept."""

    personal_data = PersonalData(
        subject="市民・職員",
        fields=("line_user_id",),
        purpose="連携コードの総当たりを防ぐため（送った LINE アカウントごとに数える）",
        retention="1 日",
        purge_beat="review-digests",
    )

    line_user_id = models.CharField(max_length=64)
    attempted_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["line_user_id", "attempted_at"])]

    def __str__(self) -> str:
        return f"…{self.line_user_id[-4:]} {self.attempted_at:%Y-%m-%d %H:%M}"


class AlertRound(models.Model):
    """The alerts of one submission of a broadcast (a broadcast withdrawn and submitted again
    starts a new round)."""

    class Kind(models.TextChoices):
        EMERGENCY = "emergency", _("緊急（承認者へ即時）")
        REVIEW = "review", _("通常（広報担当へまとめてメール）")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="alert_rounds")
    submitted_at = models.DateTimeField(_("申請日時"))
    kind = models.CharField(_("種類"), max_length=20, choices=Kind.choices)
    escalate_at = models.DateTimeField(_("再通知の予定"), null=True, blank=True)
    escalated_at = models.DateTimeField(_("再通知日時"), null=True, blank=True)
    first_opened_at = models.DateTimeField(_("最初に開かれた日時"), null=True, blank=True)

    class Meta:
        verbose_name = _("承認依頼の通知")
        verbose_name_plural = _("承認依頼の通知")
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "submitted_at"], name="alert_round_once_per_submission"
            )
        ]
        indexes = [models.Index(fields=["kind", "escalated_at", "escalate_at"])]

    def __str__(self) -> str:
        return f"{self.broadcast_id} @ {self.submitted_at:%Y-%m-%d %H:%M}"


class Alert(models.Model):
    """One alert to one person by one channel at one level: sent at most once (the unique
    constraint, and a claim committed before the send; LINE pushes carry a retry key)."""

    personal_data = PersonalData(
        subject="職員",
        fields=("address",),
        purpose="誰にいつ承認依頼を送ったかの記録（緊急配信の経過）",
        retention="配信の記録がある間（配信と同じ）",
    )

    class Channel(models.TextChoices):
        LINE = "line", _("LINE")
        EMAIL = "email", _("メール")

    class Level(models.IntegerChoices):
        FIRST = 0, _("通知")
        ESCALATION = 1, _("再通知（未対応）")

    class Status(models.TextChoices):
        PENDING = "pending", _("送信待ち")
        SENDING = "sending", _("送信中")
        SENT = "sent", _("送信済み")
        FAILED = "failed", _("送信失敗")
        SKIPPED = "skipped", _("送信不要（対応済み）")

    round = models.ForeignKey(AlertRound, on_delete=models.CASCADE, related_name="alerts")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts"
    )
    channel = models.CharField(_("経路"), max_length=10, choices=Channel.choices)
    level = models.PositiveSmallIntegerField(_("段階"), choices=Level.choices, default=0)
    address = models.CharField(_("宛先"), max_length=254)
    status = models.CharField(
        _("状態"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    retry_key = models.UUIDField(default=uuid.uuid4, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(_("作成日時"))
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("送信日時"), null=True, blank=True)
    opened_at = models.DateTimeField(_("開封日時"), null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    error = models.CharField(_("エラー"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("通知")
        verbose_name_plural = _("通知")
        constraints = [
            models.UniqueConstraint(
                fields=["round", "recipient", "channel", "level"],
                name="alert_once_per_person_channel_level",
            )
        ]
        indexes = [models.Index(fields=["status", "channel"])]

    def __str__(self) -> str:
        return f"{self.recipient_id} {self.channel} L{self.level} {self.status}"
