"""The broadcast page (review screen) and the review flow's actions.

Each action is a thin POST view: call one service, turn its domain error into a message (or a
form error re-rendered on the page), redirect. ``BroadcastPermissionDenied`` is a
``PermissionDenied``: it propagates and Django answers 403.
"""

from __future__ import annotations

import difflib
import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import checks, permissions
from ..forms.review import ApproveForm, CancelForm, MessageTemplateForm, RejectForm
from ..line.errors import LineError
from ..models import Broadcast, BroadcastEvent
from ..models.audit import VERB_LABELS
from ..schedule import format_jst
from ..selectors import audiences as audience_selectors
from ..services import (
    BroadcastInvalid,
    InvalidTransition,
    StaleApproval,
    TooManyTestSends,
    broadcast_approve,
    broadcast_cancel,
    broadcast_reject,
    broadcast_send_test,
    broadcast_submit,
    broadcast_withdraw,
    compute_hash,
)
from ..services.lifecycle import (
    EDITOR_CANNOT_APPROVE,
    SECOND_FACTOR_MAX_AGE,
    SecondFactorRequired,
    broadcast_snapshot,
)
from ..services.scheduling import schedule_for
from ..templatetags.kashiwa import jst
from .compose import _broadcast_or_404
from .emergency import emergency_context
from .otp import second_factor_verified_at

S = Broadcast.Status
FIELD_LABELS = {
    "title": "件名",
    "messages": "メッセージ",
    "audience": "配信対象",
    "categories": "カテゴリ",
    "requested_at": "配信希望日時",
    "priority": "優先度",
    "emergency_reason": "緊急配信の理由",
    "out_of_hours_reason": "時間外配信の理由",
    "notification_disabled": "通知",
    "kind": "種別",
    "targeting": "配信対象の絞り込み・言語版",
}
PRE_SEND = frozenset({S.DRAFT, S.REJECTED, S.PENDING_REVIEW, S.SCHEDULED, S.NEEDS_ATTENTION})


def last_approved_version(events: list[BroadcastEvent]) -> dict[str, Any] | None:
    """The content as it was last approved: the ``before`` of the first edit after the last
    approval (``events`` oldest first). ``None`` if it was never approved or not edited since."""
    last_approval = None
    for index, event in enumerate(events):
        if event.verb == "approve":
            last_approval = index
    if last_approval is None:
        return None
    for event in events[last_approval + 1 :]:
        if event.verb == "edit" and isinstance(event.data.get("before"), dict):
            return event.data["before"]
    return None


