"""Forms for composing and reviewing broadcasts (interfaces only: no state changes here).

The compose screen is one ``BroadcastForm`` plus a ``MessageFormSet`` of 1–5 messages. The
browser helps (``static/js/compose.js`` adds, reorders and removes message forms and draws the
preview) but the server is the source of truth: each message form rebuilds the LINE message
JSON and the formset checks the whole list with ``content.check_messages``, putting each
problem next to the field it concerns. A bound form re-renders exactly what was typed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .content import MAX_MESSAGES, MAX_TEXT_UTF16, Problem, check_messages, utf16_length
from .formfields import (
    DATE_OUT_OF_RANGE,
    SafeDateField,
    SafeModelChoiceField,
    SafeModelMultipleChoiceField,
    date_in_range,
    valid_ids,
)
from .models import Broadcast, Category
from .schedule import JST, format_jst

ACTION_SLOTS = 4
DATETIME_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"

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

TIMING_ASAP = "asap"
TIMING_AT = "at"


class JSTDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` value read and shown as Japan time, whatever the active zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL_FORMAT)
    input_formats = [DATETIME_LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]

    def to_python(self, value: Any) -> dt.datetime | None:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            for fmt in self.input_formats:
                try:
                    naive = dt.datetime.strptime(value, fmt)  # noqa: DTZ007 - made aware below
                except ValueError:
                    continue
                if not date_in_range(naive.date()):
                    # 9999-12-31 23:59 parses, but the send-time arithmetic overflows on it.
                    raise forms.ValidationError(DATE_OUT_OF_RANGE, code="out_of_range")
                return naive.replace(tzinfo=JST)
            raise forms.ValidationError(
                _("日時の形式が正しくありません（例: 2026-12-01 10:00）。"), code="invalid"
            )
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and timezone.is_aware(value):
            return value.astimezone(JST).replace(tzinfo=None)
        return value


# --- one message ---------------------------------------------------------------------------


def _text(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    return "" if value is None else str(value).strip()


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
    return {"type": "text", "text": "" if text is None else str(text)}


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
        return utf16_length(str(self["text"].value() or ""))

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


# --- the broadcast -------------------------------------------------------------------------


class CategoryChoiceField(SafeModelMultipleChoiceField):
    def label_from_instance(self, obj: Category) -> str:
        return obj.label


class BroadcastForm(forms.Form):
    title = forms.CharField(
        label=_("件名（職員用・市民には表示されません）"),
        max_length=120,
        error_messages={
            "required": _("件名を入力してください。"),
            "max_length": _("件名は120文字以内にしてください。"),
        },
    )
    categories = CategoryChoiceField(
        label=_("カテゴリ"),
        queryset=Category.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": _("カテゴリを1つ以上選んでください。"),
            "invalid_choice": _("選べないカテゴリです。"),
        },
    )
    audience = forms.ChoiceField(
        label=_("配信対象"),
        choices=Broadcast.Audience.choices,
        initial=Broadcast.Audience.ALL,
        widget=forms.RadioSelect,
        error_messages={"required": _("配信対象を選んでください。")},
    )
    timing = forms.ChoiceField(
        label=_("配信日時"),
        choices=[(TIMING_ASAP, _("配信可能になり次第")), (TIMING_AT, _("日時を指定"))],
        initial=TIMING_ASAP,
        widget=forms.RadioSelect,
    )
    requested_at = JSTDateTimeField(
        label=_("配信希望日時（日本時間）"),
        required=False,
        help_text=_("通常配信は開庁日の 8:30〜17:15 に送信されます。"),
    )
    priority = forms.ChoiceField(
        label=_("優先度"),
        choices=Broadcast.Priority.choices,
        initial=Broadcast.Priority.NORMAL,
        widget=forms.RadioSelect,
    )
    emergency_reason = forms.CharField(
        label=_("緊急配信の理由"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("緊急配信は時間帯にかかわらず直ちに送信され、承認者の承認が必要です。"),
    )
    notify = forms.BooleanField(label=_("プッシュ通知する"), required=False, initial=True)
    # 本番 or 訓練 (drill). Fixed when the broadcast is created; a drill reaches staff only.
    kind = forms.ChoiceField(
        choices=[
            (Broadcast.Kind.LIVE, Broadcast.Kind.LIVE.label),
            (Broadcast.Kind.DRILL, Broadcast.Kind.DRILL.label),
        ],
        initial=Broadcast.Kind.LIVE,
        required=False,
        widget=forms.HiddenInput,
    )

    def __init__(self, *args: Any, now: dt.datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now

    @classmethod
    def initial_for(cls, broadcast: Broadcast) -> dict[str, Any]:
        return {
            "title": broadcast.title,
            "categories": list(broadcast.categories.all()),
            "audience": broadcast.audience,
            "timing": TIMING_AT if broadcast.requested_at else TIMING_ASAP,
            "requested_at": broadcast.requested_at,
            "priority": broadcast.priority,
            "emergency_reason": broadcast.emergency_reason,
            "notify": not broadcast.notification_disabled,
            # 訂正/取消 follow-ups are live (or drill) broadcasts as far as this form goes.
            "kind": Broadcast.Kind.DRILL if broadcast.is_drill else Broadcast.Kind.LIVE,
        }

    @property
    def is_drill(self) -> bool:
        return str(self["kind"].value() or "") == Broadcast.Kind.DRILL

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("kind") == Broadcast.Kind.DRILL:
            # What the service enforces anyway: staff only, the emergency flow, a reason.
            data["audience"] = Broadcast.Audience.STAFF_TEST
            data["priority"] = Broadcast.Priority.EMERGENCY
            data["emergency_reason"] = (data.get("emergency_reason") or "").strip() or "訓練"
        else:
            data["kind"] = Broadcast.Kind.LIVE
        if data.get("timing") == TIMING_AT:
            requested = data.get("requested_at")
            if requested is None and "requested_at" not in self.errors:
                self.add_error(
                    "requested_at",
                    _("配信希望日時を入力するか、「配信可能になり次第」を選んでください。"),
                )
            elif requested is not None and requested < (self.now or timezone.now()):
                self.add_error(
                    "requested_at",
                    _(
                        "配信希望日時（%(at)s）は過去の日時です。これから先の日時を指定するか、"
                        "「配信可能になり次第」を選んでください。"
                    )
                    % {"at": format_jst(requested)},
                )
        else:
            data["requested_at"] = None
        categories = data.get("categories") or []
        emergency = data.get("priority") == Broadcast.Priority.EMERGENCY or any(
            c.is_emergency_default for c in categories
        )
        if emergency and not (data.get("emergency_reason") or "").strip():
            self.add_error(
                "emergency_reason",
                _("緊急配信の理由を入力してください（「緊急情報」カテゴリは緊急配信になります）。"),
            )
        return data

    def service_kwargs(self, formset: BaseMessageFormSet) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "title": data["title"],
            "categories": list(data["categories"]),
            "messages": formset.messages(),
            "audience": data["audience"],
            "requested_at": data.get("requested_at"),
            "priority": data["priority"],
            "emergency_reason": data.get("emergency_reason", ""),
            "notification_disabled": not data.get("notify"),
        }

    def selected_category_ids(self) -> list[int]:
        return valid_ids(self["categories"].value())


def apply_service_problems(
    form: BroadcastForm, formset: BaseMessageFormSet, problems: list[Problem]
) -> None:
    """Show a service's ``BroadcastInvalid`` problems next to their fields."""
    rest, whole = formset.apply_problems(problems)
    if whole:
        formset.non_form_errors().extend(whole)
    for problem in rest:
        form.add_error(problem.field if problem.field in form.fields else None, problem.message)


# --- review --------------------------------------------------------------------------------


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


# --- lists ---------------------------------------------------------------------------------


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

        from .models import Broadcast, Division, User

        self.fields["division"].queryset = Division.objects.all()
        # A semi-join (EXISTS), not a DISTINCT over every broadcast: stays fast at 100k rows.
        self.fields["author"].queryset = User.objects.filter(
            Exists(Broadcast.objects.filter(author=OuterRef("pk")))
        ).order_by("last_name", "username")


TEXT_LIMIT = MAX_TEXT_UTF16
