"""Reads for staff alerts: who is alerted, what the broadcast screens show of it, what the
beat task has to do."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth.models import Permission
from django.db.models import Q, QuerySet

from .. import roles
from ..models import Alert, AlertRound, Broadcast, LineLink, User

APPROVE_EMERGENCY = ("broadcasts", "approve_emergency_broadcast")
REVIEW = ("broadcasts", "review_broadcast")


def users_with_permission(app_label: str, codename: str) -> QuerySet[User]:
    """Active staff who hold the permission through a group or directly."""
    permission = Permission.objects.filter(
        content_type__app_label=app_label, codename=codename
    ).first()
    if permission is None:
        return User.objects.none()
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__permissions=permission) | Q(user_permissions=permission))
        .distinct()
    )


def contributor_ids(broadcast: Broadcast) -> set[int]:
    """Who wrote part of it (the author and every editor): they cannot approve it."""
    ids = set(broadcast.contributors.values_list("user_id", flat=True))
    ids.add(broadcast.author_id)
    return ids


def emergency_approvers(broadcast: Broadcast) -> list[User]:
    """Everyone who may approve this emergency: active 承認者 who wrote none of it."""
    exclude = contributor_ids(broadcast)
    return [
        u
        for u in users_with_permission(*APPROVE_EMERGENCY).order_by("username")
        if u.pk not in exclude
    ]


def reviewers(broadcast: Broadcast) -> list[User]:
    """Everyone who may approve this ordinary broadcast (広報担当, 承認者), not its writers."""
    exclude = contributor_ids(broadcast)
    return [u for u in users_with_permission(*REVIEW).order_by("username") if u.pk not in exclude]


def escalation_recipients(broadcast: Broadcast) -> list[User]:
    """Every active 承認者 and 管理者 but the broadcast's writers."""
    exclude = contributor_ids(broadcast)
    people = (
        User.objects.filter(is_active=True, groups__name__in=[roles.SUPERVISOR, roles.ADMIN])
        .distinct()
        .order_by("username")
    )
    return [u for u in people if u.pk not in exclude]


def line_ids(users: list[User]) -> dict[int, str]:
    return dict(LineLink.objects.filter(user__in=users).values_list("user_id", "line_user_id"))


def line_link_for(user: User) -> LineLink | None:
    return LineLink.objects.filter(user=user).first()


def current_round(broadcast: Broadcast) -> AlertRound | None:
    """The alerts of the broadcast's latest submission."""
    if broadcast.submitted_at is None:
        return None
    return AlertRound.objects.filter(
        broadcast=broadcast, submitted_at=broadcast.submitted_at
    ).first()


def rounds_due_for_escalation(*, now: dt.datetime) -> list[int]:
    """Emergency rounds still waiting, unopened, past their escalation time."""
    return list(
        AlertRound.objects.filter(
            kind=AlertRound.Kind.EMERGENCY,
            escalated_at__isnull=True,
            first_opened_at__isnull=True,
            escalate_at__lte=now,
            broadcast__status=Broadcast.Status.PENDING_REVIEW,
        )
        .order_by("escalate_at")
        .values_list("pk", flat=True)[:100]
    )


def rounds_with_undelivered_alerts(*, now: dt.datetime, stale: dt.timedelta) -> list[int]:
    """Emergency rounds with alerts nobody sent: the enqueue was lost (broker down), the send
    failed for a while, or the worker died mid-send (a claim older than ``stale``)."""
    return list(
        Alert.objects.filter(round__kind=AlertRound.Kind.EMERGENCY)
        .filter(
            Q(status=Alert.Status.PENDING)
            | Q(status=Alert.Status.SENDING, claimed_at__lt=now - stale)
        )
        .values_list("round_id", flat=True)
        .distinct()[:100]
    )


@dataclass
class AlertsPanel:
    """What the broadcast and approval screens show: who was alerted, when, how, who opened."""

    round: AlertRound | None
    alerts: list[Alert] = field(default_factory=list)
    unreachable: list[User] = field(default_factory=list)

    @property
    def opened(self) -> list[Alert]:
        return [a for a in self.alerts if a.opened_at]


def alerts_panel(broadcast: Broadcast) -> AlertsPanel:
    alert_round = current_round(broadcast)
    if alert_round is None:
        return AlertsPanel(round=None)
    alerts = list(
        alert_round.alerts.select_related("recipient").order_by(
            "level", "recipient__username", "channel"
        )
    )
    unreachable: list[User] = []
    if alert_round.kind == AlertRound.Kind.EMERGENCY:
        approvers = emergency_approvers(broadcast)
        linked = line_ids(approvers)
        unreachable = [u for u in approvers if not u.email and u.pk not in linked]
    return AlertsPanel(round=alert_round, alerts=alerts, unreachable=unreachable)
