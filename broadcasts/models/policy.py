"""Versions of the operating policy (policy 7): the text the city adopted, with its 制定, 改正
and 施行 dates. The public policy page shows the version in force and the history."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .broadcast import Broadcast


class PolicyVersion(models.Model):
    """One version of 柏市公式 LINE アカウント運用ポリシー.

    A draft is edited by admins; publishing (``services/policy.py``) fixes it, shows it on
    the public page from its 施行日 and creates an announcement broadcast for approval."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("下書き")
        PUBLISHED = "published", _("公開済み")

    title = models.CharField(
        _("題名"), max_length=120, default="柏市公式 LINE アカウント運用ポリシー"
    )
    body = models.TextField(
        _("本文"),
        help_text=_("「1 目的」のように番号と見出しで始まる行が節の見出しになります。"),
    )
    enacted_on = models.DateField(_("制定日"))
    amended_on = models.DateField(_("改正日"), null=True, blank=True)
    effective_on = models.DateField(_("施行日"))
    summary = models.CharField(
        _("変更の概要"), max_length=300, help_text=_("変更履歴とお知らせに載せる一文。")
    )
    status = models.CharField(
        _("状態"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    published_at = models.DateTimeField(_("公開日時"), null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("公開した職員"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    announcement = models.ForeignKey(
        Broadcast,
        verbose_name=_("お知らせの配信"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(_("更新日時"), auto_now=True)

    class Meta:
        verbose_name = _("運用ポリシーの版")
        verbose_name_plural = _("運用ポリシーの版")
        ordering = ["-effective_on", "-id"]

    def __str__(self) -> str:
        return f"{self.title}（{self.effective_on:%Y-%m-%d} 施行）"
