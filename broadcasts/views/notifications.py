"""Staff alerts' screens (issue 13): linking one's own LINE account for approval alerts, and
the alert's link, which records that the person opened it and shows the approval screen.

The link goes through login and the second factor like any page (the middleware keeps
``next``), so a supervisor woken at night lands on the approval screen itself."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from .. import permissions
from ..models import Broadcast
from ..selectors import notifications as alert_selectors
from ..services import notifications


@require_http_methods(["GET", "POST"])
def line_link(request: HttpRequest) -> HttpResponse:
    """「LINE 通知の設定」: issue a one-time code to send to the official account, or unlink."""
    user = request.user
    code = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "issue":
            code = notifications.line_link_code_issue(user=user, now=timezone.now())
        elif action == "unlink":
            if notifications.line_link_remove(user=user):
                messages.success(request, gettext("LINE の連携を解除しました。"))
            return redirect("broadcasts:line_link")
        else:
            messages.error(request, gettext("操作を選んでください。"))
            return redirect("broadcasts:line_link")
    return render(
        request,
        "broadcasts/notifications/line_link.html",
        {
            "link": alert_selectors.line_link_for(user),
            "code": code,
            "link_message": f"{notifications.LINK_PREFIX} {code}" if code else "",
            "code_minutes": settings.LINE_LINK_CODE_MINUTES,
            "escalation_minutes": settings.ALERT_ESCALATION_MINUTES,
            "can_approve_emergencies": user.has_perm("broadcasts.approve_emergency_broadcast"),
        },
    )


@require_GET
def alert_open(request: HttpRequest, pk: int) -> HttpResponse:
    """The link in an alert: counts as opened (the escalation stops), then the approval
    screen for those who may approve, else the broadcast's page."""
    broadcast = get_object_or_404(Broadcast, pk=pk)
    if not permissions.can_view(request.user, broadcast):
        raise Http404
    notifications.approval_alert_opened(broadcast=broadcast, user=request.user, now=timezone.now())
    if (
        broadcast.is_emergency
        and broadcast.status == Broadcast.Status.PENDING_REVIEW
        and permissions.can_approve(request.user, broadcast)
    ):
        return redirect("broadcasts:emergency_approve", pk=pk)
    if broadcast.status != Broadcast.Status.PENDING_REVIEW:
        messages.info(
            request,
            gettext("この配信はすでに「%(status)s」です。")
            % {"status": broadcast.get_status_display()},
        )
    return redirect("broadcasts:detail", pk=pk)
