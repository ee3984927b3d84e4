"""The data model. State changes happen only in ``services.py``; see DESIGN.md §3."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Division(models.Model):
    """A division of the city office (課), e.g. 広報広聴課."""

    name = models.CharField(_("課名"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("担当課")
        verbose_name_plural = _("担当課")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A member of staff. Citizens never have accounts here (they are ``Follower`` rows)."""

    division = models.ForeignKey(
        Division, verbose_name=_("担当課"), null=True, blank=True, on_delete=models.PROTECT
    )
    # Set when an admin set this user's password: they choose their own at the next login.
    must_change_password = models.BooleanField(_("次回ログイン時にパスワード変更"), default=False)

    class Meta(AbstractUser.Meta):
        verbose_name = _("職員")
        verbose_name_plural = _("職員")

    def __str__(self) -> str:
        full = f"{self.last_name} {self.first_name}".strip()
        return full or self.username


class Category(models.Model):
    """The eleven information categories of policy 4(1), seeded by a data migration."""

    code = models.SlugField(_("コード"), max_length=40, unique=True)
    label = models.CharField(_("名称"), max_length=60)
    sort_order = models.PositiveSmallIntegerField(_("表示順"), default=0)
    color = models.CharField(_("表示色"), max_length=7, default="#1a4f9c")
    is_emergency_default = models.BooleanField(_("既定で緊急"), default=False)

    class Meta:
        verbose_name = _("カテゴリ")
        verbose_name_plural = _("カテゴリ")
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.label


class Follower(models.Model):
    """A citizen who added the account as a friend. Policy 10: LINE user ID and chosen
    categories only — no profile data."""

    line_user_id = models.CharField(_("LINE ユーザーID"), max_length=64, unique=True)
    followed_at = models.DateTimeField(_("友だち追加日時"), default=timezone.now)
    unfollowed_at = models.DateTimeField(_("ブロック日時"), null=True, blank=True)
    categories = models.ManyToManyField(Category, verbose_name=_("受信カテゴリ"), blank=True)
    is_staff_test_recipient = models.BooleanField(_("職員テスト受信者"), default=False)

    class Meta:
        verbose_name = _("友だち")
        verbose_name_plural = _("友だち")
        indexes = [models.Index(fields=["unfollowed_at", "id"], name="follower_active_idx")]

    def __str__(self) -> str:
        return self.line_user_id

    @property
    def is_active(self) -> bool:
        return self.unfollowed_at is None


