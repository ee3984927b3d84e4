"""Moderation (policy 6): citizens' messages kept for a while, the policy's list of prohibited
content, the rules that flag likely cases, and what the city did about them (措置).

Policy 10: a message's text is kept only for the retention the city sets
(``ModerationSettings.retention_days``, 30 days by default), then deleted by the purge job
(``tasks/moderation.py``). What staff did stays in the audit log, without the text."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .personal_data import PersonalData

DEFAULT_RETENTION_DAYS = 30


class ProhibitedItem(models.Model):
    """One item of policy 6's list (1)–(15), seeded from the policy's own wording."""

    number = models.PositiveSmallIntegerField(_("号"), unique=True)
    label = models.CharField(_("見出し"), max_length=60)
    text = models.CharField(_("ポリシーの文言"), max_length=200)

    class Meta:
        verbose_name = _("禁止事項（ポリシー6）")
        verbose_name_plural = _("禁止事項（ポリシー6）")
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.clause}「{self.label}」"

    @property
    def clause(self) -> str:
        """「ポリシー6(3)」: how staff screens name the item."""
        return f"ポリシー6({self.number})"


class ModerationSettings(models.Model):
    """The city's settings for kept messages: one row (pk 1)."""

    retention_days = models.PositiveSmallIntegerField(
        _("保存期間（日）"),
        default=DEFAULT_RETENTION_DAYS,
        help_text=_("市民からのメッセージの本文を保存する日数。過ぎたものは自動で削除します。"),
    )
    default_suppression_days = models.PositiveSmallIntegerField(
        _("自動応答停止の既定日数"), default=7
    )
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("メッセージ保存の設定")
        verbose_name_plural = _("メッセージ保存の設定")

    def __str__(self) -> str:
        return f"保存期間 {self.retention_days} 日"


class ModerationRule(models.Model):
    """An admin-editable rule that flags a kept message automatically, naming the item."""

    class Kind(models.TextChoices):
        KEYWORD = "keyword", _("キーワード")
        URL = "url", _("URL（許可ドメイン以外）")
        PATTERN = "pattern", _("個人情報などのパターン（正規表現）")

    name = models.CharField(_("ルール名"), max_length=100)
    kind = models.CharField(_("種類"), max_length=10, choices=Kind.choices, default=Kind.KEYWORD)
    item = models.ForeignKey(
        ProhibitedItem, verbose_name=_("該当する禁止事項"), on_delete=models.PROTECT
    )
    patterns = models.TextField(
        _("キーワード・ドメイン・パターン"),
        blank=True,
        help_text=_(
            "1行に1つ。キーワードは全角・半角、大文字・小文字を区別しません。"
            "URL のルールでは、ここに書いたドメイン（サブドメインを含む）へのリンクは対象外です。"
            "パターンは Python の正規表現です。"
        ),
    )
    is_active = models.BooleanField(_("有効"), default=True)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("自動フラグのルール")
        verbose_name_plural = _("自動フラグのルール")
        ordering = ["item__number", "id"]

    def __str__(self) -> str:
        return self.name

    def pattern_list(self) -> list[str]:
        return [p.strip() for p in self.patterns.splitlines() if p.strip()]


class DraftRiskWordList(models.Model):
    """Words that make the city's own draft a clause-6 risk (the pre-send checklist warns)."""

    name = models.CharField(_("名前"), max_length=100)
    item = models.ForeignKey(
        ProhibitedItem, verbose_name=_("該当する禁止事項"), on_delete=models.PROTECT
    )
    words = models.TextField(
        _("語句"), help_text=_("1行に1つ。全角・半角、大文字・小文字を区別しません。")
    )
    is_active = models.BooleanField(_("有効"), default=True)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("配信前チェックの語句リスト")
        verbose_name_plural = _("配信前チェックの語句リスト")
        ordering = ["item__number", "id"]

    def __str__(self) -> str:
        return self.name

    def word_list(self) -> list[str]:
        return [w.strip() for w in self.words.splitlines() if w.strip()]


