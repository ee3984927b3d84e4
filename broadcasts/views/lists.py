"""Broadcast lists: my drafts, awaiting my review, scheduled, held, sent, failed — filterable,
searchable and paginated, at a constant number of queries whatever the number of rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from .. import permissions, selectors
from ..forms.lists import BroadcastFilterForm
from ..models import Broadcast, User
from ..schedule import JST
from ..selectors import dashboard as dash
from ..templatetags.kashiwa import jst
from .paging import CappedPaginator

S = Broadcast.Status
PAGE_SIZE = 25
# Tabs that are work to do, short enough to sort emergencies first (issue 13 item 3).
EMERGENCY_FIRST_TABS = frozenset({"mine", "review", "scheduled", "held", "failed"})
# What only a 承認者 approves: a 広報担当's review queue lists it apart.
SUPERVISOR_PRIORITIES = (Broadcast.Priority.EMERGENCY, Broadcast.Priority.OUT_OF_HOURS)


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    filter: Callable[[QuerySet[Broadcast], User], QuerySet[Broadcast]]


TABS = [
    Tab("all", _("すべて"), lambda qs, u: qs),
    Tab(
        "mine",
        _("自分の下書き"),
        lambda qs, u: qs.filter(author=u, status__in=[S.DRAFT, S.REJECTED, S.PENDING_REVIEW]),
    ),
    Tab(
        "review",
        _("承認待ち"),
        lambda qs, u: qs.filter(status=S.PENDING_REVIEW).exclude(author=u),
    ),
    Tab("scheduled", _("配信予定"), lambda qs, u: qs.filter(status=S.SCHEDULED, hold_reason="")),
    Tab("held", _("保留中"), lambda qs, u: qs.filter(status=S.SCHEDULED).exclude(hold_reason="")),
    Tab("sent", _("配信済み"), lambda qs, u: qs.filter(status__in=[S.SENDING, S.SENT])),
    Tab(
        "failed",
        _("失敗・要対応"),
        lambda qs, u: qs.filter(status__in=[S.FAILED, S.NEEDS_ATTENTION]),
    ),
]
TABS_BY_KEY = {t.key: t for t in TABS}


# --- reads ---------------------------------------------------------------------------------


def broadcasts_visible_to(user: User) -> QuerySet[Broadcast]:
    """Everything but other people's drafts, unless the user reviews."""
    qs = Broadcast.objects.all()
    if not permissions.can_review(user):
        qs = qs.filter(~Q(status=S.DRAFT) | Q(author=user))
    return qs


def broadcasts_for_list(user: User, *, tab: str, filters: dict[str, Any]) -> QuerySet[Broadcast]:
    """One query for the rows (+1 for their categories), whatever the page size."""
    qs = TABS_BY_KEY.get(tab, TABS[0]).filter(broadcasts_visible_to(user), user)
    qs = qs.annotate(when=Coalesce("sent_at", "scheduled_for", "requested_at", "created_at"))
    if filters.get("q"):
        q = filters["q"].strip()
        # SQLite stores JSON with \\uXXXX escapes: look for both spellings.
        escaped = json.dumps(q)[1:-1]
        qs = qs.filter(
            Q(title__icontains=q) | Q(messages__icontains=q) | Q(messages__icontains=escaped)
        )
    if filters.get("category"):
        # Only this filter joins the categories (one row per category): deduplicate then.
        qs = qs.filter(categories=filters["category"]).distinct()
    if filters.get("division"):
        qs = qs.filter(division=filters["division"])
    if filters.get("author"):
        qs = qs.filter(author=filters["author"])
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("date_from"):
        qs = qs.filter(when__gte=datetime.combine(filters["date_from"], time(0), tzinfo=JST))
    if filters.get("date_to"):
        end = datetime.combine(filters["date_to"] + timedelta(days=1), time(0), tzinfo=JST)
        qs = qs.filter(when__lt=end)
    qs = qs.select_related("author", "division", "approved_by").prefetch_related("categories")
    if tab in EMERGENCY_FIRST_TABS:
        # Work queues: emergencies first (issue 13 item 3). The long chronological tabs
        # (all, sent) keep the time order their index serves.
        return qs.order_by(dash.EMERGENCY_FIRST, "-when", "-id")
    return qs.order_by("-when", "-id")


def review_rows(user: User, qs: QuerySet[Broadcast]) -> QuerySet[Broadcast]:
    """What a 広報担当 may act on: a 広報担当 who is not a 承認者 never has emergencies, drills
    or 時間外配信 in their queue (they are listed apart as 「承認者が対応します」)."""
    if user.has_perm("broadcasts.approve_emergency_broadcast"):
        return qs
    return qs.exclude(priority__in=SUPERVISOR_PRIORITIES)


def row_send_time(broadcast: Broadcast, calendar: Any, now: datetime) -> tuple[str, str]:
    """(time in JST, note) for a list row: when it went or will go out, and why."""
    if broadcast.sent_at:
        return jst(broadcast.sent_at), gettext("配信済み")
    if broadcast.scheduled_for:
        return jst(broadcast.scheduled_for), broadcast.hold_reason
    if broadcast.status in {S.CANCELLED, S.FAILED}:
        return "—", ""
    effective = calendar.effective_send_time(
        requested=broadcast.requested_at, now=now, emergency=broadcast.is_emergency
    )
    note = gettext("承認され次第") if broadcast.requested_at is None else ""
    if effective.held:
        note = (note + "・" if note else "") + effective.reason
    return gettext("%(at)s（見込み）") % {"at": jst(effective.at)}, note


def _render_list(
    request: HttpRequest, *, tab: str, template: str, title: str, is_review_queue: bool = False
) -> HttpResponse:
    form = BroadcastFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    qs = broadcasts_for_list(request.user, tab=tab, filters=filters)
    supervisor_handles = None
    if is_review_queue:
        qs = review_rows(request.user, qs)
        if not request.user.has_perm("broadcasts.approve_emergency_broadcast"):
            supervisor_handles = dash.supervisor_handles(request.user)
    page = CappedPaginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    calendar = selectors.calendar_load(now=now)
    rows = []
    for broadcast in page.object_list:
        when, note = row_send_time(broadcast, calendar, now)
        rows.append({"broadcast": broadcast, "when": when, "note": note})
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        template,
        {
            "title": title,
            "is_review_queue": is_review_queue,
            "tabs": TABS,
            "tab": tab,
            "form": form,
            "page": page,
            "rows": rows,
            "querystring": params.urlencode(),
            "supervisor_handles": supervisor_handles,
        },
    )


@require_GET
def broadcast_list(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("broadcasts.view_broadcast"):
        raise PermissionDenied
    tab = request.GET.get("tab", "all")
    if tab not in TABS_BY_KEY:
        tab = "all"
    return _render_list(request, tab=tab, template="broadcasts/list.html", title=_("配信一覧"))


@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    """The 広報担当's queue: broadcasts awaiting review, not their own."""
    if not permissions.can_review(request.user):
        raise PermissionDenied
    return _render_list(
        request,
        tab="review",
        template="broadcasts/list.html",
        title=_("承認待ち"),
        is_review_queue=True,
    )
