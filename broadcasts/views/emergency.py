"""The emergency path's screens (issue 5): the supervisor's approval, withdrawal before
sending, one-click corrections and cancellations.

The approval screen is deliberately unlike the ordinary one (the 2018 Hawaii false alert:
test and live looked alike, one person could send). Only a supervisor who is not the author
gets it; they type the recipient count and need a second factor verified in the last five
minutes. The service checks all of it again; these views turn its refusals into Japanese.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions
from ..forms.review import CancelForm, EmergencyApproveForm
from ..line.errors import LineError
from ..models import Broadcast, RichMenu
from ..schedule import format_jst
from ..selectors import audiences as audience_selectors
from ..services import (
    BroadcastInvalid,
    EmergencyConfirmation,
    InvalidTransition,
    SecondFactorRequired,
    StaleApproval,
    broadcast_approve,
    broadcast_cancel,
    broadcast_follow_up_open_or_create,
    broadcast_withdraw,
    compute_hash,
)
from ..services.emergency import FOLLOW_UP_KINDS
from ..services.lifecycle import SECOND_FACTOR_MAX_AGE
from ..services.notifications import approval_alert_opened as alert_opened
from .compose import _broadcast_or_404
from .otp import second_factor_verified_at

S = Broadcast.Status
APPROVED_MESSAGE = "緊急配信を承認しました。直ちに送信します。"
DRILL_APPROVED_MESSAGE = "【訓練】訓練の配信を承認しました。職員テスト受信者に直ちに送信します。"


def emergency_context(request: HttpRequest, broadcast: Broadcast) -> dict[str, Any]:
    """What the broadcast page shows of the emergency path (merged into its context)."""
    user = request.user
    pending = broadcast.status == S.PENDING_REVIEW
    return {
        "can_emergency_approve": broadcast.is_emergency
        and pending
        and permissions.can_approve(user, broadcast),
        "can_emergency_withdraw": broadcast.is_emergency
        and pending
        and broadcast.author_id == user.pk,
        "can_follow_up": broadcast.status in {S.SENT, S.SENDING} and permissions.can_draft(user),
        "follow_ups": list(broadcast.follow_ups.order_by("created_at", "id")),
    }


def _denied(request: HttpRequest, broadcast: Broadcast, reason: str) -> HttpResponse:
    """A 403 that says why (the author, a reviewer), rather than a bare "Forbidden"."""
    return render(
        request,
        "broadcasts/emergency_denied.html",
        {"broadcast": broadcast, "reason": reason},
        status=403,
    )


def _refusal(user: Any, broadcast: Broadcast) -> str | None:
    """Why this user may not approve this emergency, or None if they may."""
    if broadcast.author_id == user.pk:
        return (
            "自分が起案した緊急配信は承認できません。"
            "起案者以外の承認者（管理職）に承認を依頼してください。"
        )
    if permissions.is_contributor(user, broadcast):
        return (
            "この緊急配信の文面を編集したため、あなたは承認できません。"
            "編集していない別の承認者（管理職）に承認を依頼してください。"
        )
    if not user.has_perm("broadcasts.approve_emergency_broadcast"):
        return "緊急配信を承認できるのは承認者（管理職）だけです。承認者に依頼してください。"
    if not permissions.can_approve(user, broadcast):
        return "この配信を承認する権限がありません。"
    return None


def _otp_url(request: HttpRequest) -> str:
    return f"{reverse('otp_verify')}?{urlencode({'next': request.path})}"


def _disaster_menu_available() -> bool:
    return RichMenu.objects.filter(kind=RichMenu.Kind.DISASTER).exists()


def _context(
    request: HttpRequest, broadcast: Broadcast, form: EmergencyApproveForm
) -> dict[str, Any]:
    categories = list(broadcast.categories.all())
    verified = second_factor_verified_at(request)
    return {
        "broadcast": broadcast,
        "form": form,
        "categories": categories,
        # Areas, age groups and language narrow it (issue 16): the count typed to approve.
        "recipients": audience_selectors.broadcast_recipient_count(broadcast),
        "second_factor_at": verified,
        "second_factor_until": format_jst(verified + SECOND_FACTOR_MAX_AGE, with_date=False)
        if verified
        else "",
        "otp_url": _otp_url(request),
        # Supervisors may switch to the disaster menu here (admins switch back later).
        "can_switch_rich_menu": not broadcast.is_drill and _disaster_menu_available(),
    }


def _render(
    request: HttpRequest, broadcast: Broadcast, form: EmergencyApproveForm, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "broadcasts/emergency_approve.html",
        _context(request, broadcast, form),
        status=status,
    )


@require_http_methods(["GET", "POST"])
def emergency_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the red 「緊急配信」 (or striped 「訓練」) approval screen. POST: approve."""
    broadcast = _broadcast_or_404(request, pk)
    if not broadcast.is_emergency:
        raise Http404("緊急配信ではありません。")
    refusal = _refusal(request.user, broadcast)
    if refusal:
        return _denied(request, broadcast, refusal)
    if broadcast.status != S.PENDING_REVIEW:
        messages.info(
            request,
            f"この配信は「{broadcast.get_status_display()}」のため、承認の対象ではありません。",
        )
        return redirect("broadcasts:detail", pk=pk)

    if request.method == "GET":
        # An alerted 承認者 looking at this screen stops the escalation (issue 13).
        alert_opened(broadcast=broadcast, user=request.user, now=timezone.now())
        form = EmergencyApproveForm(initial={"seen_hash": compute_hash(broadcast)})
        return _render(request, broadcast, form)

    form = EmergencyApproveForm(request.POST)
    if not form.is_valid():
        return _render(request, broadcast, form, status=400)
    data = form.cleaned_data
    try:
        broadcast = broadcast_approve(
            broadcast=broadcast,
            actor=request.user,
            comment=data["comment"],
            seen_hash=data["seen_hash"],
            emergency=EmergencyConfirmation(
                typed_count=data["typed_count"],
                second_factor_verified_at=second_factor_verified_at(request),
            ),
        )
    except SecondFactorRequired as exc:
        form.add_error(None, str(exc) + "「二要素認証へ進む」からコードを入力してください。")
        return _render(request, broadcast, form, status=403)
    except StaleApproval as exc:
        # Show the content as it is now; what was typed stays, the hash is the new one.
        fresh = request.POST.copy()
        broadcast = _broadcast_or_404(request, pk)
        fresh["seen_hash"] = compute_hash(broadcast)
        form = EmergencyApproveForm(fresh)
        form.is_valid()
        form.add_error(None, str(exc))
        return _render(request, broadcast, form, status=409)
    except BroadcastInvalid as exc:
        for problem in exc.problems:
            field = problem.field if problem.field in form.fields else None
            form.add_error(field, problem.message)
        return _render(request, broadcast, form, status=400)
    except InvalidTransition as exc:
        messages.error(request, str(exc))
        return redirect("broadcasts:detail", pk=pk)

    messages.success(request, DRILL_APPROVED_MESSAGE if broadcast.is_drill else APPROVED_MESSAGE)
    if data.get("switch_rich_menu") and not broadcast.is_drill:
        _switch_to_disaster_menu(request)
    return redirect("broadcasts:detail", pk=pk)


