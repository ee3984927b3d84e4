"""Every write and every state change (HackSoft styleguide: services)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from .models import Broadcast, BroadcastEvent, CalendarOverride, User


def audit_record(
    *,
    verb: str,
    actor: User | None,
    broadcast: Broadcast | None = None,
    from_status: str = "",
    to_status: str = "",
    comment: str = "",
    data: dict[str, Any] | None = None,
) -> BroadcastEvent:
    """Append one audit row. The only way the app writes to the audit log."""
    return BroadcastEvent.objects.create(
        broadcast=broadcast,
        actor=actor if actor is not None and actor.is_authenticated else None,
        verb=verb,
        from_status=from_status,
        to_status=to_status,
        comment=comment,
        data=data or {},
    )


@transaction.atomic
def calendar_override_save(
    *, actor: User, date: dt.date, is_open: bool, reason: str
) -> CalendarOverride:
    before = CalendarOverride.objects.filter(date=date).values("is_open", "reason").first()
    override, _created = CalendarOverride.objects.update_or_create(
        date=date, defaults={"is_open": is_open, "reason": reason, "created_by": actor}
    )
    audit_record(
        verb="calendar_override_saved",
        actor=actor,
        data={
            "date": date.isoformat(),
            "before": before,
            "after": {"is_open": is_open, "reason": reason},
        },
    )
    return override


@transaction.atomic
def calendar_override_delete(*, actor: User, date: dt.date) -> None:
    before = CalendarOverride.objects.filter(date=date).values("is_open", "reason").first()
    CalendarOverride.objects.filter(date=date).delete()
    audit_record(
        verb="calendar_override_deleted",
        actor=actor,
        data={"date": date.isoformat(), "before": before},
    )
