"""The four staff roles of DESIGN.md §2 and the permissions each group holds.

Used by the data migration that seeds the groups and by tests and demo data."""

from __future__ import annotations

DRAFTER = "起案者"
REVIEWER = "広報担当"
SUPERVISOR = "承認者"
ADMIN = "管理者"

ROLES = (DRAFTER, REVIEWER, SUPERVISOR, ADMIN)

_DRAFTER_PERMS = (
    "broadcasts.view_broadcast",
    "broadcasts.add_broadcast",
    "broadcasts.change_broadcast",
    "broadcasts.submit_broadcast",
    "broadcasts.send_test_broadcast",
    "broadcasts.view_category",
)
_REVIEWER_PERMS = (*_DRAFTER_PERMS, "broadcasts.review_broadcast", "broadcasts.view_broadcastevent")
_SUPERVISOR_PERMS = (*_REVIEWER_PERMS, "broadcasts.approve_emergency_broadcast")
_ADMIN_PERMS = (
    "broadcasts.view_broadcast",
    "broadcasts.view_broadcastevent",
    "broadcasts.view_delivery",
    "broadcasts.view_category",
    "broadcasts.change_category",
    "broadcasts.view_division",
    "broadcasts.add_division",
    "broadcasts.change_division",
    "broadcasts.view_follower",
    "broadcasts.view_calendaroverride",
    "broadcasts.add_calendaroverride",
    "broadcasts.change_calendaroverride",
    "broadcasts.delete_calendaroverride",
    "broadcasts.view_user",
    "broadcasts.add_user",
    "broadcasts.change_user",
    "auth.view_group",
    "auth.change_group",
)

GROUP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    DRAFTER: _DRAFTER_PERMS,
    REVIEWER: _REVIEWER_PERMS,
    SUPERVISOR: _SUPERVISOR_PERMS,
    ADMIN: _ADMIN_PERMS,
}

# Policy 4(1): code, label, colour, emergency by default.
CATEGORIES: tuple[tuple[str, str, str, bool], ...] = (
    ("disaster_crime", "防災・防犯", "#c0392b", False),
    ("fire", "火災", "#d35400", False),
    ("events", "柏市・千葉県等のイベント", "#8e44ad", False),
    ("childcare_education", "子育て・教育", "#e67e22", False),
    ("health_welfare", "健康・福祉・医療", "#16a085", False),
    ("tourism_pr", "魅力・観光PR", "#2980b9", False),
    ("municipal", "市政", "#2c3e50", False),
    ("koho_kashiwa", "広報かしわ発行", "#27ae60", False),
    ("emergency", "緊急情報", "#b00020", True),
    ("survey", "アンケート等協力依頼", "#7f8c8d", False),
    ("other", "その他", "#5d6d7e", False),
)
