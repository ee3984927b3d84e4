"""Every URL as every role: allowed or denied exactly as DESIGN.md §2 says (least privilege).

``ok`` means the role gets the page or its action runs (any answer but 403/404, a redirect to
the login page, or a 500); ``deny`` means 403 or 404; anonymous visitors are sent to the login
page everywhere except the public pages and the webhook. A new URL without a row here fails
``test_every_url_has_a_row``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

ROLES = ("anon", "drafter", "other", "reviewer", "supervisor", "admin")
ALL_STAFF = {"drafter", "other", "reviewer", "supervisor", "admin"}
DRAFTING = {"drafter", "other", "reviewer", "supervisor"}
REVIEWING = {"reviewer", "supervisor"}
PUBLIC = set(ROLES)
MODERATING = {"reviewer", "supervisor", "admin"}


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    allowed: set[str]
    args: Callable[[dict[str, Any]], list[Any]] = lambda world: []
    data: dict[str, str] | None = None
    public: bool = False
    # logging out ends on the login page: that redirect is the action succeeding
    ends_on_login: bool = False


def pk(key: str) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda world: [world[key].pk]


MATRIX = [
    # public: no login
    Row("login", "GET", PUBLIC, public=True),
    Row("healthz", "GET", PUBLIC, public=True),
    Row("line_webhook", "POST", PUBLIC, public=True),
    Row("set_language", "POST", PUBLIC, data={"language": "en"}, public=True),
    Row("broadcasts:public_account", "GET", PUBLIC, public=True),
    Row("broadcasts:public_policy", "GET", PUBLIC, public=True),
    Row("broadcasts:public_qr", "GET", PUBLIC, public=True),
    # every member of staff
    Row("logout", "POST", ALL_STAFF, ends_on_login=True),
    Row("otp_setup", "GET", ALL_STAFF),
    Row("otp_verify", "GET", ALL_STAFF),
    Row("password_change", "GET", ALL_STAFF),
    Row("broadcasts:dashboard", "GET", ALL_STAFF),
    Row("broadcasts:dashboard_part", "GET", ALL_STAFF, args=lambda w: ["status"]),
    Row("broadcasts:category_css", "GET", ALL_STAFF),
    Row("broadcasts:calendar", "GET", ALL_STAFF),
    Row("broadcasts:calendar_month", "GET", ALL_STAFF),
    Row("broadcasts:calendar_week", "GET", ALL_STAFF),
    Row("broadcasts:list", "GET", ALL_STAFF),
    Row("broadcasts:stats", "GET", ALL_STAFF),
    Row("broadcasts:stats_csv", "GET", ALL_STAFF),
    Row("broadcasts:stats_refresh", "POST", ALL_STAFF),
    Row("broadcasts:broadcast_stats", "GET", ALL_STAFF, args=pk("sent")),
    Row("broadcasts:broadcast_stats_refresh", "POST", ALL_STAFF, args=pk("sent")),
    Row("broadcasts:progress", "GET", ALL_STAFF, args=pk("sent")),
    Row("broadcasts:detail", "GET", ALL_STAFF, args=pk("sent")),
    # staff alerts: one's own LINE link; an alert's link (then the page the person may see)
    Row("broadcasts:line_link", "GET", ALL_STAFF),
    Row("broadcasts:alert_open", "GET", ALL_STAFF, args=pk("sent")),
    Row("broadcasts:alert_open", "GET", {"drafter", "reviewer", "supervisor"}, args=pk("draft")),
    # drafting
    Row("broadcasts:create", "GET", DRAFTING),
    Row("broadcasts:preview_time", "GET", DRAFTING),
    Row("broadcasts:audience_count_new", "GET", DRAFTING),
    Row("broadcasts:templates", "GET", DRAFTING),
    Row("broadcasts:follow_up", "POST", DRAFTING, args=lambda w: [w["sent"].pk, "correction"]),
    # a draft is seen by its author and reviewers, edited by its author (and reviewers)
    Row("broadcasts:edit", "GET", {"drafter", "reviewer", "supervisor"}, args=pk("draft")),
    Row("broadcasts:audience_edit", "GET", {"drafter", "reviewer", "supervisor"}, args=pk("draft")),
    Row(
        "broadcasts:audience_count", "GET", {"drafter", "reviewer", "supervisor"}, args=pk("draft")
    ),
    Row("broadcasts:submit", "POST", {"drafter"}, args=pk("draft")),
    Row("broadcasts:test_send", "POST", {"drafter", "reviewer", "supervisor"}, args=pk("draft")),
    Row("broadcasts:withdraw", "POST", {"drafter"}, args=pk("pending")),
    Row("broadcasts:cancel", "GET", {"drafter", "reviewer", "supervisor"}, args=pk("pending")),
    # review
    Row("broadcasts:review_queue", "GET", REVIEWING),
    Row("broadcasts:approve", "POST", REVIEWING, args=pk("pending")),
    Row("broadcasts:reject", "POST", REVIEWING, args=pk("pending"), data={"comment": "日付を確認"}),
    # emergencies: only a supervisor who is not the author
    Row("broadcasts:emergency_approve", "GET", {"supervisor"}, args=pk("emergency")),
    Row(
        "broadcasts:emergency_withdraw",
        "POST",
        {"drafter", "supervisor"},
        args=pk("emergency"),
        data={"reason": "誤報のため"},
    ),
    # audit history
    Row("broadcasts:history", "GET", {"reviewer", "supervisor", "admin"}),
    Row("broadcasts:history_csv", "GET", {"reviewer", "supervisor", "admin"}),
    # official information received (issue 15)
    Row("broadcasts:official_list", "GET", {"reviewer", "supervisor", "admin"}),
    Row(
        "broadcasts:official_detail",
        "GET",
        {"reviewer", "supervisor", "admin"},
        args=pk("official"),
    ),
    # administrators
    Row("broadcasts:richmenu_list", "GET", {"admin"}),
    Row("broadcasts:ops", "GET", {"admin"}),
    Row("broadcasts:richmenu_switch", "POST", {"admin"}, data={"kind": "normal"}),
    Row("broadcasts:richmenu_image", "GET", {"admin"}, args=pk("menu")),
    Row("broadcasts:richmenu_publish", "POST", {"admin"}, args=pk("menu")),
    # the moderation inbox (policy 6): 広報担当 (and 承認者) and 管理者
    Row("broadcasts:moderation_inbox", "GET", MODERATING),
    Row("broadcasts:moderation_message", "GET", MODERATING, args=pk("citizen_message")),
    Row(
        "broadcasts:moderation_flag",
        "POST",
        MODERATING,
        args=pk("citizen_message"),
        data={"item": "1"},
    ),
    Row("broadcasts:moderation_unflag", "POST", MODERATING, args=pk("citizen_message")),
    Row(
        "broadcasts:moderation_note",
        "POST",
        MODERATING,
        args=pk("citizen_message"),
        data={"note": "確認"},
    ),
    Row(
        "broadcasts:moderation_suppress",
        "POST",
        MODERATING,
        args=pk("citizen_message"),
        data={"days": "3"},
    ),
    Row(
        "broadcasts:moderation_measure",
        "POST",
        MODERATING,
        args=pk("citizen_message"),
        data={"kind": "blocked"},
    ),
    Row("broadcasts:moderation_suppression_lift", "POST", MODERATING, args=pk("suppression")),
    Row("broadcasts:personal_data", "GET", {"admin"}),
]


def url_names() -> set[str]:
    def walk(patterns: list[Any], ns: str | None = None) -> set[str]:
        names: set[str] = set()
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace == "admin":
                    continue
                names |= walk(p.url_patterns, p.namespace or ns)
            elif isinstance(p, URLPattern) and p.name:
                names.add(f"{ns}:{p.name}" if ns else p.name)
        return names

    return walk(get_resolver().url_patterns)


def test_every_url_has_a_row():
    assert url_names() == {row.name for row in MATRIX}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", MATRIX, ids=lambda r: r.name)
def test_role_may_or_may_not(client, world, row, role):
    if role != "anon":
        client.force_login(world["users"][role])
    url = reverse(row.name, args=row.args(world))
    response = getattr(client, row.method.lower())(url, row.data or {})
    status = response.status_code
    assert status != 500
    to_login = status == 302 and response["Location"].startswith(reverse("login"))
    if role == "anon" and not row.public:
        assert to_login, f"anonymous {row.method} {url} gave {status}, not the login page"
        return
    if role in row.allowed:
        refused = status in (403, 404) or (to_login and not row.ends_on_login)
        assert not refused, f"{role} was refused {url} ({status})"
    else:
        assert status in (403, 404), f"{role} was allowed {row.method} {url} ({status})"
