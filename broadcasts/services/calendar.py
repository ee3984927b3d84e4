"""Calendar overrides: admins open or close a date."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from ..models import CalendarOverride, User
from .audit import audit_record


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
