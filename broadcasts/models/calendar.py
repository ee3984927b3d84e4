"""The office calendar's exceptions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


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
