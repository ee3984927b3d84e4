"""The moderation inbox (policy 6) for 広報担当 and 管理者: citizens' messages kept for the
retention the city sets, flagged first, then newest; filters and search; on a message, flag
it with the clause-6 item, note it, stop automatic replies to its sender for a while, and
record the city's 措置. Personal data is masked in the list; the message's own page shows
the text as received."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from ..forms.moderation import FlagForm, InboxFilterForm, MeasureForm, NoteForm, SuppressForm
from ..models import CitizenMessage, ReplySuppression
from ..permissions import BroadcastPermissionDenied, can_moderate
from ..schedule import JST
from ..selectors import moderation as sel
from ..services import moderation as services
from ..services.moderation import ModerationInvalid
from .paging import CappedIdPaginator

PAGE_SIZE = 50


def _require_moderator(request: HttpRequest) -> None:
    if not can_moderate(request.user):
        raise BroadcastPermissionDenied(
            "市民からのメッセージを見られるのは広報担当と管理者だけです。"
        )


def short_user_id(line_user_id: str) -> str:
    """「U1a2b…9f0e」: enough to tell citizens apart on a list."""
    if len(line_user_id) <= 10:
        return line_user_id
    return f"{line_user_id[:5]}…{line_user_id[-4:]}"


@require_GET
def moderation_inbox(request: HttpRequest) -> HttpResponse:
    _require_moderator(request)
    now = timezone.now()
    items = sel.prohibited_items()
    form = InboxFilterForm(request.GET or None, items=items)
    # Counted up to 1,000 (「1,000 件以上」): an exact count of a search that matches much of a
    # month's messages costs more than the page; the first 1,001 ids, read once, give both the
    # count and the page (bench/moderation).
    page = CappedIdPaginator(sel.inbox(form.to_filter()), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    patterns = sel.mask_patterns()
    rows = list(page.object_list)
    suppressed = sel.suppressions_active_for((m.line_user_id for m in rows), now=now)
    measured = sel.measured_ids(m.pk for m in rows)
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "broadcasts/moderation/inbox.html",
        {
            "form": form,
            "page": page,
            "rows": [
                {
                    "message": m,
                    "masked": sel.mask_personal_data(m.text, patterns),
                    "user": short_user_id(m.line_user_id),
                    "suppressed_until": suppressed.get(m.line_user_id),
                    "has_measure": m.pk in measured,
                }
                for m in rows
            ],
            "counts": sel.inbox_counts(),
            "retention_days": sel.moderation_settings().retention_days,
            "querystring": params.urlencode(),
        },
    )


def _message_context(
    request: HttpRequest, message: CitizenMessage, **forms_: forms.Form
) -> dict[str, Any]:
    now = timezone.now()
    history = sel.citizen_history(line_user_id=message.line_user_id, exclude_id=message.pk)
    patterns = sel.mask_patterns()
    settings_row = sel.moderation_settings()
    return {
        "message": message,
        "user": short_user_id(message.line_user_id),
        "suppression": sel.suppression_active(line_user_id=message.line_user_id, now=now),
        "others": [
            {"message": m, "masked": sel.mask_personal_data(m.text, patterns)}
            for m in history["messages"]
        ],
        "measures": history["measures"],
        "suppressions": history["suppressions"],
        "now": now,
        "retention_days": settings_row.retention_days,
        "flag_form": forms_.get("flag_form")
        or FlagForm(initial={"item": message.item_id} if message.item_id else None),
        "note_form": forms_.get("note_form") or NoteForm(initial={"note": message.note}),
        "suppress_form": forms_.get("suppress_form")
        or SuppressForm(initial={"days": settings_row.default_suppression_days}),
        "measure_form": forms_.get("measure_form") or MeasureForm(),
    }


def _message_or_404(pk: int) -> CitizenMessage:
    return get_object_or_404(CitizenMessage.objects.select_related("item", "flagged_by"), pk=pk)


@require_GET
def moderation_message(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    message = _message_or_404(pk)
    return render(request, "broadcasts/moderation/message.html", _message_context(request, message))


def _invalid(request: HttpRequest, message: CitizenMessage, **forms_: forms.Form) -> HttpResponse:
    messages.error(request, "入力内容を確認してください。")
    return render(
        request,
        "broadcasts/moderation/message.html",
        _message_context(request, message, **forms_),
        status=400,
    )


def _done(request: HttpRequest, message: CitizenMessage, text: str) -> HttpResponse:
    messages.success(request, text)
    return redirect("broadcasts:moderation_message", pk=message.pk)


@require_POST
def moderation_flag(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    message = _message_or_404(pk)
    form = FlagForm(request.POST)
    if not form.is_valid():
        return _invalid(request, message, flag_form=form)
    item = form.cleaned_data["item"]
    services.citizen_message_flag(
        message=message, item=item, actor=request.user, now=timezone.now()
    )
    return _done(request, message, f"{item.clause}「{item.label}」のフラグを付けました。")


@require_POST
def moderation_unflag(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    message = _message_or_404(pk)
    services.citizen_message_unflag(message=message, actor=request.user, now=timezone.now())
    return _done(request, message, "フラグを外しました。")


@require_POST
def moderation_note(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    message = _message_or_404(pk)
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _invalid(request, message, note_form=form)
    services.citizen_message_note(
        message=message, note=form.cleaned_data["note"], actor=request.user
    )
    return _done(request, message, "メモを保存しました。")


@require_POST
def moderation_suppress(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    message = _message_or_404(pk)
    form = SuppressForm(request.POST)
    if not form.is_valid():
        return _invalid(request, message, suppress_form=form)
    try:
        suppression = services.reply_suppress(
            line_user_id=message.line_user_id,
            days=form.cleaned_data["days"],
            reason=form.cleaned_data["reason"],
            message=message,
            actor=request.user,
            now=timezone.now(),
        )
    except ModerationInvalid as exc:
        form.add_error(None, str(exc))
        return _invalid(request, message, suppress_form=form)
    until = suppression.until.astimezone(JST)
    return _done(
        request,
        message,
        f"この利用者への自動応答を {until:%Y年%-m月%-d日 %H:%M} まで停止しました。",
    )


@require_POST
def moderation_suppression_lift(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    suppression = get_object_or_404(ReplySuppression, pk=pk)
    back = request.POST.get("message", "")
    try:
        services.reply_suppression_lift(
            suppression=suppression, actor=request.user, now=timezone.now()
        )
    except ModerationInvalid as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "自動応答の停止を解除しました。")
    if back.isdigit() and CitizenMessage.objects.filter(pk=int(back)).exists():
        return redirect("broadcasts:moderation_message", pk=int(back))
    return redirect("broadcasts:moderation_inbox")


@require_POST
def moderation_measure(request: HttpRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    message = _message_or_404(pk)
    form = MeasureForm(request.POST)
    if not form.is_valid():
        return _invalid(request, message, measure_form=form)
    try:
        measure = services.moderation_measure_record(
            message=message,
            kind=form.cleaned_data["kind"],
            detail=form.cleaned_data["detail"],
            actor=request.user,
            now=timezone.now(),
        )
    except ModerationInvalid as exc:
        form.add_error(None, str(exc))
        return _invalid(request, message, measure_form=form)
    return _done(request, message, f"措置「{measure.get_kind_display()}」を記録しました。")
