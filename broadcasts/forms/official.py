"""「受信した防災情報」's filter form (views/official.py)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import OfficialMessage, OfficialRule
from ..selectors import official as selectors


class OfficialFilterForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("処理結果"),
        required=False,
        choices=[("", _("すべて")), *OfficialMessage.Outcome.choices],
    )
    kind = forms.ChoiceField(
        label=_("情報の種類"),
        required=False,
        choices=[("", _("すべて")), *OfficialRule.Kind.choices, ("other", _("その他"))],
    )
    rule = forms.ChoiceField(
        label=_("起案規則"),
        required=False,
        choices=[
            ("", _("すべて")),
            (selectors.FILTER_RULE_MATCHED, _("規則に該当したもの")),
            (selectors.FILTER_RULE_NONE, _("該当しなかったもの")),
        ],
    )
    drafted = forms.BooleanField(label=_("下書きを作ったものだけ"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            css = "form-check-input" if name == "drafted" else "form-select"
            field.widget.attrs["class"] = css
