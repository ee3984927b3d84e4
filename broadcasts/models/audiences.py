"""Audiences (issue 16): what citizens chose to tell us (areas, children's age groups, a
language) and whom a broadcast is for.

Policy 10: a follower's choices are made by the citizen inside LINE (受信設定), each can be
changed or removed, and nothing else is kept. A citizen who chose nothing in a dimension is
"not set" there; whether a targeted broadcast reaches them is part of the approved audience
(``BroadcastAudience.include_unset``)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .bits import BitPositioned
from .broadcast import Broadcast
from .citizens import Follower

#: LINE's rules for a custom aggregation unit name (MulticastRequest.customAggregationUnits)
AGGREGATION_UNIT_PATTERN = r"^[a-zA-Z0-9_]{1,30}$"
AGGREGATION_UNIT_MAX_LENGTH = 30
#: LINE allows this many distinct unit names per month (per channel)
AGGREGATION_UNITS_PER_MONTH = 1000
#: the language every broadcast is written in; followers without a language get it
BASE_LANGUAGE = "ja"


class _Choice(models.Model):
    """An admin-managed option a citizen can choose (an area, an age group, a language)."""

    code = models.SlugField(_("コード"), max_length=30, unique=True)
    label = models.CharField(_("名称"), max_length=40)
    sort_order = models.PositiveSmallIntegerField(_("表示順"), default=0)
    is_active = models.BooleanField(
        _("選択肢に表示する"),
        default=True,
        help_text=_("外すと市民の受信設定の選択肢に出なくなります（選んだ人の設定は残ります）。"),
    )

    class Meta:
        abstract = True
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.label


class Area(_Choice, BitPositioned):
    """An area of Kashiwa a citizen may choose (for area-targeted sends, e.g. an evacuation
    order). The list is the city's; the demo data is a small sample marked as such."""

    BITS_FIELD = "area_bits"

    is_sample = models.BooleanField(
        _("サンプル"),
        default=False,
        help_text=_("デモ用の仮の地区です。本番では市の地区一覧に置き換えてください。"),
    )

    class Meta(_Choice.Meta):
        verbose_name = _("地区")
        verbose_name_plural = _("地区")


class AgeGroup(_Choice, BitPositioned):
    """A children's age group (妊娠中, 0–2歳, ...)."""

    BITS_FIELD = "age_group_bits"

    class Meta(_Choice.Meta):
        verbose_name = _("子どもの年齢区分")
        verbose_name_plural = _("子どもの年齢区分")


class Language(_Choice):
    """A language a citizen may read messages in. 日本語 (``ja``) is every broadcast's base."""

    native_label = models.CharField(
        _("その言語での名称"), max_length=40, help_text=_("市民に見せる表示（例: English）")
    )

    class Meta(_Choice.Meta):
        verbose_name = _("言語")
        verbose_name_plural = _("言語")

    @property
    def is_base(self) -> bool:
        return self.code == BASE_LANGUAGE


class FollowerArea(models.Model):
    follower = models.ForeignKey(Follower, on_delete=models.CASCADE, related_name="area_choices")
    area = models.ForeignKey(Area, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = _("友だちの地区")
        verbose_name_plural = _("友だちの地区")
        constraints = [
            models.UniqueConstraint(fields=["follower", "area"], name="follower_area_unique")
        ]
        indexes = [models.Index(fields=["area", "follower"], name="follower_area_rev_idx")]

    def __str__(self) -> str:
        return f"{self.follower_id} {self.area_id}"


class FollowerAgeGroup(models.Model):
    follower = models.ForeignKey(
        Follower, on_delete=models.CASCADE, related_name="age_group_choices"
    )
    age_group = models.ForeignKey(AgeGroup, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = _("友だちの子どもの年齢区分")
        verbose_name_plural = _("友だちの子どもの年齢区分")
        constraints = [
            models.UniqueConstraint(
                fields=["follower", "age_group"], name="follower_age_group_unique"
            )
        ]
        indexes = [models.Index(fields=["age_group", "follower"], name="follower_age_rev_idx")]

    def __str__(self) -> str:
        return f"{self.follower_id} {self.age_group_id}"


class FollowerLanguage(models.Model):
    """At most one language per follower."""

    follower = models.OneToOneField(
        Follower, on_delete=models.CASCADE, related_name="language_choice"
    )
    language = models.ForeignKey(Language, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = _("友だちの言語")
        verbose_name_plural = _("友だちの言語")
        indexes = [models.Index(fields=["language", "follower"], name="follower_lang_rev_idx")]

    def __str__(self) -> str:
        return f"{self.follower_id} {self.language_id}"


class BroadcastAudience(models.Model):
    """Whom a broadcast is for beyond its categories: areas × age groups × languages. An
    empty dimension does not narrow. Part of the approved content (the content hash)."""

    broadcast = models.OneToOneField(Broadcast, on_delete=models.CASCADE, related_name="target")
    areas = models.ManyToManyField(Area, verbose_name=_("地区"), blank=True, related_name="+")
    age_groups = models.ManyToManyField(
        AgeGroup, verbose_name=_("子どもの年齢"), blank=True, related_name="+"
    )
    languages = models.ManyToManyField(
        Language, verbose_name=_("言語"), blank=True, related_name="+"
    )
    include_unset = models.BooleanField(
        _("地区・年齢を設定していない人にも送る"),
        default=True,
        help_text=_("受信設定で地区や子どもの年齢を選んでいない友だちにも送ります。"),
    )

    class Meta:
        verbose_name = _("配信の対象条件")
        verbose_name_plural = _("配信の対象条件")

    def __str__(self) -> str:
        return f"{self.broadcast_id}"


class BroadcastVariant(models.Model):
    """The messages of a broadcast in one more language (the base, 日本語, is
    ``Broadcast.messages``). Reviewed, previewed and hashed with the rest."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="variants")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    messages = models.JSONField(_("メッセージ"), default=list)

    class Meta:
        verbose_name = _("配信の言語版")
        verbose_name_plural = _("配信の言語版")
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "language"], name="broadcast_variant_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.broadcast_id} {self.language_id}"


class AggregationUnit(models.Model):
    """The custom aggregation unit a broadcast's multicasts carry (LINE's statistics key for
    multicast), or why it carries none."""

    broadcast = models.OneToOneField(
        Broadcast, on_delete=models.CASCADE, related_name="aggregation_unit"
    )
    name = models.CharField(_("集計単位名"), max_length=AGGREGATION_UNIT_MAX_LENGTH, blank=True)
    month = models.CharField(_("月（JST, YYYYMM）"), max_length=6)
    skipped_reason = models.CharField(_("付けなかった理由"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("作成日時"))

    class Meta:
        verbose_name = _("集計単位")
        verbose_name_plural = _("集計単位")
        indexes = [models.Index(fields=["month", "name"], name="aggregation_unit_month_idx")]

    def __str__(self) -> str:
        return self.name or "-"


class LineFeatureRefusal(models.Model):
    """LINE refused a feature this account may not use (e.g. custom aggregation units need a
    corporate application). Shown once on 運用状況; the app carries on without it."""

    feature = models.CharField(_("機能"), max_length=40, unique=True)
    message = models.CharField(_("LINE の応答"), max_length=300, blank=True)
    refused_at = models.DateTimeField(_("日時"))

    class Meta:
        verbose_name = _("LINE が利用を認めていない機能")
        verbose_name_plural = _("LINE が利用を認めていない機能")

    def __str__(self) -> str:
        return self.feature
