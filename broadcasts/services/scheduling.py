"""When a broadcast may go out: effective send times, holds, and the emergency enqueue."""

from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.db import transaction

from .. import selectors
from ..models import Broadcast, BroadcastEvent
from ..schedule import Calendar, Effective, OutOfHoursApproval
from . import enqueue

MULTICAST_CHUNK = 500


def estimated_duration(broadcast: Broadcast, recipients: int | None = None) -> dt.timedelta:
    """How long the send will take: one call for the broadcast API, else one call per
    500 recipients at the multicast rate, plus a margin."""
    if broadcast.audience == Broadcast.Audience.ALL:
        return dt.timedelta(seconds=30)
    if recipients is None:
        recipients = selectors.recipient_count(
            broadcast.audience, broadcast.categories.values_list("id", flat=True)
        )
    calls = math.ceil(recipients / MULTICAST_CHUNK)
    return dt.timedelta(seconds=30 + calls / max(settings.MULTICAST_MAX_PER_SECOND, 1))


def out_of_hours_approval(broadcast: Broadcast) -> OutOfHoursApproval | None:
    """What ``schedule.py`` needs to decide whether a 時間外配信 may leave the window, read
    from the database; ``None`` for any other broadcast.

    Read afresh at every decision (approval, dispatch, the sender's re-check), never trusted
    from the row alone: the approver is whoever the last approval's audit row names, must
    still be a 承認者 who did not write the content, and the approved hash must be the hash
    of the content as it is now. Anything missing keeps the send in the window."""
    if not broadcast.is_out_of_hours:
        return None
    from ..permissions import is_contributor
    from .lifecycle import compute_hash

    approval = None
    if broadcast.approved_by_id and broadcast.pk is not None:
        approval = (
            BroadcastEvent.objects.filter(broadcast=broadcast, verb="approve")
            .select_related("actor")
            .order_by("-created_at", "-id")
            .first()
        )
    actor = approval.actor if approval is not None else None
    by_supervisor = (
        actor is not None
        and actor.pk == broadcast.approved_by_id
        and actor.is_active
        and actor.has_perm("broadcasts.approve_emergency_broadcast")
        and not is_contributor(actor, broadcast)
        and approval is not None
        and approval.data.get("approved_hash") == broadcast.approved_hash
    )
    return OutOfHoursApproval(
        by_supervisor=by_supervisor,
        approved_at=broadcast.approved_at,
        second_factor_verified_at=broadcast.approval_second_factor_at,
        approved_hash=broadcast.approved_hash,
        content_hash=compute_hash(broadcast) if broadcast.pk is not None else "",
    )


def schedule_for(
    broadcast: Broadcast,
    *,
    now: dt.datetime,
    calendar: Calendar | None = None,
    out_of_hours: OutOfHoursApproval | None = None,
) -> Effective:
    """When ``broadcast`` goes out if approved (or as approved) at ``now``. ``out_of_hours``
    is the approval being given right now (``broadcast_approve``); otherwise a 時間外配信's
    approval is read from the database."""
    calendar = calendar or selectors.calendar_load(now=now)
    return calendar.effective_send_time(
        requested=broadcast.requested_at,
        now=now,
        emergency=broadcast.is_emergency,
        estimated_duration=estimated_duration(broadcast),
        out_of_hours=out_of_hours or out_of_hours_approval(broadcast),
    )


def enqueue_send(broadcast_id: int, *, emergency: bool) -> None:
    """Enqueue the send task after the surrounding transaction commits.

    Robust: with the broker down, the approval (already committed) must not turn into an
    error page; the failure is logged and the dispatcher, which re-reads the database every
    second once the broker is back, sends it."""
    if emergency:
        transaction.on_commit(
            lambda: enqueue.task_send_emergency(enqueue.SEND_EMERGENCY_BROADCAST, broadcast_id),
            robust=True,
        )
        return
    name = enqueue.SEND_BROADCAST
    transaction.on_commit(lambda: enqueue.task_send(name, args=(broadcast_id,)), robust=True)


def enqueue_emergency_send(broadcast_id: int) -> None:
    enqueue_send(broadcast_id, emergency=True)
