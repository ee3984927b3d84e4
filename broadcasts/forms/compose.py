"""The compose screen's form (interfaces only: no state changes here).

The compose screen is one ``BroadcastForm`` plus a ``MessageFormSet`` of 1–5 messages. The
browser helps (``static/js/compose.js`` adds, reorders and removes message forms and draws the
preview) but the server is the source of truth: each message form rebuilds the LINE message
JSON and the formset checks the whole list with ``content.check_messages``, putting each
problem next to the field it concerns. A bound form re-renders exactly what was typed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..content import Problem
from ..models import Broadcast, Category
from ..schedule import format_jst
from .fields import JSTDateTimeField, SafeModelMultipleChoiceField, valid_ids
from .messages import BaseMessageFormSet

TIMING_ASAP = "asap"
TIMING_AT = "at"


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
    out_of_hours_reason = forms.CharField(
        label=_("時間外配信の理由（市が必要と認める理由）"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "時間外配信は緊急ではないものの、市が必要と認めて開庁時間外（夜間・土日祝）に送る"
            "配信です（運用ポリシー5(1)）。承認者が二要素認証のうえ承認します。"
        ),
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
            "out_of_hours_reason": broadcast.out_of_hours_reason,
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
        if (
            data.get("priority") == Broadcast.Priority.OUT_OF_HOURS
            and not emergency
            and not (data.get("out_of_hours_reason") or "").strip()
        ):
            self.add_error(
                "out_of_hours_reason",
                _(
                    "時間外配信の理由を入力してください（なぜ開庁時間外に送る必要があると"
                    "市が認めるのか）。"
                ),
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
            "out_of_hours_reason": data.get("out_of_hours_reason", "")
            if data.get("priority") == Broadcast.Priority.OUT_OF_HOURS
            else "",
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
