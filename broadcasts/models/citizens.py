"""The citizen side (issue 7): followers, webhook events, automatic replies, notices."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .broadcast import Category
from .personal_data import PersonalData


class Follower(models.Model):
    """A citizen who added the account as a friend. Policy 10: LINE user ID and chosen
    categories only — no profile data."""

    personal_data = PersonalData(
        subject="市民",
        fields=(
            "line_user_id",
            "followed_at",
            "unfollowed_at",
            "categories",
            "category_bits",
            "area_bits",
            "age_group_bits",
            "language",
        ),
        purpose="お知らせを届ける相手と、選んだ受信カテゴリ・地区・子どもの年齢・言語（受信設定）",
        retention="削除の仕組みはありません（ブロックされた後も、再び友だち追加されたときに設定を戻すため残ります）",
    )

    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, unique=True)
    followed_at = models.DateTimeField(_("友だち追加日時"), default=timezone.now)
    unfollowed_at = models.DateTimeField(_("ブロック日時"), null=True, blank=True)
    categories = models.ManyToManyField(Category, verbose_name=_("受信カテゴリ"), blank=True)
    is_staff_test_recipient = models.BooleanField(_("職員テスト受信者"), default=False)
    # The citizen's choices once more, on their own row, for counting (issue 16): one bit per
    # option (``models/bits.py``), written by the services with the choice tables and rebuilt
    # from them by ``followers_bits_rebuild``. The choice tables stay the truth.
    category_bits = models.BigIntegerField(_("受信カテゴリ（集計用）"), default=0, editable=False)
    area_bits = models.BigIntegerField(_("地区（集計用）"), default=0, editable=False)
    age_group_bits = models.BigIntegerField(_("子どもの年齢（集計用）"), default=0, editable=False)
    language = models.ForeignKey(
        "broadcasts.Language",
        verbose_name=_("言語（集計用）"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("友だち")
        verbose_name_plural = _("友だち")
        indexes = [models.Index(fields=["unfollowed_at", "id"], name="follower_active_idx")]

    def __str__(self) -> str:
        return self.line_user_id

    @property
    def is_active(self) -> bool:
        return self.unfollowed_at is None


class WebhookEvent(models.Model):
    """One event LINE posted to the webhook, stored before it is processed.

    ``webhook_event_id`` is unique: a redelivered event is stored (and processed) once.
    Policy 10: the payload keeps only what processing needs; message text and the reply token
    are blanked as soon as the event has been processed."""

    personal_data = PersonalData(
        subject="市民",
        fields=("line_user_id", "payload"),
        purpose="LINE から届いたイベント（友だち追加・メッセージ・受信設定の操作）の処理",
        retention="本文と応答トークンは処理の直後に消去、イベントは処理から30日後に削除",
        purge_beat="purge-webhook-events",
        purge_job="webhook_events",
    )

    webhook_event_id = models.CharField(_("Webhook イベントID"), max_length=64, unique=True)
    event_type = models.CharField(_("種類"), max_length=40)
    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, blank=True)
    payload = models.JSONField(_("内容"), default=dict, blank=True)
    is_redelivery = models.BooleanField(_("再送"), default=False)
    received_at = models.DateTimeField(_("受信日時"), default=timezone.now, db_index=True)
    processing_started_at = models.DateTimeField(_("処理開始日時"), null=True, blank=True)
    processed_at = models.DateTimeField(_("処理日時"), null=True, blank=True)
    error = models.TextField(_("エラー"), blank=True)

    class Meta:
        verbose_name = _("Webhook イベント")
        verbose_name_plural = _("Webhook イベント")
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["processed_at", "received_at"], name="webhook_pending_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_event_id}"


class AutoReplyRule(models.Model):
    """An automatic response to a keyword (policy 5(2)): the only answers citizens get."""

    class MatchType(models.TextChoices):
        EXACT = "exact", _("完全一致")
        CONTAINS = "contains", _("部分一致")

    name = models.CharField(_("ルール名"), max_length=100)
    match_type = models.CharField(
        _("一致の方法"), max_length=10, choices=MatchType.choices, default=MatchType.CONTAINS
    )
    keywords = models.TextField(
        _("キーワード"),
        help_text=_("1行に1つ。全角・半角、大文字・小文字の違いは区別しません。"),
    )
    priority = models.PositiveSmallIntegerField(
        _("優先順位"), default=100, help_text=_("小さい数字のルールから順に照合します。")
    )
    active_from = models.DateTimeField(_("有効期間（開始）"), null=True, blank=True)
    active_until = models.DateTimeField(_("有効期間（終了）"), null=True, blank=True)
    messages = models.JSONField(
        _("応答メッセージ"), default=list, help_text=_("LINE のメッセージオブジェクト（1〜5件）")
    )
    is_active = models.BooleanField(_("有効"), default=True)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("自動応答ルール")
        verbose_name_plural = _("自動応答ルール")
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    def keyword_list(self) -> list[str]:
        return [k.strip() for k in self.keywords.splitlines() if k.strip()]


class StandardReply(models.Model):
    """The greeting on follow and the default reply when no rule matches (admin-edited)."""

    class Kind(models.TextChoices):
        GREETING = "greeting", _("友だち追加時のあいさつ")
        DEFAULT = "default", _("該当するルールがないときの応答")

    kind = models.CharField(_("種類"), max_length=20, choices=Kind.choices, unique=True)
    messages = models.JSONField(_("メッセージ"), default=list)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("あいさつ・既定の応答")
        verbose_name_plural = _("あいさつ・既定の応答")
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.get_kind_display()


class PublicNotice(models.Model):
    """A notice on the public verification page, e.g. a warning about impersonators (5(4))."""

    title = models.CharField(_("見出し"), max_length=120)
    body = models.TextField(_("本文"))
    is_published = models.BooleanField(_("公開する"), default=False)
    published_at = models.DateTimeField(_("公開日時"), null=True, blank=True)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("公開ページのお知らせ")
        verbose_name_plural = _("公開ページのお知らせ")
        ordering = ["-published_at", "-id"]

    def __str__(self) -> str:
        return self.title