class Broadcast(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("下書き")
        PENDING_REVIEW = "pending_review", _("承認待ち")
        REJECTED = "rejected", _("差し戻し")
        SCHEDULED = "scheduled", _("配信予定")
        SENDING = "sending", _("配信中")
        SENT = "sent", _("配信済み")
        FAILED = "failed", _("失敗")
        NEEDS_ATTENTION = "needs_attention", _("要対応")
        CANCELLED = "cancelled", _("取消済み")

    class Audience(models.TextChoices):
        ALL = "all", _("すべての友だち")
        SUBSCRIBERS = "subscribers", _("カテゴリの受信登録者")
        STAFF_TEST = "staff_test", _("職員テスト受信者のみ")

    class Priority(models.TextChoices):
        NORMAL = "normal", _("通常")
        EMERGENCY = "emergency", _("緊急")

    class Kind(models.TextChoices):
        LIVE = "live", _("本番")
        DRILL = "drill", _("訓練")
        CORRECTION = "correction", _("訂正")
        CANCELLATION = "cancellation", _("取消")

    title = models.CharField(_("件名（職員用）"), max_length=120)
    categories = models.ManyToManyField(Category, verbose_name=_("カテゴリ"), blank=True)
    messages = models.JSONField(_("メッセージ"), default=list, blank=True)
    audience = models.CharField(
        _("配信対象"), max_length=20, choices=Audience.choices, default=Audience.ALL
    )
    requested_at = models.DateTimeField(
        _("配信希望日時"), null=True, blank=True, help_text=_("空欄なら配信可能になり次第")
    )
    priority = models.CharField(
        _("優先度"), max_length=20, choices=Priority.choices, default=Priority.NORMAL
    )
    emergency_reason = models.TextField(_("緊急配信の理由"), blank=True)
    kind = models.CharField(_("種別"), max_length=20, choices=Kind.choices, default=Kind.LIVE)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("元の配信"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="follow_ups",
    )
    notification_disabled = models.BooleanField(_("通知しない"), default=False)
    division = models.ForeignKey(
        Division, verbose_name=_("担当課"), null=True, blank=True, on_delete=models.PROTECT
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("起案者"),
        on_delete=models.PROTECT,
        related_name="authored_broadcasts",
    )

    status = models.CharField(
        _("状態"), max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    content_hash = models.CharField(_("内容ハッシュ"), max_length=64, blank=True)
    submitted_at = models.DateTimeField(_("申請日時"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("承認者"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approved_broadcasts",
    )
    approved_at = models.DateTimeField(_("承認日時"), null=True, blank=True)
    approved_hash = models.CharField(_("承認時の内容ハッシュ"), max_length=64, blank=True)
    # When the dispatcher may claim it: the effective send time computed by schedule.py.
    scheduled_for = models.DateTimeField(_("配信予定日時"), null=True, blank=True)
    hold_reason = models.CharField(_("保留の理由"), max_length=200, blank=True)
    sending_started_at = models.DateTimeField(_("配信開始日時"), null=True, blank=True)
    sent_at = models.DateTimeField(_("配信完了日時"), null=True, blank=True)
    # A sending worker holds a lease it renews after each request; an expired lease lets the
    # dispatcher hand the send to another worker (retry keys keep that safe).
    lease_owner = models.CharField(_("送信中のワーカー"), max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(_("送信処理の期限"), null=True, blank=True)
    # Set when the send reserved its messages against the month's quota (before its first
    # request): later sends count what reserved sends have not yet used (issue 12 finding 8).
    quota_reserved_at = models.DateTimeField(_("配信可能数の確保日時"), null=True, blank=True)
    last_error = models.TextField(_("エラー"), blank=True)
    recipient_count = models.PositiveIntegerField(_("受信者数"), null=True, blank=True)
    deliveries_total = models.PositiveIntegerField(_("送信リクエスト数"), default=0)
    deliveries_accepted = models.PositiveIntegerField(_("受付済みリクエスト数"), default=0)

    created_at = models.DateTimeField(_("作成日時"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("配信")
        verbose_name_plural = _("配信")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("submit_broadcast", "配信を起案・申請できる"),
            ("send_test_broadcast", "職員テスト受信者へテスト配信できる"),
            ("review_broadcast", "通常配信を審査・承認・差し戻し・取消できる"),
            ("approve_emergency_broadcast", "緊急配信を承認できる"),
        ]
        indexes = [
            models.Index(fields=["status", "scheduled_for"], name="broadcast_due_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="broadcast_lease_idx"),
            # The list's order: when it went or will go out, newest first (issue 6 bench).
            models.Index(
                Coalesce("sent_at", "scheduled_for", "requested_at", "created_at").desc(),
                F("id").desc(),
                name="broadcast_when_idx",
            ),
            # Statistics: sends by day over a date range.
            models.Index(fields=["status", "sent_at"], name="broadcast_sent_idx"),
        ]
        constraints = [
            # Four eyes: nobody approves their own broadcast (also checked in services).
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("author")),
                name="broadcast_not_self_approved",
            ),
            models.CheckConstraint(
                condition=~Q(priority="emergency") | ~Q(emergency_reason=""),
                name="broadcast_emergency_has_reason",
            ),
            # A drill can only ever reach staff test recipients.
            models.CheckConstraint(
                condition=~Q(kind="drill") | Q(audience="staff_test"),
                name="broadcast_drill_staff_only",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_emergency(self) -> bool:
        return self.priority == self.Priority.EMERGENCY

    @property
    def is_drill(self) -> bool:
        return self.kind == self.Kind.DRILL

    @property
    def progress_percent(self) -> int:
        """Share of this send's LINE requests that LINE has accepted."""
        if not self.deliveries_total:
            return 0
        return round(100 * self.deliveries_accepted / self.deliveries_total)

    @property
    def progress_step(self) -> int:
        """``progress_percent`` rounded to 5, for the CSS width classes (no style attributes)."""
        return 5 * round(self.progress_percent / 5)


class BroadcastContributor(models.Model):
    """Everyone who wrote part of a broadcast's content: its author and each person who saved
    a change to it. Four eyes over authorship: none of them may approve it (the service checks
    it, and a database trigger refuses an approval by a contributor whatever path writes it)."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="contributors")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contributions"
    )
    first_contributed_at = models.DateTimeField(_("初回の編集日時"))

    class Meta:
        verbose_name = _("配信の執筆者")
        verbose_name_plural = _("配信の執筆者")
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "user"], name="broadcast_contributor_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.broadcast_id})"


class Delivery(models.Model):
    """One LINE API request of a broadcast, created (and committed) before the call is made.

    Its ``retry_key`` is sent as ``X-Line-Retry-Key`` on every attempt, so LINE accepts it
    at most once (DESIGN.md §5)."""

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


class BroadcastEvent(models.Model):
    """Append-only audit log: who did what, when, with the state before and after.

    The app never updates or deletes these rows (``save`` refuses updates). The database
    refuses them too, whatever path writes: triggers reject UPDATE and DELETE on SQLite and
    PostgreSQL, and TRUNCATE on PostgreSQL (migrations 0003 and 0011)."""

    broadcast = models.ForeignKey(
        Broadcast, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    verb = models.CharField(_("操作"), max_length=40, db_index=True)
    from_status = models.CharField(_("変更前"), max_length=20, blank=True)
    to_status = models.CharField(_("変更後"), max_length=20, blank=True)
    comment = models.TextField(_("コメント"), blank=True)
    data = models.JSONField(_("詳細"), default=dict, blank=True)
    created_at = models.DateTimeField(_("日時"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("監査ログ")
        verbose_name_plural = _("監査ログ")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.verb}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("監査ログは変更できません")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("監査ログは削除できません")


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


class CalendarOverride(models.Model):
    """An admin's decision that a date is open or closed, overriding the computed calendar."""

    date = models.DateField(_("日付"), unique=True)
    is_open = models.BooleanField(_("開庁"))
    reason = models.CharField(_("理由"), max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(_("登録日時"), auto_now_add=True)

    class Meta:
        verbose_name = _("開庁日の例外")
        verbose_name_plural = _("開庁日の例外")
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {'開庁' if self.is_open else '閉庁'}"


class MessageTemplate(models.Model):
    """A reusable set of messages and categories (e.g. 広報かしわ発行のお知らせ)."""

    name = models.CharField(_("雛形名"), max_length=120)
    categories = models.ManyToManyField(Category, verbose_name=_("カテゴリ"), blank=True)
    messages = models.JSONField(_("メッセージ"), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("作成者"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="message_templates",
    )
    created_at = models.DateTimeField(_("作成日時"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("メッセージの雛形")
        verbose_name_plural = _("メッセージの雛形")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class AllowedDomain(models.Model):
    """A domain links in messages may point to without a warning (sub-domains included)."""

    domain = models.CharField(_("ドメイン"), max_length=253, unique=True)
    note = models.CharField(_("備考"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("リンク許可ドメイン")
        verbose_name_plural = _("リンク許可ドメイン")
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


# --- the citizen side (issue 7) -------------------------------------------------------------


class WebhookEvent(models.Model):
    """One event LINE posted to the webhook, stored before it is processed.

    ``webhook_event_id`` is unique: a redelivered event is stored (and processed) once.
    Policy 10: the payload keeps only what processing needs; message text and the reply token
    are blanked as soon as the event has been processed."""

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


class RichMenu(models.Model):
    """A rich menu definition (policy 4(2)): image, tap areas and where each area leads."""

    class Kind(models.TextChoices):
        DEFAULT = "default", _("通常時")
        DISASTER = "disaster", _("災害時")

    class Size(models.TextChoices):
        LARGE = "2500x1686", _("大（2500×1686）")
        COMPACT = "2500x843", _("小（2500×843）")

    name = models.CharField(_("名前"), max_length=300)
    kind = models.CharField(_("用途"), max_length=20, choices=Kind.choices, default=Kind.DEFAULT)
    size = models.CharField(_("サイズ"), max_length=10, choices=Size.choices, default=Size.COMPACT)
    chat_bar_text = models.CharField(_("メニューバーの文言"), max_length=14, default="メニュー")
    areas = models.JSONField(
        _("タップ領域"),
        default=list,
        help_text=_('[{"bounds": {"x","y","width","height"}, "action": {...}}, ...]'),
    )
    image = models.BinaryField(_("画像"), blank=True, default=b"", editable=False)
    image_content_type = models.CharField(_("画像の形式"), max_length=20, blank=True)
    line_rich_menu_id = models.CharField(_("LINE リッチメニューID"), max_length=100, blank=True)
    published_at = models.DateTimeField(_("公開日時"), null=True, blank=True)
    is_line_default = models.BooleanField(_("LINE で既定に設定中"), default=False)
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("リッチメニュー")
        verbose_name_plural = _("リッチメニュー")
        ordering = ["kind", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def width(self) -> int:
        return int(self.size.split("x")[0])

    @property
    def height(self) -> int:
        return int(self.size.split("x")[1])


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
