"""The broadcast list's filter form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ..content import MAX_TEXT_UTF16
from ..models import Broadcast, Category
from .fields import (
    SafeDateField,
    SafeModelChoiceField,
)


class BroadcastFilterForm(forms.Form):
    q = forms.CharField(label=_("件名・本文で検索"), required=False)
    category = SafeModelChoiceField(
        label=_("カテゴリ"),
        queryset=Category.objects.all(),
        required=False,
        empty_label=_("すべて"),
    )
    division = SafeModelChoiceField(
        label=_("担当課"), queryset=None, required=False, empty_label=_("すべて")
    )
    author = SafeModelChoiceField(
        label=_("起案者"), queryset=None, required=False, empty_label=_("すべて")
    )
    status = forms.ChoiceField(
        label=_("状態"),
        required=False,
        choices=[("", _("すべて")), *Broadcast.Status.choices],
    )
    date_from = SafeDateField(
        label=_("期間（から）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = SafeDateField(
        label=_("期間（まで）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from django.db.models import Exists, OuterRef

        from ..models import Broadcast, Division, User

        self.fields["division"].queryset = Division.objects.all()
        # A semi-join (EXISTS), not a DISTINCT over every broadcast: stays fast at 100k rows.
        self.fields["author"].queryset = User.objects.filter(
            Exists(Broadcast.objects.filter(author=OuterRef("pk")))
        ).order_by("last_name", "username")


TEXT_LIMIT = MAX_TEXT_UTF16
