"""The sender: takes the lease, creates the deliveries (each with its retry key) and
sends them in rounds of concurrent requests, retrying temporary errors inline."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ... import selectors
from ...content import has_drill_marker
from ...line.errors import (
    LineError,
    LinePermanentError,
    LineQuotaExceededError,
    LineRateLimitedError,
    LineTemporaryError,
)
from ...line.gateway import LineGateway, SendResult, get_gateway
from ...line.ratelimit import RateLimiter
from ...models import Broadcast, Delivery
from .. import audiences
from ..audit import audit_record
from ..lifecycle import compute_hash
from ..scheduling import MULTICAST_CHUNK
from .dispatch import _emergency_approved, _hold, _window_check
from .finish import SendOutcome, _finish, _release_for_retry, _stop
from .lease import LeaseKeeper, _lease_seconds, lease_owner_new
from .quota import _reserve_quota

logger = logging.getLogger(__name__)

S = Broadcast.Status
D = Delivery.Status
# LINE keeps a retry key for 24 hours; past 23 we no longer trust it to deduplicate.
RETRY_KEY_MAX_AGE = dt.timedelta(hours=23)
INLINE_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)


def _create_deliveries(broadcast: Broadcast, now: dt.datetime) -> None:
    """All LINE requests of this send, committed before the first call. Their retry keys are
    made ``now``, on the clock their age is later measured with (``RETRY_KEY_MAX_AGE``)."""
    if audiences.broadcast_is_targeted(broadcast):
        # Categories × areas × age groups × language, one language version per request.
        audiences.deliveries_create(broadcast, now=now, chunk_size=MULTICAST_CHUNK)
        return
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
        messages=audiences.delivery_messages(broadcast, delivery),
        retry_key=delivery.retry_key,
        notification_disabled=broadcast.notification_disabled,
        aggregation_unit=audiences.delivery_aggregation_unit(broadcast),
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
    audiences.sending_prepare(broadcast)  # language versions and unit, read before the threads
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
