"""The staff and broadcasts every security test walks over."""

from __future__ import annotations

from typing import Any

import pytest

from broadcasts import services
from broadcasts.models import Broadcast, Category, OfficialMessage, RichMenu


@pytest.fixture
def world(drafter, other_drafter, reviewer, supervisor, admin_user, line_sandbox):
    cat = Category.objects.get(code="childcare_education")
    message = [{"type": "text", "text": "子育て支援センターのお知らせ"}]

    def make(**kwargs: Any) -> Broadcast:
        return services.broadcast_create(
            author=drafter, title="お知らせ", categories=[cat], messages=message, **kwargs
        )

    draft = make()
    pending = make()
    services.broadcast_submit(broadcast=pending, actor=drafter)
    emergency = make(priority=Broadcast.Priority.EMERGENCY, emergency_reason="断水")
    services.broadcast_submit(broadcast=emergency, actor=drafter)
    sent = make()
    Broadcast.objects.filter(pk=sent.pk).update(status=Broadcast.Status.SENT)
    sent.refresh_from_db()
    return {
        "users": {
            "drafter": drafter,
            "other": other_drafter,
            "reviewer": reviewer,
            "supervisor": supervisor,
            "admin": admin_user,
        },
        "draft": draft,
        "pending": pending,
        "emergency": emergency,
        "sent": sent,
        "menu": RichMenu.objects.order_by("pk").first(),
        "official": OfficialMessage.objects.create(
            source=OfficialMessage.Source.FILE,
            data_type="VXSE51",
            event_id="20260717021503",
            info_type="発表",
            title="震度速報",
            received_at=sent.created_at,
            outcome=OfficialMessage.Outcome.IGNORED,
        ),
    }
