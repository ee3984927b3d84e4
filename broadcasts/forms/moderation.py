"""Forms of the moderation inbox (views/moderation.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import ModerationMeasure, ProhibitedItem
from ..schedule import JST
from ..selectors import moderation as sel
from ..services.moderation import MAX_SUPPRESSION_DAYS
from .fields import SafeDateField, SafeIntegerField

STATE_CHOICES = (
    ("", _("すべて")),
    ("flagged", _("フラグあり")),
    ("auto", _("ルールが自動でフラグ")),
    ("unflagged", _("フラグなし")),
    ("measured", _("措置を記録済み")),
)


def _styled(form: forms.Form) -> forms.Form:
    for field in form.fields.values():
        is_select = isinstance(field.widget, forms.Select)
        field.widget.attrs.setdefault("class", "form-select" if is_select else "form-control")
    return form


class InboxFilterForm(forms.Form):
    q = forms.CharField(label=_("検索（本文・メモ・ユーザーID）"), required=False, max_length=100)
    state = forms.ChoiceField(label=_("状態"), required=False, choices=STATE_CHOICES)
    item = SafeIntegerField(label=_("禁止事項"), required=False, widget=forms.Select)
    date_from = SafeDateField(
        label=_("受信日（から）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = SafeDateField(
        label=_("受信日（まで）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, items: list[ProhibitedItem], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["item"].widget.choices = [
            ("", gettext("すべて")),
            *((i.number, f"6({i.number}) {i.label}") for i in items),
        ]
        _styled(self)

    def to_filter(self) -> sel.InboxFilter:
        if not self.is_valid():
            return sel.InboxFilter()
        data = self.cleaned_data

        def start(day: dt.date | None, plus: int = 0) -> dt.datetime | None:
            if day is None:
                return None
            return dt.datetime.combine(day, dt.time(0), tzinfo=JST) + dt.timedelta(days=plus)

        return sel.InboxFilter(
            q=data.get("q") or "",
            state=data.get("state") or "",
            item=data.get("item"),
            date_from=start(data.get("date_from")),
            date_to=start(data.get("date_to"), 1),
        )


class FlagForm(forms.Form):
    item = forms.ModelChoiceField(
        label=_("該当する禁止事項（ポリシー6）"),
        queryset=ProhibitedItem.objects.order_by("number"),
        empty_label=_("選んでください"),
        error_messages={
            "required": _("禁止事項を選んでください。"),
            "invalid_choice": _("禁止事項を選び直してください。"),
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["item"].label_from_instance = lambda i: f"6({i.number}) {i.text}"
        _styled(self)


class NoteForm(forms.Form):
    note = forms.CharField(
        label=_("メモ"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _styled(self)


class SuppressForm(forms.Form):
    days = forms.IntegerField(
        label=_("停止する日数"),
        min_value=1,
        max_value=MAX_SUPPRESSION_DAYS,
        error_messages={
            "required": _("日数を入力してください。"),
            "invalid": _("日数は数字で入力してください。"),
            "min_value": _("日数は1以上にしてください。"),
            "max_value": f"日数は{MAX_SUPPRESSION_DAYS}以下にしてください。",
        },
    )
    reason = forms.CharField(label=_("理由"), required=False, max_length=300)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _styled(self)


class MeasureForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("措置"),
        choices=[("", _("選んでください")), *ModerationMeasure.Kind.choices],
        error_messages={
            "required": _("措置を選んでください。"),
            "invalid_choice": _("措置を選び直してください。"),
        },
    )
    detail = forms.CharField(label=_("内容・補足"), required=False, max_length=300)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _styled(self)
