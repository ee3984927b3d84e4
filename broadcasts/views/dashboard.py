"""The dashboard: the first screen every member of staff sees (issue 6).

What needs me, what goes out today and on the next opening day, what is held and why, what is
sending now, what went wrong and what to do, the month's message quota and the followers.
Each section is also served alone as an htmx fragment that the page polls every few seconds
(``dashboard_part``), so progress and queue changes appear without a reload. Every section
runs a fixed number of queries whatever the number of broadcasts."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .. import selectors
from ..models import Broadcast, Category, User
from ..permissions import can_administer, can_moderate
from ..schedule import Calendar
from ..selectors import dashboard as dash
from ..selectors.moderation import flagged_open_count
from ..selectors.richmenu import rich_menu_placeholders
from ..services.insight import line_quota_cached

S = Broadcast.Status
PARTS_DIR = "broadcasts/dashboard"

# What staff should do about a stopped send, by state.
NEXT_STEP = {
    S.NEEDS_ATTENTION: (
        "配信が途中で止まっています。エラーの内容（LINE の月間上限、再試行キーの期限切れ、"
        "配信時間を過ぎた等）を確認し、詳細画面から取り消すか、管理者に相談してください。"
    ),
    S.FAILED: (
        "LINE が配信を受け付けませんでした。エラーの内容を確認し、内容を直して"
        "新しい配信として作成し直してください。"
    ),
}


@dataclass(frozen=True)
class Progress:
    broadcast: Broadcast
    accepted: int
    total: int

    @property
    def percent(self) -> int:
        return round(self.accepted * 100 / self.total) if self.total else 0


@dataclass(frozen=True)
class Problem:
    broadcast: Broadcast
    next_step: str


# --- sections ----------------------------------------------------------------------------------


def _status(request: HttpRequest, now: dt.datetime, calendar: Calendar) -> dict[str, Any]:
    return {
        "window": dash.window_state(calendar, now),
        "quota": line_quota_cached(),
        "followers_count": selectors.followers_active().count(),
        "line_followers": dash.followers_latest(),
    }


def _action(request: HttpRequest, now: dt.datetime, calendar: Calendar) -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    roles = dash.roles_of(user)
    return {
        "roles": roles,
        "review_queue": dash.review_queue(user) if roles.reviewer else None,
        "emergency_approvals": dash.emergency_approvals(user) if roles.supervisor else None,
        "supervisor_handles": dash.supervisor_handles(user)
        if roles.reviewer and not roles.supervisor
        else None,
        "my_drafts": dash.my_drafts(user) if roles.drafter else None,
        "my_pending": dash.my_pending(user) if roles.drafter else None,
        "moderation_open": flagged_open_count() if can_moderate(user) else None,
    }


def _sending(request: HttpRequest, now: dt.datetime, calendar: Calendar) -> dict[str, Any]:
    return {
        "sending": [
            Progress(b, b.deliveries_accepted, b.deliveries_total) for b in dash.sending_now()
        ]
    }


def _schedule(request: HttpRequest, now: dt.datetime, calendar: Calendar) -> dict[str, Any]:
    return {"schedule": dash.schedule_days(calendar, now)}


def _held(request: HttpRequest, now: dt.datetime, calendar: Calendar) -> dict[str, Any]:
    return {"held": dash.held_sends()}


def _problems(request: HttpRequest, now: dt.datetime, calendar: Calendar) -> dict[str, Any]:
    section = dash.problems(now)
    return {
        "problems": [Problem(b, NEXT_STEP.get(b.status, "")) for b in section.items],
        "problems_more": section.more,
    }


PARTS: dict[str, Callable[[HttpRequest, dt.datetime, Calendar], dict[str, Any]]] = {
    "status": _status,
    "action": _action,
    "sending": _sending,
    "schedule": _schedule,
    "held": _held,
    "problems": _problems,
}
# Seconds between polls of each fragment.
POLL = {
    "status": 30,
    "action": 5,
    "sending": 3,
    "schedule": 5,
    "held": 5,
    "problems": 5,
}


def _admin_warnings(request: HttpRequest) -> list[str]:
    """For 管理者: settings still at their seeded placeholders (policy 4(2) rich menu)."""
    if not can_administer(request.user):
        return []
    return [p.message for p in rich_menu_placeholders()]


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    calendar = selectors.calendar_load(now=now)
    context: dict[str, Any] = {
        "poll": POLL,
        "now": now,
        "drill_overdue": selectors.drill_overdue(now),
        "admin_warnings": _admin_warnings(request),
    }
    for build in PARTS.values():
        context.update(build(request, now, calendar))
    return render(request, "broadcasts/dashboard.html", context)


@require_GET
def dashboard_part(request: HttpRequest, part: str) -> HttpResponse:
    """One section as an HTML fragment (for htmx polling)."""
    build = PARTS.get(part)
    if build is None:
        raise Http404
    now = timezone.now()
    calendar = selectors.calendar_load(now=now)
    context = {"poll": POLL, "now": now, **build(request, now, calendar)}
    response = render(request, f"{PARTS_DIR}/_{part}.html", context)
    response["Cache-Control"] = "no-store"
    return response


# --- category colours ----------------------------------------------------------------------------

_HEX = re.compile(r"#[0-9a-fA-F]{6}")


@require_GET
@cache_control(max_age=300)
def category_css(request: HttpRequest) -> HttpResponse:
    """Each category's colour as a CSS custom property (admins may change the colours, and
    style attributes are not allowed under the site's CSP)."""
    lines = [
        f".kw-cat-{c.code} {{ --kw-cat-color: {c.color}; }}"
        for c in Category.objects.order_by("id")
        if _HEX.fullmatch(c.color) and re.fullmatch(r"[a-z0-9_-]+", c.code)
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/css; charset=utf-8")
