"""``{% approval_alerts broadcast %}``: who was alerted about a broadcast, when, by which
channel, and who opened it (the broadcast page and the emergency approval screen)."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings

from ..models import Broadcast
from ..selectors import notifications as alert_selectors

register = template.Library()


@register.inclusion_tag("broadcasts/notifications/_alerts_panel.html")
def approval_alerts(broadcast: Broadcast) -> dict[str, Any]:
    return {
        "broadcast": broadcast,
        "panel": alert_selectors.alerts_panel(broadcast),
        "escalation_minutes": settings.ALERT_ESCALATION_MINUTES,
    }