class CitizenMessage(models.Model):
    """A message a citizen sent to the account, kept for the moderation inbox."""

    personal_data = PersonalData(
        subject="市民",
        fields=("line_user_id", "text", "note"),
        purpose="禁止事項（運用ポリシー6）に当たる投稿への対応",
        retention="受信から {retention_days} 日（市が設定）",
        purge_beat="purge-citizen-messages",
        purge_job="citizen_messages",
    )

    class FlagSource(models.TextChoices):
        NONE = "", _("なし")
        RULE = "rule", _("自動（ルール）")
        STAFF = "staff", _("職員")

    webhook_event_id = models.CharField(_("Webhook イベントID"), max_length=64, unique=True)
    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, db_index=True)
    message_type = models.CharField(_("メッセージの種類"), max_length=20, default="text")
    text = models.TextField(_("本文"), blank=True)
    received_at = models.DateTimeField(_("受信日時"), default=timezone.now)
    item = models.ForeignKey(
        ProhibitedItem,
        verbose_name=_("禁止事項"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
    )
    #: ``item`` is set (kept in step by the services): the inbox's order uses it with an index
    flagged = models.BooleanField(_("フラグあり"), default=False)
    flag_source = models.CharField(
        _("フラグの付け方"), max_length=10, choices=FlagSource.choices, blank=True, default=""
    )
    #: what the rules found: [{"rule": name, "item": number, "match": what matched}]
    rule_hits = models.JSONField(_("ルールの検出"), default=list, blank=True)
    flagged_at = models.DateTimeField(_("フラグ日時"), null=True, blank=True)
    flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("フラグを付けた職員"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    note = models.TextField(_("メモ"), blank=True)
    replies_suppressed = models.BooleanField(_("自動応答を停止中に受信"), default=False)

    class Meta:
        verbose_name = _("市民からのメッセージ")
        verbose_name_plural = _("市民からのメッセージ")
        ordering = ["-received_at", "-id"]
        permissions = [("moderate_citizenmessage", "市民からのメッセージを確認・対応できる")]
        indexes = [
            models.Index(fields=["received_at"], name="citizenmessage_received_idx"),
            models.Index(fields=["item", "received_at"], name="citizenmessage_item_idx"),
            # the inbox: flagged first, then newest
            models.Index(
                fields=["-flagged", "-received_at", "-id"], name="citizenmessage_inbox_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.line_user_id} {self.received_at:%Y-%m-%d %H:%M}"

    @property
    def is_flagged(self) -> bool:
        return self.item_id is not None


class ModerationMeasure(models.Model):
    """A 措置 the city took about a message or its sender (policy 6, second sentence)."""

    personal_data = PersonalData(
        subject="市民",
        fields=("line_user_id", "detail"),
        purpose="市が講じた措置（ブロックなど）の記録",
        retention="削除の仕組みはありません（市の措置の記録。メッセージ本文は含みません）",
    )

    class Kind(models.TextChoices):
        BLOCKED = "blocked", _("LINE 公式アカウント管理画面でブロック済み")
        CHAT_DELETED = "deleted", _("LINE 公式アカウント管理画面でトークを削除済み")
        REPORTED = "reported", _("関係部署・警察等へ相談・通報済み")
        NONE = "none", _("対応不要と判断")
        OTHER = "other", _("その他")

    message = models.ForeignKey(
        CitizenMessage,
        verbose_name=_("メッセージ"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="measures",
    )
    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, db_index=True)
    kind = models.CharField(_("措置"), max_length=20, choices=Kind.choices)
    item = models.ForeignKey(
        ProhibitedItem,
        verbose_name=_("禁止事項"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    detail = models.CharField(_("内容"), max_length=300, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("記録した職員"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("記録日時"), default=timezone.now)

    class Meta:
        verbose_name = _("措置の記録")
        verbose_name_plural = _("措置の記録")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d}"


class ReplySuppression(models.Model):
    """No automatic replies to this citizen until ``until`` (policy 6: the city's 措置)."""

    personal_data = PersonalData(
        subject="市民",
        fields=("line_user_id", "reason"),
        purpose="自動応答を止めている利用者と期間",
        retention="削除の仕組みはありません（停止の記録）",
    )

    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, db_index=True)
    until = models.DateTimeField(_("停止の終了日時"))
    reason = models.CharField(_("理由"), max_length=300, blank=True)
    message = models.ForeignKey(
        CitizenMessage,
        verbose_name=_("きっかけのメッセージ"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("停止した職員"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("停止日時"), default=timezone.now)
    lifted_at = models.DateTimeField(_("解除日時"), null=True, blank=True)

    class Meta:
        verbose_name = _("自動応答の停止")
        verbose_name_plural = _("自動応答の停止")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["line_user_id", "until"], name="suppression_user_idx")]

    def __str__(self) -> str:
        return f"{self.line_user_id} 〜{self.until:%Y-%m-%d %H:%M}"
