"""Official information (JMA 防災情報XML, allow-listed e-mail) and the rules that turn it into
emergency drafts (issue 15, DESIGN.md §7b). State changes only in services/official.py."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from ..official.drafts import DEFAULT_TEMPLATE
from .broadcast import Broadcast, Category


class OfficialRule(models.Model):
    """Admin-edited: which official information, where, from which threshold, becomes which
    draft. Every change is audited (``services.official.official_rule_save``)."""

    class Kind(models.TextChoices):
        WEATHER_WARNING = "weather_warning", _("気象警報・注意報")
        EARTHQUAKE = "earthquake", _("地震（震度）")
        LANDSLIDE = "landslide", _("土砂災害警戒情報")
        RIVER_FLOOD = "river_flood", _("指定河川洪水予報")
        RECORD_RAIN = "record_rain", _("記録的短時間大雨情報")
        TORNADO = "tornado", _("竜巻注意情報")
        MAIL = "mail", _("防災メール")

    class Intensity(models.TextChoices):
        NONE = "", _("（地震以外）")
        I3 = "3", _("震度３以上")
        I4 = "4", _("震度４以上")
        I5L = "5-", _("震度５弱以上")
        I5U = "5+", _("震度５強以上")
        I6L = "6-", _("震度６弱以上")

    name = models.CharField(_("規則の名前"), max_length=100)
    kind = models.CharField(_("情報の種類"), max_length=20, choices=Kind.choices)
    area_codes = models.CharField(
        _("対象地域のコード"),
        max_length=200,
        blank=True,
        help_text=_(
            "気象庁の地域コードをカンマ区切りで（柏市 1221700、千葉県北西部 341〔地震〕・"
            "120010〔気象〕）。河川・メールでは空欄。"
        ),
    )
    names = models.CharField(
        _("対象の名称"),
        max_length=300,
        blank=True,
        help_text=_(
            "カンマ区切り。警報名の一部（例: 特別警報、警報）、河川名（例: 利根川）、"
            "メールの件名・本文に含まれる語。空欄ならすべて。"
        ),
    )
    min_intensity = models.CharField(
        _("震度の基準"), max_length=2, choices=Intensity.choices, blank=True, default=""
    )
    priority = models.CharField(
        _("優先度"),
        max_length=20,
        # 通常 or 緊急: a 時間外配信 needs a person's reason, which a rule cannot give.
        choices=[
            (Broadcast.Priority.NORMAL.value, Broadcast.Priority.NORMAL.label),
            (Broadcast.Priority.EMERGENCY.value, Broadcast.Priority.EMERGENCY.label),
        ],
        default=Broadcast.Priority.EMERGENCY,
    )
    category = models.ForeignKey(Category, verbose_name=_("カテゴリ"), on_delete=models.PROTECT)
    audience = models.CharField(
        _("配信対象"),
        max_length=20,
        choices=Broadcast.Audience.choices,
        default=Broadcast.Audience.SUBSCRIBERS,
    )
    template = models.TextField(
        _("文面のひな形"),
        default=DEFAULT_TEMPLATE,
        help_text=_("使える差し込み: {見出し} {内容} {地域} {行動} {発表時刻} {発表者} {詳細URL}"),
    )
    enabled = models.BooleanField(_("有効"), default=True)
    sort_order = models.PositiveSmallIntegerField(_("表示順"), default=0)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("防災情報の起案規則")
        verbose_name_plural = _("防災情報の起案規則")
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def area_code_set(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.area_codes.split(",") if c.strip())

    @property
    def name_list(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.names.replace("、", ",").split(",") if n.strip())


class OfficialMessage(models.Model):
    """One message received (or refused), once: keyed by data type + EventID + Serial +
    InfoType (a unique constraint, so two polls or two beats never make two rows)."""

    class Source(models.TextChoices):
        FEED = "feed", _("気象庁フィード")
        FILE = "file", _("手動取り込み")
        MAIL = "mail", _("メール")

    class Outcome(models.TextChoices):
        DRAFTED = "drafted", _("下書きを作成")
        UPDATED = "updated", _("承認待ちの下書きを更新")
        FOLLOW_UP = "follow_up", _("続報・訂正・取消の下書きを作成")
        CANCELLED = "cancelled", _("承認待ちの下書きを取消")
        IGNORED = "ignored", _("対象外")
        REFUSED = "refused", _("受信拒否")
        FAILED = "failed", _("処理に失敗")

    source = models.CharField(_("受信経路"), max_length=10, choices=Source.choices)
    data_type = models.CharField(_("電文の種類コード"), max_length=12, blank=True)
    kind = models.CharField(_("情報の種類"), max_length=20, blank=True)
    event_id = models.CharField(_("EventID"), max_length=200, blank=True)
    serial = models.CharField(_("Serial"), max_length=40, blank=True)
    info_type = models.CharField(_("情報形態"), max_length=10, blank=True)
    control_status = models.CharField(_("運用種別"), max_length=10, blank=True)
    title = models.CharField(_("標題"), max_length=200, blank=True)
    publisher = models.CharField(_("発表者"), max_length=200, blank=True)
    headline = models.TextField(_("見出し"), blank=True)
    reported_at = models.DateTimeField(_("発表日時"), null=True, blank=True)
    received_at = models.DateTimeField(_("受信日時"), db_index=True)
    url = models.CharField(_("取得元"), max_length=500, blank=True, db_index=True)
    raw = models.TextField(_("電文"), blank=True)
    thread_key = models.CharField(_("続報の系列"), max_length=300, blank=True, db_index=True)
    rule = models.ForeignKey(
        OfficialRule,
        verbose_name=_("該当した規則"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    finding = models.CharField(_("柏市に関する内容"), max_length=300, blank=True)
    outcome = models.CharField(_("処理結果"), max_length=12, choices=Outcome.choices)
    reason = models.TextField(_("理由"), blank=True)
    broadcast = models.ForeignKey(
        Broadcast,
        verbose_name=_("作成・更新した配信"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="official_messages",
    )

    class Meta:
        verbose_name = _("受信した防災情報")
        verbose_name_plural = _("受信した防災情報")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["data_type", "event_id", "serial", "info_type"],
                name="official_message_once",
            )
        ]

    def __str__(self) -> str:
        return self.title or self.event_id


class OfficialFeed(models.Model):
    """A polled Atom feed: its validators for conditional GET and its health (運用状況)."""

    url = models.CharField(_("URL"), max_length=500, unique=True)
    etag = models.CharField(_("ETag"), max_length=300, blank=True)
    last_modified = models.CharField(_("Last-Modified"), max_length=100, blank=True)
    last_polled_at = models.DateTimeField(_("最終取得日時"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("最終成功日時"), null=True, blank=True)
    last_error = models.TextField(_("最後のエラー"), blank=True)
    last_error_at = models.DateTimeField(_("最後のエラー日時"), null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(_("連続失敗回数"), default=0)

    class Meta:
        verbose_name = _("防災情報フィード")
        verbose_name_plural = _("防災情報フィード")
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url
