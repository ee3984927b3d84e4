"""The month's message quota, reserved by each send before its first request."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet, Sum

from kashiwa.cache import cache_get_or_none, cache_set_or_skip

from ...line.errors import (
    LineError,
)
from ...line.gateway import LineGateway, Quota
from ...models import Broadcast, Delivery
from .finish import RETRY_LATER_SECONDS

logger = logging.getLogger(__name__)

S = Broadcast.Status
D = Delivery.Status


def _quota(gateway: LineGateway) -> Quota:
    """The month's quota and consumption, read fresh for each send that starts: a reading
    shared for a few seconds let two sends starting together count the same messages."""
    quota = gateway.quota()
    quota_plan_remember(quota.type)
    return quota


# Whether the account has a monthly limit at all is a property of its plan (the
# local-government plan has none), not of the month's counts: remembered for an hour
# in the shared cache, so that sends on a plan without a limit (an emergency above all) do
# not wait for two calls to LINE's statistics before their first request. A plan that gains
# a limit within that hour is caught by LINE itself (its 429 stops the send as 要対応).
QUOTA_PLAN_CACHE_KEY = "line-quota-plan"
QUOTA_PLAN_TTL_SECONDS = 3600
UNLIMITED = "none"


def quota_plan_remember(quota_type: str) -> None:
    # A cache outage only costs the next send a reading.
    cache_set_or_skip(QUOTA_PLAN_CACHE_KEY, quota_type, QUOTA_PLAN_TTL_SECONDS)


def quota_plan_warm_up(gateway: LineGateway) -> None:
    """Read the plan if nobody has lately (a pool process starting: its first send, an
    emergency perhaps, then need not). Never raises."""
    try:
        if cache.get(QUOTA_PLAN_CACHE_KEY) is None:
            _quota(gateway)
    except Exception:
        logger.warning("could not read the quota plan at warm-up", exc_info=True)


def _plan_known_unlimited() -> bool:
    return bool(cache_get_or_none(QUOTA_PLAN_CACHE_KEY) == UNLIMITED)


QUOTA_SETTLE = dt.timedelta(seconds=60)


def _pending_messages(broadcast_ids: list[int], totals: dict[int, int]) -> int:
    """Messages the given sends have reserved but LINE has not yet accepted (and so not yet
    counted in its consumption): pending multicast recipients, or the whole estimate of a
    broadcast-API send not yet accepted."""
    return _messages(
        Delivery.objects.filter(broadcast_id__in=broadcast_ids, status=D.PENDING), totals
    )


def _messages(deliveries: QuerySet[Delivery], totals: dict[int, int]) -> int:
    """The messages ``deliveries`` stand for: a multicast's recipients; a broadcast-API
    request, its send's whole recipient estimate (``totals``: send id → recipients)."""
    messages = 0
    rows = deliveries.values("broadcast_id", "kind").annotate(n=Sum("recipient_count"))
    for row in rows:
        if row["kind"] == Delivery.Kind.BROADCAST:
            messages += totals.get(row["broadcast_id"], 0)
        else:
            messages += row["n"] or 0
    return messages


def _recently_accepted(exclude: int, now: dt.datetime, totals: dict[int, int]) -> int:
    """Messages of other sends' requests LINE accepted in the last ``QUOTA_SETTLE`` (its
    consumption may not count them yet): a send in progress whose chunk was accepted a
    moment ago is neither pending nor finished, and was counted by nobody."""
    return _messages(
        Delivery.objects.filter(
            status=D.ACCEPTED,
            accepted_at__gte=now - QUOTA_SETTLE,
            broadcast__status=S.SENDING,
        ).exclude(broadcast_id=exclude),
        totals,
    )


def _reserved(broadcast: Broadcast, now: dt.datetime) -> None:
    """Mark the send's messages reserved (its row, and the instance the sender holds)."""
    Broadcast.objects.filter(pk=broadcast.pk).update(quota_reserved_at=now)
    broadcast.quota_reserved_at = now


