"""The compose screen: create and edit a broadcast, and the effective-time preview.

Thin views: validate the form, call one service, turn its domain errors into form errors.
On any error the whole screen is re-rendered from what was posted, so nothing typed is lost.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from .. import checks, permissions, selectors
from ..forms.compose import TIMING_AT, BroadcastForm, apply_service_problems
from ..forms.fields import JSTDateTimeField, valid_ids
from ..forms.messages import SUGGESTED_ACTION_LABELS, message_formset
from ..models import Broadcast, Category, MessageTemplate
from ..schedule import OutOfHoursApproval, format_jst
from ..services import (
    BroadcastInvalid,
    InvalidTransition,
    broadcast_create,
    broadcast_update,
)
from ..services.scheduling import estimated_duration

# --- the effective send time, for the compose screen and its JSON endpoint --------------------


def recipient_counts(category_ids: list[int]) -> dict[str, int]:
    """How many followers each audience choice reaches (3 counts)."""
    return {
        Broadcast.Audience.ALL: selectors.recipient_count(Broadcast.Audience.ALL, []),
        Broadcast.Audience.SUBSCRIBERS: selectors.recipient_count(
            Broadcast.Audience.SUBSCRIBERS, category_ids
        )
        if category_ids
        else 0,
        Broadcast.Audience.STAFF_TEST: selectors.recipient_count(Broadcast.Audience.STAFF_TEST, []),
    }


def effective_preview(
    *,
    requested: dt.datetime | None,
    priority: str,
    audience: str,
    category_ids: list[int],
    now: dt.datetime | None = None,
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """When the broadcast would go out if approved now, and why, as shown next to the time."""
    now = now or timezone.now()
    counts = counts if counts is not None else recipient_counts(category_ids)
    emergency = priority == Broadcast.Priority.EMERGENCY or (
        bool(category_ids)
        and Category.objects.filter(pk__in=category_ids, is_emergency_default=True).exists()
    )
    probe = Broadcast(audience=audience, requested_at=requested, priority=priority)
    duration = estimated_duration(probe, counts.get(audience, 0))
    out_of_hours = None
    if priority == Broadcast.Priority.OUT_OF_HOURS and not emergency:
        # As if a 承認者 approved it now with a fresh second factor (what the text promises).
        out_of_hours = OutOfHoursApproval(
            by_supervisor=True,
            approved_at=now,
            second_factor_verified_at=now,
            approved_hash="preview",
            content_hash="preview",
        )
    effective = selectors.calendar_load(now=now).effective_send_time(
        requested=requested,
        now=now,
        emergency=emergency,
        estimated_duration=duration,
        out_of_hours=out_of_hours,
    )
    past = requested is not None and requested < now
    if past:
        text = f"配信希望日時（{format_jst(requested)}）は過去の日時です。"
    elif out_of_hours is not None:
        text = (
            "時間外配信：承認者が二要素認証のうえ承認すると、開庁時間外でも送信します。"
            f"今承認されると {format_jst(effective.at)}（{effective.reason}）。"
        )
    elif requested is None:
        text = f"承認され次第送信します。今承認されると {format_jst(effective.at)}（{effective.reason}）。"
    else:
        text = f"{effective.reason}。"
    return {
        "at": effective.at.isoformat(),
        "at_display": format_jst(effective.at),
        "held": effective.held,
        "reason": effective.reason,
        "emergency": emergency,
        "past": past,
        "text": text,
        "recipients": {str(k): v for k, v in counts.items()},
    }


@require_GET
def preview_time(request: HttpRequest) -> JsonResponse:
    """JSON for compose.js: requested time + priority (+ audience, categories) → effective
    time, the reason in Japanese, and the recipient count of each audience."""
    if not permissions.can_draft(request.user):
        raise PermissionDenied
    requested = None
    if request.GET.get("timing", TIMING_AT) == TIMING_AT:
        try:
            requested = JSTDateTimeField(required=False).clean(request.GET.get("requested_at", ""))
        except forms.ValidationError as exc:
            error = exc.messages[0]
            return JsonResponse({"error": error, "text": error}, status=400)
    priority = request.GET.get("priority", Broadcast.Priority.NORMAL)
    if priority not in Broadcast.Priority.values:
        priority = Broadcast.Priority.NORMAL
    audience = request.GET.get("audience", Broadcast.Audience.ALL)
    if audience not in Broadcast.Audience.values:
        audience = Broadcast.Audience.ALL
    return JsonResponse(
        effective_preview(
            requested=requested,
            priority=priority,
            audience=audience,
            category_ids=valid_ids(request.GET.getlist("categories")),
        )
    )


# --- compose --------------------------------------------------------------------------------


def _compose_context(
    request: HttpRequest,
    *,
    form: BroadcastForm,
    formset: Any,
    broadcast: Broadcast | None,
    source_template: MessageTemplate | None = None,
) -> dict[str, Any]:
    category_ids = form.selected_category_ids()
    counts = recipient_counts(category_ids)
    requested = None
    timing = form["timing"].value()
    if timing == TIMING_AT:
        try:
            requested = JSTDateTimeField(required=False).clean(form["requested_at"].value())
        except forms.ValidationError:
            requested = None
    effective = effective_preview(
        requested=requested,
        priority=str(form["priority"].value() or Broadcast.Priority.NORMAL),
        audience=str(form["audience"].value() or Broadcast.Audience.ALL),
        category_ids=category_ids,
        counts=counts,
    )
    checklist = None
    if broadcast is not None and not form.is_bound:
        checklist = checks.broadcast_checks(broadcast)
    audience_choices = [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "checked": str(form["audience"].value()) == value,
            "id": f"id_audience_{index}",
        }
        for index, (value, label) in enumerate(Broadcast.Audience.choices)
        # A drill reaches staff test recipients only: the one choice shown.
        if not form.is_drill or value == Broadcast.Audience.STAFF_TEST
    ]
    new_count = None
    if broadcast is None:
        # A new draft sees its recipients and the messages it consumes before it is saved
        # (issue 16); compose.js refreshes them from audiences.audience_count_new.
        from .audiences import compose_spec, count_context

        new_count = count_context(
            compose_spec(
                audience=str(form["audience"].value() or Broadcast.Audience.ALL),
                category_ids=category_ids,
            )
        )
    return {
        "is_drill": form.is_drill,
        "new_count": new_count,
        "form": form,
        "formset": formset,
        "broadcast": broadcast,
        "source_template": source_template,
        "effective": effective,
        "audience_choices": audience_choices,
        "checklist": checklist,
        "suggested_labels": SUGGESTED_ACTION_LABELS,
        "categories": list(Category.objects.all()),
        "selected_category_ids": {str(pk) for pk in category_ids},
        "preview_messages": formset.preview_messages(),
        "text_limit": 5000,
    }


def _render_compose(request: HttpRequest, status: int = 200, **kwargs: Any) -> HttpResponse:
    return render(
        request, "broadcasts/compose.html", _compose_context(request, **kwargs), status=status
    )


@require_http_methods(["GET", "POST"])
def broadcast_create_view(request: HttpRequest) -> HttpResponse:
    if not permissions.can_draft(request.user):
        raise PermissionDenied
    source = None
    if request.method == "POST":
        form = BroadcastForm(request.POST)
        formset = message_formset(request.POST)
        form_ok, formset_ok = form.is_valid(), formset.is_valid()
        if form_ok and formset_ok:
            try:
                broadcast = broadcast_create(
                    author=request.user,
                    kind=form.cleaned_data["kind"],
                    **form.service_kwargs(formset),
                )
            except BroadcastInvalid as exc:
                apply_service_problems(form, formset, exc.problems)
            else:
                messages.success(
                    request,
                    gettext("「%(t)s」を下書きとして保存しました。") % {"t": broadcast.title},
                )
                return redirect("broadcasts:detail", pk=broadcast.pk)
        return _render_compose(request, form=form, formset=formset, broadcast=None, status=400)

    initial_messages = None
    initial: dict[str, Any] = {}
    if request.GET.get("template"):
        # A link from the templates page carries a primary key; anything else (a deleted
        # template, "abc", a 40-digit number) starts a blank broadcast with a message.
        ids = valid_ids([request.GET["template"]])
        source = (
            MessageTemplate.objects.prefetch_related("categories").filter(pk=ids[0]).first()
            if ids
            else None
        )
        if source is None:
            messages.error(
                request, gettext("指定された雛形が見つかりません。白紙から作成してください。")
            )
        else:
            initial_messages = source.messages
            initial["categories"] = list(source.categories.all())
    if request.GET.get("kind") == Broadcast.Kind.DRILL:
        initial.update(
            kind=Broadcast.Kind.DRILL,
            audience=Broadcast.Audience.STAFF_TEST,
            priority=Broadcast.Priority.EMERGENCY,
            emergency_reason="訓練",
        )
        initial.setdefault("categories", list(Category.objects.filter(code="disaster_crime")))
        initial["title"] = "緊急配信訓練"
    form = BroadcastForm(initial=initial)
    formset = message_formset(messages=initial_messages)
    return _render_compose(
        request, form=form, formset=formset, broadcast=None, source_template=source
    )


def _broadcast_or_404(request: HttpRequest, pk: int) -> Broadcast:
    broadcast = get_object_or_404(
        Broadcast.objects.select_related("author", "division").prefetch_related("categories"),
        pk=pk,
    )
    if not permissions.can_view(request.user, broadcast):
        raise Http404
    return broadcast


@require_http_methods(["GET", "POST"])
def broadcast_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    if not permissions.can_edit(request.user, broadcast):
        raise PermissionDenied("この配信を編集する権限がありません。")
    if request.method == "POST":
        form = BroadcastForm(request.POST)
        formset = message_formset(request.POST)
        form_ok, formset_ok = form.is_valid(), formset.is_valid()
        if form_ok and formset_ok:
            was_scheduled = broadcast.status == Broadcast.Status.SCHEDULED
            try:
                broadcast = broadcast_update(
                    broadcast=broadcast, actor=request.user, **form.service_kwargs(formset)
                )
            except BroadcastInvalid as exc:
                apply_service_problems(form, formset, exc.problems)
            except InvalidTransition as exc:
                form.add_error(None, str(exc))
            else:
                if was_scheduled and broadcast.status == Broadcast.Status.PENDING_REVIEW:
                    messages.warning(
                        request,
                        "承認後に内容を変更したため、もう一度承認が必要です（承認待ちに戻りました）。",
                    )
                else:
                    messages.success(
                        request, gettext("「%(t)s」を保存しました。") % {"t": broadcast.title}
                    )
                return redirect("broadcasts:detail", pk=broadcast.pk)
        return _render_compose(request, form=form, formset=formset, broadcast=broadcast, status=400)
    form = BroadcastForm(initial=BroadcastForm.initial_for(broadcast))
    formset = message_formset(messages=broadcast.messages)
    return _render_compose(request, form=form, formset=formset, broadcast=broadcast)
