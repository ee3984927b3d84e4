"""The message forms of the compose screen: one ``MessageForm`` per LINE message, in a
formset checked as a whole with ``content.check_messages`` (each problem placed next to
the field it concerns)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ..content import MAX_MESSAGES, Problem, check_messages, utf16_length

ACTION_SLOTS = 4

KIND_TEXT = "text"
KIND_IMAGE = "image"
KIND_STICKER = "sticker"
KIND_CARD = "card"
KIND_CHOICES = [
    (KIND_TEXT, _("テキスト")),
    (KIND_IMAGE, _("画像")),
    (KIND_STICKER, _("スタンプ")),
    (KIND_CARD, _("カード（ボタン付き）")),
]
# Button labels staff use most (policy 4(2): 各種申請, 各種予約, links to the city website).
SUGGESTED_ACTION_LABELS = ["申請する", "予約する", "ホームページ", "詳しくはこちら"]


def _text(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    return "" if value is None else normalise_newlines(str(value)).strip()


def normalise_newlines(text: str) -> str:
    """Browsers send a textarea's line breaks as CRLF but count them as one character; LINE
    shows and counts one too. Stored text has LF only, so the composer's counter, the
    checklist and LINE agree (issue 13 item 7)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def build_line_message(values: dict[str, Any]) -> dict[str, Any]:
    """The LINE message object for one message form's values (cleaned or raw)."""
    kind = _text(values, "kind") or KIND_TEXT
    if kind == KIND_IMAGE:
        original = _text(values, "image_url")
        return {
            "type": "image",
            "originalContentUrl": original,
            "previewImageUrl": _text(values, "preview_url") or original,
        }
    if kind == KIND_STICKER:
        return {
            "type": "sticker",
            "packageId": _text(values, "package_id"),
            "stickerId": _text(values, "sticker_id"),
        }
    if kind == KIND_CARD:
        title = _text(values, "card_title")
        text = _text(values, "card_text")
        template: dict[str, Any] = {"type": "buttons", "text": text, "actions": []}
        if title:
            template["title"] = title
        thumbnail = _text(values, "card_thumbnail")
        if thumbnail:
            template["thumbnailImageUrl"] = thumbnail
        for slot in range(1, ACTION_SLOTS + 1):
            label = _text(values, f"action{slot}_label")
            uri = _text(values, f"action{slot}_uri")
            if label or uri:
                template["actions"].append({"type": "uri", "label": label, "uri": uri})
        alt = _text(values, "card_alt") or title or text
        return {"type": "template", "altText": alt[:400], "template": template}
    text = values.get("text")
    return {"type": "text", "text": "" if text is None else normalise_newlines(str(text))}


def initial_from_line(message: dict[str, Any]) -> dict[str, Any]:
    """The message form's initial values for a stored LINE message object."""
    kind = message.get("type")
    if kind == "image":
        preview = message.get("previewImageUrl", "")
        original = message.get("originalContentUrl", "")
        return {
            "kind": KIND_IMAGE,
            "image_url": original,
            "preview_url": "" if preview == original else preview,
        }
    if kind == "sticker":
        return {
            "kind": KIND_STICKER,
            "package_id": message.get("packageId", ""),
            "sticker_id": message.get("stickerId", ""),
        }
    if kind == "template":
        template = message.get("template") or {}
        initial = {
            "kind": KIND_CARD,
            "card_title": template.get("title", ""),
            "card_text": template.get("text", ""),
            "card_thumbnail": template.get("thumbnailImageUrl", ""),
        }
        alt = message.get("altText", "")
        if alt and alt != (initial["card_title"] or initial["card_text"]):
            initial["card_alt"] = alt
        for slot, action in enumerate(template.get("actions") or [], start=1):
            if slot > ACTION_SLOTS:
                break
            initial[f"action{slot}_label"] = action.get("label", "")
            initial[f"action{slot}_uri"] = action.get("uri", "")
        return initial
    return {"kind": KIND_TEXT, "text": message.get("text", "")}


# Where each ``content.Problem`` field of one message lands in the message form.
_PROBLEM_FIELDS = {
    "type": "kind",
    "text": "text",
    "originalContentUrl": "image_url",
    "previewImageUrl": "preview_url",
    "packageId": "package_id",
    "stickerId": "sticker_id",
    "altText": "card_alt",
    "template.text": "card_text",
    "template.title": "card_title",
    "template.thumbnailImageUrl": "card_thumbnail",
    "template.actions": "action1_label",
}
_MESSAGE_PROBLEM = re.compile(r"^messages\[(\d+)\](?:\.(.+))?$")
_ACTION_PROBLEM = re.compile(r"^template\.actions\[(\d+)\]$")


