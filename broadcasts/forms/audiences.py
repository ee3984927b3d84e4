"""The targeting screen's form (issue 16): areas, age groups, languages, whether followers
who set nothing are included, and one text per extra language version."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..content import MAX_TEXT_UTF16, utf16_length
from ..models import AgeGroup, Area, Language
from ..models.audiences import BASE_LANGUAGE
from ..selectors import audiences as audience_selectors
from .fields import SafeModelMultipleChoiceField


class TargetingForm(forms.Form):
    """Areas, age groups, languages and one text per extra language."""

    areas = SafeModelMultipleChoiceField(
        label=_("地区"),
        queryset=Area.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("選ばなければ地区で絞り込みません。"),
    )
    age_groups = SafeModelMultipleChoiceField(
        label=_("子どもの年齢"),
        queryset=AgeGroup.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("選ばなければ年齢で絞り込みません。"),
    )
    languages = SafeModelMultipleChoiceField(
        label=_("受け取る言語で絞り込む"),
        queryset=Language.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("選ばなければ全員に送ります。言語を設定していない人は日本語として数えます。"),
    )
    include_unset = forms.BooleanField(
        label=_("地区・年齢を設定していない人にも送る"),
        required=False,
        initial=True,
        help_text=_("外すと、選んだ地区・年齢を受信設定で選んだ人だけに送ります。"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["areas"].queryset = audience_selectors.areas_active()
        self.fields["age_groups"].queryset = audience_selectors.age_groups_active()
        self.fields["languages"].queryset = audience_selectors.languages_active()
        self.variant_languages = list(
            audience_selectors.languages_active().exclude(code=BASE_LANGUAGE)
        )
        for language in self.variant_languages:
            self.fields[f"variant_{language.code}"] = forms.CharField(
                label=gettext("%(l)s版の本文") % {"l": language.label},
                required=False,
                widget=forms.Textarea(attrs={"rows": 3, "lang": _lang_attr(language.code)}),
                help_text=_("空欄なら、この言語を設定した人には日本語版が届きます。"),
            )

    def variant_fields(self) -> list[forms.BoundField]:
        return [self[f"variant_{lang.code}"] for lang in self.variant_languages]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for language in self.variant_languages:
            text = (data.get(f"variant_{language.code}") or "").strip()
            if text and utf16_length(text) > MAX_TEXT_UTF16:
                self.add_error(
                    f"variant_{language.code}",
                    gettext("本文が長すぎます（%(n)s 文字以内）。") % {"n": f"{MAX_TEXT_UTF16:,}"},
                )
        return data

    def variants(self, base_messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Each filled language's version: its text in place of the first text message,
        the other messages (images, stickers, cards) as in the Japanese version."""
        out = {}
        for language in self.variant_languages:
            text = (self.cleaned_data.get(f"variant_{language.code}") or "").strip()
            if text:
                out[language.code] = _with_text(base_messages, text)
        return out


def _lang_attr(code: str) -> str:
    return {"easy-ja": "ja", "zh": "zh-Hans"}.get(code, code)


def _with_text(base: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    messages = [dict(m) for m in base]
    for message in messages:
        if message.get("type") == "text":
            message["text"] = text
            return messages
    return [{"type": "text", "text": text}, *messages][:5]


def first_text(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("text", "")) for m in messages if m.get("type") == "text"), "")
