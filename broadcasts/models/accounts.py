"""Staff accounts: the city's divisions and their members."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from .personal_data import PersonalData


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

    personal_data = PersonalData(
        subject="職員",
        fields=("username", "last_name", "first_name", "email", "last_login"),
        purpose="職員のログインと、操作した人の記録",
        retention="アカウントがある間（無効にしても操作履歴のために残ります）",
    )

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
