"""``{% load audiences %}{% audience_panel broadcast %}``: a broadcast's areas × age groups ×
language, its language versions and the recipient count beside "all friends", with the
message cost against the month's quota (issue 16). Included by the compose, review and
emergency approval screens."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from broadcasts import permissions
from broadcasts.models import Broadcast, BroadcastAudience
from broadcasts.models.audiences import AGGREGATION_UNITS_PER_MONTH
from broadcasts.schedule import jst_date
from broadcasts.selectors import audiences as audience_selectors

register = template.Library()

EDITABLE = {"draft", "rejected", "pending_review", "scheduled"}


@register.inclusion_tag("broadcasts/audiences/_panel.html", takes_context=True)
def audience_panel(context: template.Context, broadcast: Broadcast | None) -> dict[str, Any]:
    if broadcast is None or broadcast.pk is None:
        return {"broadcast": None}
    request = context.get("request")
    user = getattr(request, "user", None)
    target = BroadcastAudience.objects.filter(broadcast=broadcast).first()
    variants = list(broadcast.variants.select_related("language").order_by("language__sort_order"))
    spec = audience_selectors.audience_spec(broadcast)
    from broadcasts.views.audiences import count_context

    return {
        "broadcast": broadcast,
        "areas": list(target.areas.all()) if target else [],
        "age_groups": list(target.age_groups.all()) if target else [],
        "languages": list(target.languages.all()) if target else [],
        "include_unset": target.include_unset if target else True,
        "variants": variants,
        "count": count_context(spec),
        "staff_only": broadcast.audience == Broadcast.Audience.STAFF_TEST,
        # All friends, narrowed or with versions: multicasts to the followers the app knows
        # instead of LINE's broadcast to every friend.
        "all_as_multicast": broadcast.audience == Broadcast.Audience.ALL and spec.targeted,
        "can_edit": user is not None
        and broadcast.status in EDITABLE
        and permissions.can_edit(user, broadcast),
    }


@register.inclusion_tag("broadcasts/audiences/_ops.html")
def aggregation_status() -> dict[str, Any]:
    """運用状況: this month's aggregation units against LINE's limit, and — once, not per
    broadcast — whether LINE refused the feature (the app carries on without it)."""
    month = jst_date(timezone.now()).strftime("%Y%m")
    return {
        "refusal": audience_selectors.aggregation_refusal(),
        "used": audience_selectors.aggregation_units_used(month),
        "limit": AGGREGATION_UNITS_PER_MONTH,
    }