def approved_diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per changed field: its label and unified-diff lines (``kind`` add/remove/context)."""
    rows = []
    for key, label in FIELD_LABELS.items():
        if before.get(key) == after.get(key):
            continue
        old = json.dumps(before.get(key), ensure_ascii=False, indent=1, sort_keys=True)
        new = json.dumps(after.get(key), ensure_ascii=False, indent=1, sort_keys=True)
        lines = []
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2):
            if line.startswith(("---", "+++", "@@")):
                continue
            kind = {"+": "add", "-": "remove"}.get(line[:1], "context")
            lines.append({"kind": kind, "text": line})
        rows.append({"field": key, "label": label, "lines": lines})
    return rows


def _timeline(events: list[BroadcastEvent]) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        changed = event.data.get("changed") if isinstance(event.data, dict) else None
        rows.append(
            {
                "event": event,
                "when": jst(event.created_at),
                "verb": VERB_LABELS.get(event.verb, event.verb),
                "changed": [FIELD_LABELS.get(c, c) for c in changed or []],
                "recipient_count": (event.data or {}).get("recipient_count"),
            }
        )
    return rows


def _detail_context(
    request: HttpRequest,
    broadcast: Broadcast,
    *,
    reject_form: RejectForm | None = None,
    cancel_form: CancelForm | None = None,
) -> dict[str, Any]:
    user = request.user
    now = timezone.now()
    events = list(broadcast.events.select_related("actor").order_by("created_at", "id"))
    recipients = audience_selectors.broadcast_recipient_count(broadcast)  # areas, ages, language
    effective = None
    if broadcast.status in {S.DRAFT, S.REJECTED, S.PENDING_REVIEW}:
        effective = schedule_for(broadcast, now=now)
    checklist = None
    if broadcast.status in {S.DRAFT, S.REJECTED, S.PENDING_REVIEW, S.SCHEDULED}:
        checklist = checks.broadcast_checks(broadcast, now=now)
    diff = None
    if broadcast.status == S.PENDING_REVIEW:
        approved = last_approved_version(events)
        if approved is not None:
            diff = approved_diff(approved, broadcast_snapshot(broadcast))
    is_author = broadcast.author_id == user.pk
    edited_by_me = not is_author and permissions.is_contributor(user, broadcast)
    pending = broadcast.status == S.PENDING_REVIEW
    rejection = None
    if broadcast.status == S.REJECTED:
        rejection = next((e for e in reversed(events) if e.verb == "reject"), None)
    return {
        "broadcast": broadcast,
        "categories": list(broadcast.categories.all()),
        "timeline": _timeline(events),
        "recipients": recipients,
        "effective": effective,
        "checklist": checklist,
        "checklist_has_errors": checklist is not None and checks.has_errors(checklist),
        "diff": diff,
        "progress": broadcast.progress_percent,
        "progress_step": broadcast.progress_step,
        "progress_polling": broadcast.status == Broadcast.Status.SENDING,
        "rejection": rejection,
        "rejection_when": jst(rejection.created_at) if rejection else "",
        "seen_hash": compute_hash(broadcast),
        "approve_form": ApproveForm(initial={"seen_hash": compute_hash(broadcast)}),
        "reject_form": reject_form or RejectForm(),
        "cancel_form": cancel_form or CancelForm(),
        "template_form": MessageTemplateForm(),
        "is_author": is_author,
        # A reviewer who corrected the text (赤入れ) is told that another person approves.
        "edited_by_me": edited_by_me and broadcast.status in PRE_SEND,
        "can_edit": permissions.can_edit(user, broadcast)
        and broadcast.status in {S.DRAFT, S.REJECTED, S.PENDING_REVIEW, S.SCHEDULED},
        "can_submit": permissions.can_submit(user, broadcast)
        and broadcast.status in {S.DRAFT, S.REJECTED},
        "can_withdraw": is_author and pending,
        # Emergencies are approved on their own screen (emergency.emergency_approve).
        "can_approve": pending
        and not broadcast.is_emergency
        and permissions.can_approve(user, broadcast),
        # What waits for a 承認者 is theirs to send back too (not a 広報担当's).
        "can_reject": pending and permissions.can_reject(user, broadcast),
        "can_cancel": broadcast.status in PRE_SEND and permissions.can_cancel(user, broadcast),
        "can_test_send": broadcast.status in {S.DRAFT, S.REJECTED, S.PENDING_REVIEW}
        and permissions.can_send_test(user, broadcast),
        "can_save_template": permissions.can_draft(user),
        "show_staff_details": user.has_perm("broadcasts.view_broadcast"),
        "awaiting_supervisor": pending
        and broadcast.needs_supervisor
        and not is_author
        and not permissions.can_approve(user, broadcast),
        **_second_factor_context(request, broadcast),
        **emergency_context(request, broadcast),
    }


def _second_factor_context(request: HttpRequest, broadcast: Broadcast) -> dict[str, Any]:
    """A 時間外配信's approval card shows whether the approver's second factor is fresh."""
    if not broadcast.is_out_of_hours:
        return {}
    verified = second_factor_verified_at(request)
    fresh = verified is not None and verified >= timezone.now() - SECOND_FACTOR_MAX_AGE
    return {
        "second_factor_at": verified if fresh else None,
        "second_factor_until": format_jst(verified + SECOND_FACTOR_MAX_AGE, with_date=False)
        if fresh and verified
        else "",
        "otp_url": f"{reverse('otp_verify')}?{urlencode({'next': request.path})}",
    }


@require_GET
def broadcast_detail(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    return render(request, "broadcasts/detail.html", _detail_context(request, broadcast))


def _problems_text(exc: BroadcastInvalid) -> str:
    return "／".join(p.message for p in exc.problems)


@require_POST
def submit(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    try:
        broadcast_submit(broadcast=broadcast, actor=request.user)
    except BroadcastInvalid as exc:
        messages.error(request, "承認を申請できません: " + _problems_text(exc))
        return redirect("broadcasts:edit", pk=pk)
    except InvalidTransition as exc:
        messages.error(request, str(exc))
    else:
        if broadcast.needs_supervisor:
            # Emergencies, drills and 時間外配信 wait for a 承認者, not for the 広報担当.
            messages.success(
                request,
                gettext("承認を申請しました。承認者（管理職）の承認をお待ちください。"),
            )
        else:
            messages.success(
                request, gettext("承認を申請しました。広報担当の確認をお待ちください。")
            )
    return redirect("broadcasts:detail", pk=pk)


@require_POST
def withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    try:
        broadcast_withdraw(broadcast=broadcast, actor=request.user)
    except InvalidTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, gettext("申請を取り下げました。下書きに戻りました。"))
    return redirect("broadcasts:detail", pk=pk)


@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    if not permissions.can_approve(request.user, broadcast):
        # The service refuses too; answer 403 before even reading the form.
        if broadcast.author_id == request.user.pk:
            raise permissions.BroadcastPermissionDenied("自分が起案した配信は承認できません。")
        if permissions.is_contributor(request.user, broadcast):
            raise permissions.BroadcastPermissionDenied(EDITOR_CANNOT_APPROVE)
        if broadcast.is_out_of_hours:
            raise permissions.BroadcastPermissionDenied(
                "時間外配信を承認できるのは承認者（管理職）だけです。"
            )
        raise permissions.BroadcastPermissionDenied("この配信を承認する権限がありません。")
    if broadcast.is_emergency:
        # Never without the typed count and a fresh second factor: only on its own screen.
        messages.error(
            request,
            "緊急配信・訓練はこの画面では承認できません。「緊急承認へ」から、受信者数の入力と"
            "二要素認証を行って承認してください。",
        )
        return redirect("broadcasts:detail", pk=pk)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, gettext("確認した内容を特定できません。ページを再読み込みしてください。")
        )
        return redirect("broadcasts:detail", pk=pk)
    try:
        broadcast = broadcast_approve(
            broadcast=broadcast,
            actor=request.user,
            comment=form.cleaned_data["comment"],
            seen_hash=form.cleaned_data["seen_hash"],
            second_factor_verified_at=second_factor_verified_at(request),
        )
    except SecondFactorRequired:
        messages.error(
            request,
            "時間外配信の承認には、5分以内の二要素認証が必要です。"
            "「二要素認証へ進む」からコードを入力してから、もう一度承認してください。",
        )
    except StaleApproval as exc:
        messages.error(request, str(exc))
    except BroadcastInvalid as exc:
        messages.error(request, "承認できません: " + _problems_text(exc))
    except InvalidTransition as exc:
        messages.error(request, str(exc))
    else:
        when = format_jst(broadcast.scheduled_for) if broadcast.scheduled_for else ""
        note = f"（{broadcast.hold_reason}）" if broadcast.hold_reason else ""
        messages.success(request, f"承認しました。{when} に配信します{note}。")
    return redirect("broadcasts:detail", pk=pk)


@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    form = RejectForm(request.POST)
    if form.is_valid():
        try:
            broadcast_reject(
                broadcast=broadcast, actor=request.user, comment=form.cleaned_data["comment"]
            )
        except BroadcastInvalid as exc:
            for problem in exc.problems:
                form.add_error("comment" if problem.field == "comment" else None, problem.message)
        except InvalidTransition as exc:
            messages.error(request, str(exc))
            return redirect("broadcasts:detail", pk=pk)
        else:
            messages.success(request, gettext("差し戻しました。起案者に理由が表示されます。"))
            return redirect("broadcasts:detail", pk=pk)
    context = _detail_context(request, broadcast, reject_form=form)
    return render(request, "broadcasts/detail.html", context, status=400)


@require_http_methods(["GET", "POST"])
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: a confirmation page. POST: cancel (any time before sending)."""
    broadcast = _broadcast_or_404(request, pk)
    if not permissions.can_cancel(request.user, broadcast):
        raise permissions.BroadcastPermissionDenied("この配信を取り消す権限がありません。")
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            broadcast_cancel(
                broadcast=broadcast, actor=request.user, comment=form.cleaned_data["comment"]
            )
        except InvalidTransition as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, gettext("「%(t)s」の配信を取り消しました。") % {"t": broadcast.title}
            )
        return redirect("broadcasts:detail", pk=pk)
    return render(request, "broadcasts/cancel_confirm.html", {"broadcast": broadcast, "form": form})


@require_POST
def test_send(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    try:
        result = broadcast_send_test(broadcast=broadcast, actor=request.user, now=timezone.now())
    except BroadcastInvalid as exc:
        messages.error(request, "テスト送信できません: " + _problems_text(exc))
    except (InvalidTransition, TooManyTestSends) as exc:
        messages.error(request, str(exc))
    except LineError as exc:
        messages.error(request, gettext("テスト送信に失敗しました: %(e)s") % {"e": exc.describe()})
    else:
        messages.success(
            request,
            f"【テスト】職員テスト受信者 {result.recipient_count} 人に送信しました"
            "（市民には届きません）。",
        )
    return redirect("broadcasts:detail", pk=pk)
