"""The audit log's one writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import Broadcast, BroadcastEvent, User


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


def audit_record_system_many(
    *, verb: str, broadcasts: Sequence[Broadcast], from_status: str, to_status: str
) -> None:
    """One audit row per broadcast for the same step taken by the system (no actor, no
    comment) on many broadcasts at once — the dispatcher's claim of the sends held for the
    window's opening — in one INSERT, in the order given."""
    BroadcastEvent.objects.bulk_create(
        [
            BroadcastEvent(
                broadcast=broadcast,
                actor=None,
                verb=verb,
                from_status=from_status,
                to_status=to_status,
                data={},
            )
            for broadcast in broadcasts
        ]
    )