def _switch_to_disaster_menu(request: HttpRequest) -> None:
    """After the approval has committed (the send is already on its way): a failure here
    never undoes the approval, it is shown as a warning."""
    from ..services.richmenu import rich_menu_switch

    try:
        rich_menu_switch(kind=RichMenu.Kind.DISASTER, actor=request.user)
    except (LineError, BroadcastInvalid, permissions.BroadcastPermissionDenied) as exc:
        messages.warning(
            request, gettext("災害用リッチメニューに切り替えられませんでした：%(e)s") % {"e": exc}
        )
    else:
        messages.success(request, gettext("リッチメニューを災害用に切り替えました。"))


@require_POST
def emergency_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop a pending emergency before it is sent. The author withdraws the request (back to
    a draft); a supervisor cancels it with a reason."""
    broadcast = _broadcast_or_404(request, pk)
    if not broadcast.is_emergency:
        raise Http404("緊急配信ではありません。")
    if broadcast.author_id == request.user.pk:
        try:
            broadcast_withdraw(broadcast=broadcast, actor=request.user)
        except InvalidTransition as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, gettext("緊急配信の申請を取り下げました。下書きに戻りました。")
            )
        return redirect("broadcasts:detail", pk=pk)

    if not request.user.has_perm("broadcasts.approve_emergency_broadcast"):
        raise permissions.BroadcastPermissionDenied(
            "緊急配信を中止できるのは起案者本人か承認者です。"
        )
    form = CancelForm(request.POST)
    reason = form.cleaned_data["comment"].strip() if form.is_valid() else ""
    if not reason:
        messages.error(request, gettext("中止の理由を入力してください。"))
        return redirect("broadcasts:emergency_approve", pk=pk)
    try:
        broadcast_cancel(broadcast=broadcast, actor=request.user, comment=reason)
    except InvalidTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, gettext("緊急配信を中止しました（送信されません）。"))
    return redirect("broadcasts:detail", pk=pk)


@require_POST
def follow_up(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """One click on a sent broadcast: a 訂正 or 取消 draft, linked, pre-filled, emergency."""
    if kind not in FOLLOW_UP_KINDS:
        raise Http404
    original = _broadcast_or_404(request, pk)
    try:
        draft, created = broadcast_follow_up_open_or_create(
            original=original, actor=request.user, kind=kind
        )
    except InvalidTransition as exc:
        messages.error(request, str(exc))
        return redirect("broadcasts:detail", pk=pk)
    label = FOLLOW_UP_KINDS[kind]
    if created:
        messages.success(
            request,
            f"{label}の下書きを作成しました。内容を確認して保存し、承認を申請してください"
            "（緊急配信として承認者が承認します）。",
        )
        return redirect("broadcasts:edit", pk=draft.pk)
    editable = draft.status in (S.DRAFT, S.REJECTED) and permissions.can_edit(request.user, draft)
    messages.info(
        request,
        f"この配信の{label}は作成済みです（{draft.get_status_display()}）。"
        + ("続きを編集してください。" if editable else "その内容を開きました。"),
    )
    return redirect("broadcasts:edit" if editable else "broadcasts:detail", pk=draft.pk)
