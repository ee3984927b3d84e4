"""LINE's numbers (Insight API): per broadcast and per day."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .broadcast import Broadcast


class BroadcastStats(models.Model):
    """LINE's numbers for one sent broadcast (Insight API), refreshed in the background.

    ``None`` means LINE has no number (not ready yet, hidden under its privacy threshold, or
    not kept for multicast sends)."""

    broadcast = models.OneToOneField(Broadcast, on_delete=models.CASCADE, related_name="stats")
    fetched_at = models.DateTimeField(_("取得日時"))
    ready = models.BooleanField(_("集計済み"), default=False)
    delivered = models.PositiveIntegerField(_("配信数"), null=True, blank=True)
    unique_impression = models.PositiveIntegerField(_("開封数"), null=True, blank=True)
    unique_click = models.PositiveIntegerField(_("クリック数"), null=True, blank=True)
    raw = models.JSONField(_("LINE の応答"), default=dict, blank=True)

    class Meta:
        verbose_name = _("配信の統計")
        verbose_name_plural = _("配信の統計")

    def __str__(self) -> str:
        return f"{self.broadcast_id} {self.delivered}"


class DailyStats(models.Model):
    """The account's numbers for one JST day: followers (Insight API) and messages delivered."""

    date = models.DateField(_("日付"), unique=True)
    fetched_at = models.DateTimeField(_("取得日時"))
    followers = models.PositiveIntegerField(_("友だち数"), null=True, blank=True)
    targeted_reaches = models.PositiveIntegerField(_("ターゲットリーチ"), null=True, blank=True)
    blocks = models.PositiveIntegerField(_("ブロック数"), null=True, blank=True)
    broadcast_delivered = models.PositiveIntegerField(_("一斉配信数"), null=True, blank=True)
    multicast_delivered = models.PositiveIntegerField(
        _("マルチキャスト配信数"), null=True, blank=True
    )
    raw = models.JSONField(_("LINE の応答"), default=dict, blank=True)

    class Meta:
        verbose_name = _("日別の統計")
        verbose_name_plural = _("日別の統計")
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.followers}"
