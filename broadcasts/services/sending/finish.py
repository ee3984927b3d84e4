"""How a send ends: sent, stopped (要対応 or failed), or released to retry later."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F

from ...models import Broadcast, Delivery
from ..audit import audit_record
from ..lifecycle import transition, transition_if

logger = logging.getLogger(__name__)


S = Broadcast.Status
D = Delivery.Status
RETRY_LATER_SECONDS = 30


def _stop(
    broadcast: Broadcast, action: str, message: str, data: dict[str, Any] | None = None
) -> None:
    broadcast.last_error = message
    broadcast.lease_owner = ""
    broadcast.lease_expires_at = None
    transition(
        broadcast,
        action,
        actor=None,
        comment=message,
        data=data,
        fields=["last_error", "lease_owner", "lease_expires_at"],
    )


@dataclass
class SendOutcome:
    status: str
    detail: str = ""


@transaction.atomic
def _finish(
    broadcast_id: int,
    stop: tuple[str, str] | None,
    last_error: str,
    owner: str,
    now: dt.datetime,
) -> SendOutcome:
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
    if broadcast.status != S.SENDING:
        return SendOutcome(broadcast.status)
    if broadcast.lease_owner != owner:
        # Another run took the send over (this one was presumed dead): it decides.
        return SendOutcome("skipped", f"leased by {broadcast.lease_owner or 'nobody'}")
    accepted, request_ids = _accepted(broadcast)
    summary = _summary(accepted, broadcast.deliveries_total, request_ids)
    if broadcast.deliveries_total == 0 and stop is None:
        # The rows were still being built (build.py) when this run ended (its builder failed):
        # whatever was accepted, the send is not complete. The next run resumes the build.
        message = "送信リクエストの準備が途中で止まったため再試行します。"
        _release_for_retry(broadcast, message, now, summary)
        return SendOutcome("retry_later", message)
    if stop is not None:
        action, message = stop
        logger.warning("broadcast %s stopped (%s): %s", broadcast.pk, action, message)
        _stop(
            broadcast,
            action,
            f"{message}（{accepted}/{broadcast.deliveries_total} 件送信済み）",
            summary,
        )
        return SendOutcome(action, message)
    if accepted == broadcast.deliveries_total:
        sent = _sent_values(now)
        for name, value in sent.items():
            setattr(broadcast, name, value)
        transition(broadcast, "complete", actor=None, data=summary, fields=list(sent))
        _log_sent(broadcast, accepted)
        return SendOutcome("sent")
    # Temporary failures left: release the lease so the dispatcher retries soon.
    message = f"一時的なエラーのため再試行します: {last_error}"
    _release_for_retry(broadcast, message, now, summary)
    return SendOutcome("retry_later", last_error)


def _complete_with_last_replies(
    broadcast: Broadcast, owner: str, count: int, request_ids: list[str], now: dt.datetime
) -> bool:
    """The sender's last replies, as they are recorded (the caller's transaction, after
    ``count`` more rows were marked accepted): if they make every request of the send
    accepted and this run still holds the lease, the send is SENT now, in the same commit,
    instead of by ``_finish`` in one more transaction that reads it all again (a small send
    at the window's opening spent a fifth of its time there).

    The row's own current columns decide, in the UPDATE itself: ``deliveries_total`` set (the
    build is complete), ``deliveries_accepted`` (every acceptance counts into it, in the
    transaction that marks the rows) plus ``count`` equal to it, the lease still ``owner``'s.
    ``request_ids``: those of every request of the send, in ``seq`` order (the caller makes
    this path only when its run sent them all). Returns False, having written nothing, when
    any of that does not hold: the caller records the count as usual and ``_finish`` decides."""
    total = broadcast.deliveries_total
    sent = _sent_values(now)
    moved = transition_if(
        broadcast,
        "complete",
        now=now,
        where={
            "lease_owner": owner,
            "deliveries_total__gt": 0,
            "deliveries_total": F("deliveries_accepted") + count,
        },
        values={"deliveries_accepted": F("deliveries_accepted") + count, **sent},
        data=_summary(total, total, request_ids[:REQUEST_IDS_KEPT]),
    )
    if moved:
        for name, value in sent.items():
            setattr(broadcast, name, value)
        _log_sent(broadcast, total)
    return moved


def _sent_values(now: dt.datetime) -> dict[str, Any]:
    """What a completed send's row says besides its status, whichever path completes it."""
    return {"sent_at": now, "lease_owner": "", "lease_expires_at": None, "last_error": ""}


def _summary(accepted: int, total: int, request_ids: list[str]) -> dict[str, Any]:
    """The audit data of a send's end: how many requests LINE accepted of how many, and the
    request IDs kept for LINE's support."""
    return {"accepted": accepted, "total": total, "request_ids": request_ids}


def _log_sent(broadcast: Broadcast, accepted: int) -> None:
    logger.info(
        "broadcast %s sent: %s requests, %s recipients",
        broadcast.pk,
        accepted,
        broadcast.recipient_count,
    )


def _release_for_retry(
    broadcast: Broadcast, message: str, now: dt.datetime, summary: dict[str, Any]
) -> None:
    """Let go of the (locked) send; the dispatcher hands it to a new run when the lease
    lapses, RETRY_LATER_SECONDS from ``now``."""
    broadcast.lease_owner = ""
    broadcast.lease_expires_at = now + dt.timedelta(seconds=RETRY_LATER_SECONDS)
    broadcast.last_error = message
    broadcast.save(update_fields=["lease_owner", "lease_expires_at", "last_error", "updated_at"])
    audit_record(
        verb="send_retry_later",
        actor=None,
        broadcast=broadcast,
        from_status=S.SENDING,
        to_status=S.SENDING,
        comment=broadcast.last_error,
        data=summary,
    )


REQUEST_IDS_KEPT = 20


def _accepted(broadcast: Broadcast) -> tuple[int, list[str]]:
    """How many of the send's requests LINE accepted, and the request IDs of the first
    ``REQUEST_IDS_KEPT`` (the audit row keeps them for LINE's support). A send of that many
    rows or fewer (most of them) is read in one statement; one still being built (0 rows
    known) is not."""
    accepted = broadcast.deliveries.filter(status=D.ACCEPTED).order_by("seq")
    if 0 < broadcast.deliveries_total <= REQUEST_IDS_KEPT:
        request_ids = list(accepted.values_list("request_id", flat=True))
        return len(request_ids), request_ids
    first = list(accepted.values_list("request_id", flat=True)[:REQUEST_IDS_KEPT])
    return accepted.count(), first
