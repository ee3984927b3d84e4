"""Reusable messages and the link domains allowed in them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .broadcast import Category


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
