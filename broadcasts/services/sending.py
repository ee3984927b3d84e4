"""Sending, effectively once (DESIGN.md §5).

* The database is the schedule: the dispatcher claims due rows with
  ``select_for_update(skip_locked=True)``; no long Celery ETAs anywhere.
* Before the first LINE call every request is a committed ``Delivery`` row with its own UUID
  retry key; every attempt reuses it, and LINE's 409 for a known key counts as accepted.
* A sending worker holds a lease it renews as it goes. A worker that dies leaves the lease
  to expire; the dispatcher then hands the send to another worker, which sends only the
  deliveries not yet accepted (a chunk accepted but not recorded gets 409 → accepted).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ops, selectors
from ..content import has_drill_marker
from ..line.errors import (
    LineError,
    LinePermanentError,
    LineQuotaExceededError,
    LineRateLimitedError,
    LineTemporaryError,
)
from ..line.gateway import LineGateway, Quota, SendResult, get_gateway
from ..models import Broadcast, BroadcastEvent, Delivery
from ..ratelimit import RateLimiter
from ..schedule import format_jst, jst_date
from .audit import audit_record
from .lifecycle import compute_hash, transition
from .scheduling import MULTICAST_CHUNK, enqueue_send, estimated_duration

logger = logging.getLogger(__name__)

S = Broadcast.Status
D = Delivery.Status
# LINE keeps a retry key for 24 hours; past 23 we no longer trust it to deduplicate.
RETRY_KEY_MAX_AGE = dt.timedelta(hours=23)
BROADCAST_API_PER_HOUR = 60
INLINE_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)
RETRY_LATER_SECONDS = 30


def _lease_seconds() -> dt.timedelta:
    return dt.timedelta(seconds=settings.SEND_LEASE_SECONDS)


def lease_owner_new() -> str:
    """A name for one send run: host, process and a random part. Made when the run starts,
    never at import: prefork pool processes share their parent's imports, and two runs in one
    process must not take each other's lease for their own (STYLE.md §14)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaseKeeper(threading.Thread):
    """Renews a send's lease by time while its sender lives (every third of the lease), not
    only when a chunk is accepted: a sender waiting on a slow LINE keeps its send, and the
    dispatcher resumes a send only when its sender is really gone. If the lease has moved to
    another run meanwhile, ``lost`` is set and the sender stops before its next request."""

    def __init__(self, broadcast_id: int, owner: str, now_fn: Callable[[], dt.datetime]) -> None:
        super().__init__(name=f"lease-{broadcast_id}", daemon=True)
        self.broadcast_id = broadcast_id
        self.owner = owner
        self.now_fn = now_fn
        self.lost = threading.Event()
        self._stop_event = threading.Event()
        self.interval = max(settings.SEND_LEASE_SECONDS / 3, 0.2)

    def run(self) -> None:
        from django.db import connection

        try:
            while not self._stop_event.wait(self.interval):
                try:
                    renewed = Broadcast.objects.filter(
                        pk=self.broadcast_id, status=S.SENDING, lease_owner=self.owner
                    ).update(lease_expires_at=self.now_fn() + _lease_seconds())
                except Exception:  # a busy database: try again at the next beat
                    logger.warning("lease renewal of broadcast %s failed", self.broadcast_id)
                    continue
                if not renewed:
                    logger.warning(
                        "broadcast %s: lease lost by %s; stopping", self.broadcast_id, self.owner
                    )
                    self.lost.set()
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# --- the dispatcher -------------------------------------------------------------------
@dataclass
class DispatchResult:
    claimed: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)


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
    """For an ordinary send: None if it may start now, else (when, why) to hold it."""
    if broadcast.is_emergency:
        return None
    effective = calendar.effective_send_time(requested=None, now=now, emergency=False)
    if effective.at <= now:
        _start, window_end = calendar.window_bounds(jst_date(now))
        if window_end - now <= ESTIMATE_ONLY_WITHIN:
            effective = calendar.effective_send_time(
                requested=None,
                now=now,
                emergency=False,
                estimated_duration=estimated_duration(broadcast, broadcast.recipient_count),
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
        for broadcast in due:
            hold = _window_check(broadcast, now, calendar)
            if hold is not None:
                _hold(broadcast, at=hold[0], reason=hold[1], from_sending=False)
                result.held.append(broadcast.pk)
                continue
            broadcast.sending_started_at = broadcast.sending_started_at or now
            broadcast.lease_owner = ""
            broadcast.lease_expires_at = now + _lease_seconds()
            broadcast.hold_reason = ""
            transition(
                broadcast,
                "claim",
                actor=None,
                fields=["sending_started_at", "lease_owner", "lease_expires_at", "hold_reason"],
            )
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
                audit_record(
                    verb="send_resumed",
                    actor=None,
                    broadcast=broadcast,
                    from_status=S.SENDING,
                    to_status=S.SENDING,
                    data={"previous_worker": previous},
                )
            enqueue_send(broadcast.pk, emergency=broadcast.is_emergency)
            result.resumed.append(broadcast.pk)
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
    broadcast.sending_started_at = now
    broadcast.lease_owner = owner
    broadcast.lease_expires_at = now + _lease_seconds()
    transition(
        broadcast,
        "claim",
        actor=None,
        fields=["sending_started_at", "lease_owner", "lease_expires_at"],
    )
    return True


# --- the sender -----------------------------------------------------------------------
def _create_deliveries(broadcast: Broadcast, now: dt.datetime) -> None:
    """All LINE requests of this send, committed before the first call. Their retry keys are
    made ``now``, on the clock their age is later measured with (``RETRY_KEY_MAX_AGE``)."""
    if broadcast.audience == Broadcast.Audience.ALL:
        Delivery.objects.create(
            broadcast=broadcast, seq=1, kind=Delivery.Kind.BROADCAST, key_created_at=now
        )
        broadcast.recipient_count = selectors.followers_active().count()
        broadcast.deliveries_total = 1
        return
    category_ids = list(broadcast.categories.values_list("id", flat=True))
    batch: list[Delivery] = []
    seq = recipients = 0
    for chunk in selectors.recipient_ids_stream(broadcast.audience, category_ids, MULTICAST_CHUNK):
        seq += 1
        recipients += len(chunk)
        batch.append(
            Delivery(
                broadcast=broadcast,
                seq=seq,
                kind=Delivery.Kind.MULTICAST,
                recipients=chunk,
                recipient_count=len(chunk),
                key_created_at=now,
            )
        )
        if len(batch) >= 20:
            Delivery.objects.bulk_create(batch)
            batch = []
    if batch:
        Delivery.objects.bulk_create(batch)
    broadcast.recipient_count = recipients
    broadcast.deliveries_total = seq


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


def _prepare(
    broadcast_id: int, now: dt.datetime, owner: str
) -> tuple[Broadcast | None, SendOutcome | None]:
    """Take the lease for the run ``owner``, re-check approval and window, create deliveries.
    One transaction. A lease held by another live run is left alone: one sender per send."""
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
        if broadcast.status != S.SENDING:
            return None, SendOutcome("skipped", f"status {broadcast.status}")
        if (
            broadcast.lease_owner not in ("", owner)
            and broadcast.lease_expires_at is not None
            and broadcast.lease_expires_at > now
        ):
            return None, SendOutcome("skipped", f"leased by {broadcast.lease_owner}")
        if not broadcast.approved_by_id or broadcast.approved_hash != compute_hash(broadcast):
            _stop(
                broadcast,
                "needs_attention",
                "承認された内容と現在の内容が一致しないため送信を止めました。",
            )
            return None, SendOutcome("needs_attention", "approval mismatch")
        if broadcast.is_drill and broadcast.audience != Broadcast.Audience.STAFF_TEST:
            _stop(broadcast, "needs_attention", "訓練は職員テスト受信者にしか送信できません。")
            return None, SendOutcome("needs_attention", "drill to citizens")
        if not broadcast.is_drill and has_drill_marker(broadcast.messages):
            _stop(broadcast, "needs_attention", "本番の配信に【訓練】の表示があるため止めました。")
            return None, SendOutcome("needs_attention", "drill marker on a live send")
        if broadcast.is_emergency and not _emergency_approved(broadcast):
            _stop(
                broadcast,
                "needs_attention",
                "承認者による緊急配信の承認記録がないため送信を止めました。",
            )
            return None, SendOutcome("needs_attention", "no emergency approval")
        started = broadcast.deliveries.filter(status=D.ACCEPTED).exists()
        if not started:
            hold = _window_check(broadcast, now, selectors.calendar_load(now=now))
            if hold is not None:
                _hold(broadcast, at=hold[0], reason=hold[1], from_sending=True)
                return None, SendOutcome("held", hold[1])
        if broadcast.deliveries_total == 0 and not broadcast.deliveries.exists():
            _create_deliveries(broadcast, now)
            if broadcast.deliveries_total == 0:
                broadcast.save(update_fields=["recipient_count", "deliveries_total"])
                _stop(broadcast, "needs_attention", "配信対象の友だちが0人のため送信できません。")
                return None, SendOutcome("needs_attention", "no recipients")
        broadcast.lease_owner = owner
        broadcast.lease_expires_at = now + _lease_seconds()
        broadcast.save(
            update_fields=[
                "recipient_count",
                "deliveries_total",
                "lease_owner",
                "lease_expires_at",
                "updated_at",
            ]
        )
        if not started:
            audit_record(
                verb="send_started",
                actor=None,
                broadcast=broadcast,
                from_status=S.SENDING,
                to_status=S.SENDING,
                data={
                    "deliveries": broadcast.deliveries_total,
                    "recipients": broadcast.recipient_count,
                    "worker": owner,
                },
            )
    return broadcast, None


def _quota(gateway: LineGateway) -> Quota:
    """The month's quota and consumption, read fresh for each send that starts: a reading
    shared for a few seconds let two sends starting together count the same messages."""
    return gateway.quota()


QUOTA_SETTLE = dt.timedelta(seconds=60)


def _pending_messages(broadcast_ids: list[int], totals: dict[int, int]) -> int:
    """Messages the given sends have reserved but LINE has not yet accepted (and so not yet
    counted in its consumption): pending multicast recipients, or the whole estimate of a
    broadcast-API send not yet accepted."""
    from django.db.models import Sum

    pending = 0
    rows = (
        Delivery.objects.filter(broadcast_id__in=broadcast_ids, status=D.PENDING)
        .values("broadcast_id", "kind")
        .annotate(n=Sum("recipient_count"))
    )
    for row in rows:
        if row["kind"] == Delivery.Kind.BROADCAST:
            pending += totals.get(row["broadcast_id"], 0)
        else:
            pending += row["n"] or 0
    return pending


def _reserve_quota(
    broadcast: Broadcast, gateway: LineGateway, now: dt.datetime
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
    the limit, which stops it as 要対応)."""
    if (
        broadcast.quota_reserved_at is not None
        or broadcast.deliveries.filter(status=D.ACCEPTED).exists()
    ):
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
    with transaction.atomic():
        in_progress = list(
            Broadcast.objects.select_for_update()
            .filter(status=S.SENDING)
            .order_by("pk")
            .values_list("pk", "quota_reserved_at", "recipient_count")
        )
        if quota.type == "limited" and quota.remaining is not None:
            totals = {pk: count or 0 for pk, _, count in in_progress}
            others = [pk for pk, reserved, _ in in_progress if reserved and pk != broadcast.pk]
            settling = list(
                Broadcast.objects.filter(status=S.SENT, sent_at__gte=now - QUOTA_SETTLE)
                .exclude(pk=broadcast.pk)
                .values_list("pk", "recipient_count")
            )
            reserved = _pending_messages(others, totals) + sum(c or 0 for _, c in settling)
            needed = _pending_messages(
                [broadcast.pk], {broadcast.pk: broadcast.recipient_count or 0}
            )
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
        Broadcast.objects.filter(pk=broadcast.pk).update(quota_reserved_at=now)
        broadcast.quota_reserved_at = now
    return None


def _call(
    gateway: LineGateway,
    broadcast: Broadcast,
    delivery: Delivery,
    limiter: RateLimiter | None = None,
) -> SendResult:
    """One LINE request (runs in a sending thread, so rate limiting waits here and not in
    the thread that records results)."""
    if limiter is not None:
        limiter.acquire()
    if delivery.kind == Delivery.Kind.BROADCAST:
        return gateway.broadcast(
            messages=broadcast.messages,
            retry_key=delivery.retry_key,
            notification_disabled=broadcast.notification_disabled,
        )
    return gateway.multicast(
        to=delivery.recipients,
        messages=broadcast.messages,
        retry_key=delivery.retry_key,
        notification_disabled=broadcast.notification_disabled,
    )


def _record_accepted(
    broadcast: Broadcast, delivery: Delivery, result: SendResult, now: dt.datetime
) -> int:
    """Mark one delivery accepted; returns 1 if it was pending (the caller counts them into
    the broadcast's progress once per batch)."""
    return Delivery.objects.filter(pk=delivery.pk, status=D.PENDING).update(
        status=D.ACCEPTED,
        request_id=result.request_id,
        http_status=result.http_status,
        accepted_at=now,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        last_error="",
    )


def _record_attempt(
    delivery: Delivery, exc: LineError, now: dt.datetime, status: str = D.PENDING
) -> None:
    Delivery.objects.filter(pk=delivery.pk, status=D.PENDING).update(
        status=status,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        http_status=exc.status,
        last_error=exc.describe()[:2000],
    )


@dataclass
class _Round:
    temporary: list[Delivery] = field(default_factory=list)
    rate_limited: bool = False
    stop: tuple[str, str] | None = None  # (action, message)


def _send_round(
    broadcast: Broadcast,
    deliveries: list[Delivery],
    gateway: LineGateway,
    now_fn: Callable[[], dt.datetime],
    pool: ThreadPoolExecutor,
    lost: threading.Event,
) -> _Round:
    outcome = _Round()
    limiter = RateLimiter("line-multicast", settings.MULTICAST_MAX_PER_SECOND)
    concurrency = max(settings.MULTICAST_CONCURRENCY, 1)
    queue = list(reversed(deliveries))
    in_flight: dict[Future[SendResult], Delivery] = {}
    while queue or in_flight:
        while queue and len(in_flight) < concurrency and outcome.stop is None:
            if lost.is_set():  # another run owns this send now: not one more request
                queue.clear()
                break
            delivery = queue.pop()
            now = now_fn()
            if now - delivery.key_created_at > RETRY_KEY_MAX_AGE:
                _record_attempt(
                    delivery,
                    LineError("再試行キーが23時間を超えたため自動では再送しません。"),
                    now,
                    D.NEEDS_ATTENTION,
                )
                outcome.stop = outcome.stop or (
                    "needs_attention",
                    "再試行キーの有効期限（24時間）が近いため、自動再送を止めました。LINE 側で受付済みか確認してください。",
                )
                continue
            rate = limiter if delivery.kind == Delivery.Kind.MULTICAST else None
            in_flight[pool.submit(_call, gateway, broadcast, delivery, rate)] = delivery
        if not in_flight:
            break
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        # Every reply that came in meanwhile is recorded in one transaction: one commit per
        # batch, not per chunk, keeps this (single) thread from capping the request rate.
        now = now_fn()
        with transaction.atomic():
            accepted = 0
            for future in done:
                delivery = in_flight.pop(future)
                try:
                    accepted += _record_accepted(broadcast, delivery, future.result(), now)
                except LineQuotaExceededError as exc:
                    _record_attempt(delivery, exc, now, D.NEEDS_ATTENTION)
                    outcome.stop = (
                        "needs_attention",
                        f"LINE の今月の配信上限に達しました。{exc.describe()}",
                    )
                except LineRateLimitedError as exc:
                    _record_attempt(delivery, exc, now)
                    outcome.temporary.append(delivery)
                    outcome.rate_limited = True
                except LineTemporaryError as exc:
                    _record_attempt(delivery, exc, now)
                    outcome.temporary.append(delivery)
                except LinePermanentError as exc:
                    _record_attempt(delivery, exc, now, D.FAILED)
                    action = "needs_attention" if exc.status in (401, 403) else "fail"
                    outcome.stop = outcome.stop or (
                        action,
                        f"LINE が送信を拒否しました: {exc.describe()}",
                    )
            if accepted:
                Broadcast.objects.filter(pk=broadcast.pk).update(
                    deliveries_accepted=F("deliveries_accepted") + accepted,
                    lease_expires_at=now + _lease_seconds(),
                )
        if outcome.stop is not None:
            queue.clear()
    return outcome


def broadcast_send(
    *,
    broadcast_id: int,
    owner: str = "",
    gateway: LineGateway | None = None,
    now_fn: Callable[[], dt.datetime] = timezone.now,
    sleep: Callable[[float], None] = time.sleep,
) -> SendOutcome:
    """Send every not-yet-accepted delivery of a claimed (SENDING) broadcast, as the send run
    ``owner`` (a new one if not given: see ``lease_owner_new``)."""
    owner = owner or lease_owner_new()
    broadcast, skipped = _prepare(broadcast_id, now_fn(), owner)
    if broadcast is None:
        return skipped or SendOutcome("skipped")
    keeper = LeaseKeeper(broadcast.pk, owner, now_fn)
    keeper.start()
    try:
        return _send_leased(broadcast, owner, gateway or get_gateway(), now_fn, sleep, keeper)
    finally:
        keeper.stop()


def _send_leased(
    broadcast: Broadcast,
    owner: str,
    gateway: LineGateway,
    now_fn: Callable[[], dt.datetime],
    sleep: Callable[[float], None],
    keeper: LeaseKeeper,
) -> SendOutcome:

    quota_problem = _reserve_quota(broadcast, gateway, now_fn())
    if quota_problem is not None:
        action, message = quota_problem
        with transaction.atomic():
            locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
            if action == "needs_attention":
                _stop(locked, action, message)
            else:
                _release_for_retry(locked, message, now_fn(), {})
        return SendOutcome(action, message)

    pending_ids = list(
        broadcast.deliveries.filter(status=D.PENDING).order_by("seq").values_list("id", flat=True)
    )
    # One pool of sending threads for the whole send (threads, and their connections to the
    # cache that rate-limits them, are not re-created for every window of chunks).
    pool = ThreadPoolExecutor(
        max_workers=max(settings.MULTICAST_CONCURRENCY, 1), thread_name_prefix="line-send"
    )
    try:
        stop, last_error = _send_all(
            broadcast, pending_ids, gateway, now_fn, sleep, pool, keeper.lost
        )
    finally:
        pool.shutdown(wait=True)
    if keeper.lost.is_set():
        return SendOutcome("skipped", "lease moved to another run")
    return _finish(broadcast.pk, stop, last_error, owner, now_fn())


def _send_all(
    broadcast: Broadcast,
    pending_ids: list[int],
    gateway: LineGateway,
    now_fn: Callable[[], dt.datetime],
    sleep: Callable[[float], None],
    pool: ThreadPoolExecutor,
    lost: threading.Event,
) -> tuple[tuple[str, str] | None, str]:
    stop: tuple[str, str] | None = None
    last_error = ""
    for attempt in range(len(INLINE_BACKOFF_SECONDS) + 1):
        retry: list[int] = []
        # Load recipients a window at a time: never all chunks in memory at once.
        for start in range(0, len(pending_ids), 50):
            window = list(
                Delivery.objects.filter(
                    pk__in=pending_ids[start : start + 50], status=D.PENDING
                ).order_by("seq")
            )
            outcome = _send_round(broadcast, window, gateway, now_fn, pool, lost)
            retry += [d.pk for d in outcome.temporary]
            if outcome.temporary:
                last_error = (
                    Delivery.objects.filter(pk=outcome.temporary[-1].pk)
                    .values_list("last_error", flat=True)
                    .first()
                    or ""
                )
            if outcome.stop is not None:
                stop = outcome.stop
                break
        if stop is not None or not retry or lost.is_set():
            break
        pending_ids = retry
        if attempt < len(INLINE_BACKOFF_SECONDS):
            sleep(INLINE_BACKOFF_SECONDS[attempt] * (4 if outcome.rate_limited else 1))
    return stop, last_error


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
    counts = {row["status"]: row["n"] for row in _delivery_counts(broadcast)}
    accepted = counts.get(D.ACCEPTED, 0)
    summary = {
        "accepted": accepted,
        "total": broadcast.deliveries_total,
        "request_ids": list(
            broadcast.deliveries.filter(status=D.ACCEPTED)
            .order_by("seq")
            .values_list("request_id", flat=True)[:20]
        ),
    }
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
        broadcast.sent_at = now
        broadcast.lease_owner = ""
        broadcast.lease_expires_at = None
        broadcast.last_error = ""
        transition(
            broadcast,
            "complete",
            actor=None,
            data=summary,
            fields=["sent_at", "lease_owner", "lease_expires_at", "last_error"],
        )
        logger.info(
            "broadcast %s sent: %s requests, %s recipients",
            broadcast.pk,
            accepted,
            broadcast.recipient_count,
        )
        return SendOutcome("sent")
    # Temporary failures left: release the lease so the dispatcher retries soon.
    message = f"一時的なエラーのため再試行します: {last_error}"
    _release_for_retry(broadcast, message, now, summary)
    return SendOutcome("retry_later", last_error)


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


def _delivery_counts(broadcast: Broadcast) -> Any:
    from django.db.models import Count

    return broadcast.deliveries.values("status").annotate(n=Count("id")).order_by()
