"""Forms of the review screens (approve, emergency approve, reject, cancel, save as template)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _


class _DistinctIds(forms.Form):
    """Several of these forms share the broadcast page: give each its own element ids."""

    id_prefix = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"id_{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class ApproveForm(_DistinctIds):
    id_prefix = "approve"

    seen_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    comment = forms.CharField(
        label=_("コメント（任意）"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class EmergencyApproveForm(_DistinctIds):
    """The supervisor's confirmation of an emergency (or drill) approval."""

    id_prefix = "emergency"

    seen_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    typed_count = forms.CharField(
        label=_("受信者数を入力してください（確認のため）"),
        max_length=20,
        error_messages={"required": _("画面に表示されている受信者数を入力してください。")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    comment = forms.CharField(
        label=_("コメント（任意）"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    switch_rich_menu = forms.BooleanField(
        label=_("災害用リッチメニューに切り替える"), required=False
    )


class RejectForm(_DistinctIds):
    id_prefix = "reject"

    comment = forms.CharField(
        label=_("差し戻しの理由"),
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("差し戻しの理由を入力してください。")},
    )


class CancelForm(_DistinctIds):
    id_prefix = "cancel"

    comment = forms.CharField(
        label=_("取消の理由（任意）"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class MessageTemplateForm(_DistinctIds):
    id_prefix = "template"

    name = forms.CharField(
        label=_("雛形の名前"),
        max_length=120,
        error_messages={"required": _("雛形の名前を入力してください。")},
    )