class MessageForm(forms.Form):
    """One LINE message of any kind; only the fields of the chosen kind are used."""

    kind = forms.ChoiceField(label=_("種類"), choices=KIND_CHOICES, initial=KIND_TEXT)
    text = forms.CharField(
        label=_("本文"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "data-kw-field": "text"}),
        help_text=_("最大 5,000 文字（絵文字などは2文字として数えます）"),
    )
    image_url = forms.CharField(
        label=_("画像の URL（https://、JPEG または PNG）"),
        required=False,
        widget=forms.URLInput(attrs={"placeholder": "https://www.city.kashiwa.lg.jp/….jpg"}),
    )
    preview_url = forms.CharField(
        label=_("プレビュー画像の URL（空欄なら同じ画像）"), required=False, widget=forms.URLInput()
    )
    package_id = forms.CharField(
        label=_("パッケージID"),
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    sticker_id = forms.CharField(
        label=_("スタンプID"),
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    card_title = forms.CharField(label=_("カードの見出し"), required=False, max_length=40)
    card_text = forms.CharField(
        label=_("カードの本文"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("見出しか画像があるときは60文字、ないときは160文字まで"),
    )
    card_thumbnail = forms.CharField(
        label=_("カードの画像 URL（任意、https://）"), required=False, widget=forms.URLInput()
    )
    card_alt = forms.CharField(
        label=_("通知に表示する文（任意、空欄なら見出し）"), required=False, max_length=400
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for slot in range(1, ACTION_SLOTS + 1):
            self.fields[f"action{slot}_label"] = forms.CharField(
                label=_("ボタン%(n)d の表示名") % {"n": slot},
                required=False,
                max_length=40,
                widget=forms.TextInput(attrs={"list": "kw-action-labels"}),
            )
            self.fields[f"action{slot}_uri"] = forms.CharField(
                label=_("ボタン%(n)d のリンク先（https://）") % {"n": slot},
                required=False,
                widget=forms.URLInput(),
            )
        for field in self.fields.values():
            field.error_messages.setdefault("max_length", _("長すぎます。"))
        self.fields["card_title"].error_messages["max_length"] = _(
            "カードの見出しは40文字以内にしてください。"
        )

    # What the user chose or typed, valid or not (for re-rendering and the preview).
    def raw_values(self) -> dict[str, Any]:
        return {name: self[name].value() for name in self.fields}

    @property
    def kind_value(self) -> str:
        return str(self["kind"].value() or KIND_TEXT)

    @property
    def text_length(self) -> int:
        """What the composer's counter shows: the text as it will be stored (line breaks as
        one character, like the browser's own count and LINE's)."""
        return utf16_length(normalise_newlines(str(self["text"].value() or "")))

    def to_line(self) -> dict[str, Any]:
        return build_line_message(self.cleaned_data)

    def preview_line(self) -> dict[str, Any]:
        return build_line_message(self.raw_values())

    def action_slots(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"action{slot}_label"], self[f"action{slot}_uri"])
            for slot in range(1, ACTION_SLOTS + 1)
        ]

    def add_problem(self, where: str | None, message: str) -> None:
        """Put a ``content.Problem`` (``where`` relative to the message) next to its field."""
        if where is None:
            self.add_error(None, message)
            return
        action = _ACTION_PROBLEM.match(where)
        if action:
            slot = int(action.group(1)) + 1
            if slot > ACTION_SLOTS:
                self.add_error(None, message)
            elif "リンク" in message or "URL" in message:
                self.add_error(f"action{slot}_uri", message)
            else:
                self.add_error(f"action{slot}_label", message)
            return
        if where == "previewImageUrl" and not str(self["preview_url"].value() or "").strip():
            return  # left blank: it is the image URL, whose own error is already shown
        field = _PROBLEM_FIELDS.get(where)
        if field == "card_alt" and self.kind_value == KIND_CARD:
            field = "card_title" if not self["card_alt"].value() else "card_alt"
        self.add_error(field if field in self.fields else None, message)


class BaseMessageFormSet(forms.BaseFormSet):
    default_error_messages = {
        "too_many_forms": _(
            "メッセージは1回の配信につき%(num)d件までです。不要なメッセージを削除してください。"
        ),
        "too_few_forms": _("メッセージを1件以上作成してください。"),
        "missing_management_form": _(
            "メッセージの入力欄を読み込めませんでした。ページを再読み込みしてください。"
        ),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Every message form shown is a message: none may be silently skipped as "empty".
        kwargs.setdefault("form_kwargs", {})["empty_permitted"] = False
        super().__init__(*args, **kwargs)

    def clean(self) -> None:
        if any(form.errors for form in self.forms):
            return
        rest, whole = self.apply_problems(check_messages(self.messages()))
        if whole or rest:
            raise forms.ValidationError(whole + [p.message for p in rest])

    def messages(self) -> list[dict[str, Any]]:
        return [form.to_line() for form in self.forms]

    def preview_messages(self) -> list[dict[str, Any]]:
        return [form.preview_line() for form in self.forms]

    def apply_problems(self, problems: list[Problem]) -> tuple[list[Problem], list[str]]:
        """Attach each problem about one message to its form. Returns the problems about other
        fields, and the messages of problems about the list as a whole."""
        rest: list[Problem] = []
        whole: list[str] = []
        for problem in problems:
            match = _MESSAGE_PROBLEM.match(problem.field)
            if problem.field == "messages":
                whole.append(problem.message)
            elif match and int(match.group(1)) < len(self.forms):
                self.forms[int(match.group(1))].add_problem(match.group(2), problem.message)
            else:
                rest.append(problem)
        return rest, whole


MessageFormSet = forms.formset_factory(
    MessageForm,
    formset=BaseMessageFormSet,
    extra=0,
    min_num=1,
    validate_min=True,
    max_num=MAX_MESSAGES,
    validate_max=True,
    absolute_max=50,
)
MESSAGE_PREFIX = "m"


def message_formset(
    data: Any = None, *, messages: list[dict[str, Any]] | None = None
) -> BaseMessageFormSet:
    if data is not None:
        return MessageFormSet(data, prefix=MESSAGE_PREFIX)
    initial = [initial_from_line(m) for m in messages or []] or [{"kind": KIND_TEXT}]
    formset = MessageFormSet(initial=initial, prefix=MESSAGE_PREFIX)
    return formset
