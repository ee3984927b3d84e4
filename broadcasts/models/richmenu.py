"""Rich menus (policy 4(2))."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


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