def _reserve_quota(
    broadcast: Broadcast,
    gateway: LineGateway,
    now: dt.datetime,
    wait_built: Callable[[], bool] | None = None,
    *,
    started: bool | None = None,
) -> tuple[str, str] | None:
    """Before the first request, reserve this send's messages against the month's quota.

    Reservations are serialised by locking every send in progress, so two sends starting
    together cannot both count the same remaining messages (on the first pass both passed a
    shared reading and both hit LINE's monthly limit half-way). What other reserved sends have
    not yet used, and what sends finished in the last minute (LINE's count may lag), is taken
    off the remainder. Returns ``None`` (go), ``("retry_later", why)`` or
    ``("needs_attention", why)``.

    When the quota cannot be read: ordinary sends wait and retry; emergencies go (an
    emergency is never held back by a statistics endpoint; LINE itself refuses a send over
    the limit, which stops it as 要対応).

    A send whose rows are still being built (``deliveries_total`` 0, see build.py) does not
    know how many messages it needs: with a monthly limit, ``wait_built`` builds the rest
    first and the reservation counts them all; without one, nothing waits.

    ``started`` (known from the send's preparation): whether a request was already accepted;
    None to look. On a plan known to have no monthly limit nothing is read from LINE."""
    if broadcast.quota_reserved_at is not None:
        return None
    if started is None:
        started = broadcast.deliveries.filter(status=D.ACCEPTED).exists()
    if started:
        return None
    if _plan_known_unlimited():
        _reserved(broadcast, now)
        return None
    try:
        quota = _quota(gateway)
    except LineError as exc:
        logger.warning("quota check failed for broadcast %s: %s", broadcast.pk, exc.describe())
        if broadcast.is_emergency:
            return None
        return (
            "retry_later",
            f"LINE の今月の配信可能数を確認できないため、{RETRY_LATER_SECONDS}秒後に再試行します"
            f"（{exc.describe()}）。",
        )
    if quota.type != "limited" or quota.remaining is None:
        # No monthly limit (the local-government plan): nothing to share out, so no lock on
        # every send in progress (50 sends starting at the window's opening queued on it,
        # and an emergency waited for the row of the multicast being sent).
        _reserved(broadcast, now)
        return None
    if broadcast.deliveries_total == 0:
        if wait_built is None or not wait_built():
            return (
                "retry_later",
                f"送信リクエストの準備が終わらないため、{RETRY_LATER_SECONDS}秒後に再試行します。",
            )
        broadcast.refresh_from_db(fields=["deliveries_total", "recipient_count"])
    with transaction.atomic():
        in_progress = list(
            Broadcast.objects.select_for_update()
            .filter(status=S.SENDING)
            .order_by("pk")
            .values_list("pk", "quota_reserved_at", "recipient_count")
        )
        totals = {pk: count or 0 for pk, _, count in in_progress}
        others = [pk for pk, reserved, _ in in_progress if reserved and pk != broadcast.pk]
        settling = list(
            Broadcast.objects.filter(status=S.SENT, sent_at__gte=now - QUOTA_SETTLE)
            .exclude(pk=broadcast.pk)
            .values_list("pk", "recipient_count")
        )
        reserved = (
            _pending_messages(others, totals)
            + sum(c or 0 for _, c in settling)
            + _recently_accepted(broadcast.pk, now, totals)
        )
        needed = _pending_messages([broadcast.pk], {broadcast.pk: broadcast.recipient_count or 0})
        if needed > quota.remaining:
            return (
                "needs_attention",
                f"今月の配信可能数が足りません（残り {quota.remaining:,} 通、必要 {needed:,} 通）。",
            )
        if needed > quota.remaining - reserved and not broadcast.is_emergency:
            return (
                "retry_later",
                f"ほかの配信が今月の配信可能数を使用中のため待機しています（残り "
                f"{quota.remaining:,} 通のうち {reserved:,} 通を使用予定、必要 {needed:,} 通）。"
                f"{RETRY_LATER_SECONDS}秒後に再確認します。",
            )
        _reserved(broadcast, now)
    return None
