"""The audit log's one writer."""

from __future__ import annotations

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
