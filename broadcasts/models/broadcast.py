"""A broadcast, its categories and everyone who wrote part of it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from .accounts import Division
from .bits import BitPositioned


class Category(BitPositioned):
    """The eleven information categories of policy 4(1), seeded by a data migration."""

    BITS_FIELD = "category_bits"

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
        # Policy 5(1) 「市が必要と認める場合」: outside the window but not an emergency (a
        # weekend notice the city deems necessary). A reason, a 承認者 with a fresh second
        # factor; not red, not on the emergency queue (issue 13 item 5).
        OUT_OF_HOURS = "out_of_hours", _("時間外配信")
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
    out_of_hours_reason = models.TextField(_("時間外配信の理由"), blank=True)
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
    # When the approver last verified their second factor before approving (emergencies and
    # 時間外配信); schedule.OutOfHoursApproval checks it is within five minutes of approved_at.
    approval_second_factor_at = models.DateTimeField(
        _("承認時の二要素認証日時"), null=True, blank=True
    )
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
            models.CheckConstraint(
                condition=~Q(priority="out_of_hours") | ~Q(out_of_hours_reason=""),
                name="broadcast_out_of_hours_has_reason",
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
    def is_out_of_hours(self) -> bool:
        """A 時間外配信 (policy 5(1) 「市が必要と認める場合」): not an emergency."""
        return self.priority == self.Priority.OUT_OF_HOURS

    @property
    def needs_supervisor(self) -> bool:
        """Emergencies, drills and 時間外配信 are approved by a 承認者 with a second factor."""
        return self.priority in (self.Priority.EMERGENCY, self.Priority.OUT_OF_HOURS)

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
