"""The dispatcher: claims due broadcasts, holds those outside the window or over the
broadcast-API budget, and hands stalled sends to a new run."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ... import ops, selectors
from ...models import Broadcast, BroadcastEvent, Delivery
from ...schedule import format_jst, jst_date
from ..audit import audit_record
from ..lifecycle import transition, transition_many
from ..scheduling import enqueue_send, estimated_duration, out_of_hours_approval
from .lease import _lease_seconds

logger = logging.getLogger(__name__)

S = Broadcast.Status
D = Delivery.Status
BROADCAST_API_PER_HOUR = 60


@dataclass
class DispatchResult:
    claimed: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    # The first scheduled send falling due before the next run (see the dispatch task).
    next_due_at: dt.datetime | None = None


def _emergency_approved(broadcast: Broadcast) -> bool:
    """An emergency goes out only with a supervisor's approval, recorded in the audit log,
    by someone other than the author, for exactly this content."""
    if not broadcast.approved_by_id or broadcast.approved_by_id == broadcast.author_id:
        return False
    approval = (
        BroadcastEvent.objects.filter(broadcast=broadcast, verb="approve")
        .select_related("actor")
        .order_by("-created_at", "-id")
        .first()
    )
    return (
        approval is not None
        and approval.actor is not None
        and approval.actor_id != broadcast.author_id
        and approval.actor.has_perm("broadcasts.approve_emergency_broadcast")
        and approval.data.get("approved_hash") == broadcast.approved_hash
    )


def _broadcast_api_headroom(now: dt.datetime, *, emergency: bool) -> dt.datetime | None:
    """None if a broadcast-API call may go now; else when the next slot frees up.
    Ordinary sends leave the last N slots of the hour to emergencies."""
    since = now - dt.timedelta(hours=1)
    used = selectors.broadcast_api_calls_since(since)
    limit = BROADCAST_API_PER_HOUR - (0 if emergency else settings.EMERGENCY_BROADCAST_RESERVE)
    if used < limit:
        return None
    oldest = selectors.oldest_broadcast_api_call_since(since) or now
    return oldest + dt.timedelta(hours=1, seconds=1)


def _hold(broadcast: Broadcast, *, at: dt.datetime, reason: str, from_sending: bool) -> None:
    changed = broadcast.scheduled_for != at or broadcast.hold_reason != reason
    broadcast.scheduled_for = at
    broadcast.hold_reason = reason
    broadcast.lease_owner = ""
    broadcast.lease_expires_at = None
    fields = ["scheduled_for", "hold_reason", "lease_owner", "lease_expires_at"]
    if from_sending:
        transition(
            broadcast,
            "hold",
            actor=None,
            comment=reason,
            data={"scheduled_for": at.isoformat()},
            fields=fields,
        )
    elif changed:
        broadcast.save(update_fields=[*fields, "updated_at"])
        audit_record(
            verb="held",
            actor=None,
            broadcast=broadcast,
            from_status=broadcast.status,
            to_status=broadcast.status,
            comment=reason,
            data={"scheduled_for": at.isoformat()},
        )


# A send estimated to run past the window's end is held whole. Far from the end that cannot
# happen (the account's largest send takes well under a minute), so the recipient count the
# estimate needs is only queried in the window's last minutes.
ESTIMATE_ONLY_WITHIN = dt.timedelta(minutes=10)


def _window_check(
    broadcast: Broadcast, now: dt.datetime, calendar: Any
) -> tuple[dt.datetime, str] | None:
    """For an ordinary send (or a 時間外配信): None if it may start now, else (when, why) to
    hold it. A 時間外配信 leaves the window only if schedule.py finds its approval valid now."""
    if broadcast.is_emergency:
        return None
    out_of_hours = out_of_hours_approval(broadcast)
    effective = calendar.effective_send_time(
        requested=None, now=now, emergency=False, out_of_hours=out_of_hours
    )
    if effective.at <= now and (out_of_hours is None or not out_of_hours.grants()):
        _start, window_end = calendar.window_bounds(jst_date(now))
        if window_end - now <= ESTIMATE_ONLY_WITHIN:
            effective = calendar.effective_send_time(
                requested=None,
                now=now,
                emergency=False,
                estimated_duration=estimated_duration(broadcast, broadcast.recipient_count),
                out_of_hours=out_of_hours,
            )
    if effective.at > now:
        return effective.at, effective.reason
    if broadcast.audience == Broadcast.Audience.ALL:
        free_at = _broadcast_api_headroom(now, emergency=False)
        if free_at is not None:
            return free_at, (
                "1時間あたりの一斉配信の上限（緊急用の枠を除く）に達したため "
                f"{format_jst(free_at)} に送信されます"
            )
    return None


def broadcasts_dispatch_due(*, now: dt.datetime | None = None, limit: int = 100) -> DispatchResult:
    """Claim due broadcasts and hand stalled sends to a new worker. Run by Celery beat."""
    now = now or timezone.now()
    ops.dispatcher_heartbeat(now)
    calendar = selectors.calendar_load(now=now)
    result = DispatchResult()
    with transaction.atomic():
        due = list(
            Broadcast.objects.select_for_update(skip_locked=True)
            .filter(status=S.SCHEDULED, scheduled_for__lte=now)
            .order_by("priority", "scheduled_for", "id")[:limit]
        )
        claimed: list[Broadcast] = []
        for broadcast in due:
            hold = _window_check(broadcast, now, calendar)
            if hold is not None:
                _hold(broadcast, at=hold[0], reason=hold[1], from_sending=False)
                result.held.append(broadcast.pk)
                continue
            claimed.append(broadcast)
        # All claimed in two statements (the window's opening claims fifty at once); their
        # sends are enqueued in priority order once this transaction commits.
        transition_many(
            claimed,
            "claim",
            now=now,
            values={
                "sending_started_at": Coalesce("sending_started_at", Value(now)),
                "lease_owner": "",
                "lease_expires_at": now + _lease_seconds(),
                "hold_reason": "",
            },
        )
        for broadcast in claimed:
            enqueue_send(broadcast.pk, emergency=broadcast.is_emergency)
            result.claimed.append(broadcast.pk)

        stalled = list(
            Broadcast.objects.select_for_update(skip_locked=True)
            .filter(status=S.SENDING, lease_expires_at__lt=now)
            .order_by("priority", "lease_expires_at")[:limit]
        )
        for broadcast in stalled:
            previous = broadcast.lease_owner
            broadcast.lease_owner = ""
            broadcast.lease_expires_at = now + _lease_seconds()
            broadcast.save(update_fields=["lease_owner", "lease_expires_at", "updated_at"])
            if previous:
                _resumed_record(broadcast, previous)
            enqueue_send(broadcast.pk, emergency=broadcast.is_emergency)
            result.resumed.append(broadcast.pk)
    result.next_due_at = selectors.next_due_within(
        now=now, within=dt.timedelta(seconds=settings.DISPATCH_INTERVAL_SECONDS)
    )
    if result.claimed or result.held or result.resumed:
        logger.info(
            "dispatch: claimed=%s held=%s resumed=%s", result.claimed, result.held, result.resumed
        )
    return result


@transaction.atomic
def broadcast_claim_now(
    *, broadcast_id: int, now: dt.datetime | None = None, owner: str = ""
) -> bool:
    """The emergency path: claim an approved, due broadcast at once (no dispatcher wait), for
    the send run ``owner`` (empty: the first sender takes it, as after the dispatcher's claim).
    Returns whether this call claimed it (the dispatcher may have been first)."""
    now = now or timezone.now()
    broadcast = (
        Broadcast.objects.select_for_update(skip_locked=True)
        .filter(pk=broadcast_id, status=S.SCHEDULED, scheduled_for__lte=now)
        .first()
    )
    if broadcast is None:
        return False
    _claim_for(broadcast, now, owner)
    return True


def _claim_for(broadcast: Broadcast, now: dt.datetime, owner: str) -> None:
    """The emergency path's claim of a locked, due broadcast for the send run ``owner``
    (``broadcast_claim_now``, or the emergency task's send in its own transaction)."""
    broadcast.sending_started_at = now
    broadcast.lease_owner = owner
    broadcast.lease_expires_at = now + _lease_seconds()
    transition(
        broadcast,
        "claim",
        actor=None,
        fields=["sending_started_at", "lease_owner", "lease_expires_at"],
    )


def _resumed_record(broadcast: Broadcast, previous: str, worker: str = "") -> None:
    """The audit row of a send taken over from a run whose lease expired: by the
    dispatcher (``worker`` not known yet) or by a run that found it so (send._prepare)."""
    data = {"previous_worker": previous, **({"worker": worker} if worker else {})}
    audit_record(
        verb="send_resumed",
        actor=None,
        broadcast=broadcast,
        from_status=S.SENDING,
        to_status=S.SENDING,
        data=data,
    )
