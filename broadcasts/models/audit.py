"""The append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .broadcast import Broadcast


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
