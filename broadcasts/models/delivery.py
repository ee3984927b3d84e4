"""The LINE API requests of a broadcast."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .broadcast import Broadcast
from .personal_data import PersonalData


class Delivery(models.Model):
    """One LINE API request of a broadcast, created (and committed) before the call is made.

    Its ``retry_key`` is sent as ``X-Line-Retry-Key`` on every attempt, so LINE accepts it
    at most once (DESIGN.md §5)."""

    personal_data = PersonalData(
        subject="市民",
        fields=("recipients",),
        purpose="マルチキャスト配信の宛先（再送しても同じ人に二度届けないため）",
        retention="削除の仕組みはありません（配信の記録として残ります）",
    )

    class Kind(models.TextChoices):
        BROADCAST = "broadcast", _("一斉配信")
        MULTICAST = "multicast", _("マルチキャスト")

    class Status(models.TextChoices):
        PENDING = "pending", _("未送信")
        ACCEPTED = "accepted", _("受付済み")
        FAILED = "failed", _("失敗")
        NEEDS_ATTENTION = "needs_attention", _("要対応")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.PROTECT, related_name="deliveries")
    seq = models.PositiveIntegerField(_("番号"))
    kind = models.CharField(_("種類"), max_length=20, choices=Kind.choices)
    recipients = models.JSONField(_("宛先"), default=list, blank=True)
    recipient_count = models.PositiveIntegerField(_("宛先数"), default=0)
    retry_key = models.UUIDField(_("再試行キー"), default=uuid.uuid4, unique=True, editable=False)
    key_created_at = models.DateTimeField(_("キー作成日時"), default=timezone.now)
    status = models.CharField(
        _("状態"), max_length=20, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("試行回数"), default=0)
    last_attempt_at = models.DateTimeField(_("最終試行日時"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("受付日時"), null=True, blank=True)
    request_id = models.CharField(_("LINE リクエストID"), max_length=64, blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP ステータス"), null=True, blank=True)
    last_error = models.TextField(_("エラー"), blank=True)
    # The language version this request carries (issue 16): blank is the base (日本語).
    language_code = models.CharField(_("言語"), max_length=30, blank=True)

    class Meta:
        verbose_name = _("送信リクエスト")
        verbose_name_plural = _("送信リクエスト")
        ordering = ["broadcast_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "seq"], name="delivery_unique_seq"),
        ]
        indexes = [models.Index(fields=["broadcast", "status"], name="delivery_status_idx")]

    def __str__(self) -> str:
        return f"{self.broadcast_id}#{self.seq}"
