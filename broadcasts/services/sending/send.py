"""The sender: takes the lease, creates the deliveries (each with its retry key) and
sends them in rounds of concurrent requests, retrying temporary errors inline."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KT
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
from ...models import (
    Broadcast,
    BroadcastAudience,
    BroadcastEvent,
    BroadcastVariant,
    Delivery,
    User,
)
from ...selectors import audiences as audience_selectors
from .. import audiences
from ..audit import audit_record
from ..lifecycle import compute_hash
from ..scheduling import MULTICAST_CHUNK
from . import build as blocks
from .dispatch import (
    _claim_for,
    _emergency_approved,
    _hold,
    _resumed_record,
    _window_check,
)
from .finish import (
    SendOutcome,
    _complete_with_last_replies,
    _finish,
    _release_for_retry,
    _stop,
)
from .lease import LeaseKeeper, _lease_seconds, lease_owner_new
from .quota import _plan_known_unlimited, _reserve_quota

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
    if connection.vendor == "postgresql":
        seq, recipients = _create_deliveries_in_database(broadcast, category_ids, now)
    else:
        seq, recipients = _create_deliveries_streamed(broadcast, category_ids, now)
    broadcast.recipient_count = recipients
    broadcast.deliveries_total = seq


def _create_deliveries_streamed(
    broadcast: Broadcast, category_ids: list[int], now: dt.datetime
) -> tuple[int, int]:
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
        if len(batch) >= 100:
            Delivery.objects.bulk_create(batch)
            batch = []
    if batch:
        Delivery.objects.bulk_create(batch)
    return seq, recipients


def _create_deliveries_in_database(
    broadcast: Broadcast, category_ids: list[int], now: dt.datetime
) -> tuple[int, int]:
    """PostgreSQL: one ``INSERT … SELECT`` cuts the recipients (in ``id`` order, as the
    streamed build does) into chunks of 500 and writes one row per chunk with a new v4 retry
    key (``gen_random_uuid()``), without the IDs passing through Python (0.5 s → ~0.1 s for
    100,000). Its plan cannot be a nested loop: right after a bulk import of followers, before
    statistics exist, the planner takes the tables for a few hundred rows and picked a
    nested loop with a join filter over 100,000 × 100,000 rows."""
    recipients = selectors.followers_for_audience(broadcast.audience, category_ids).values(
        "id", "line_user_id"
    )
    inner, params = recipients.query.get_compiler(connection=connection).as_sql()
    table = Delivery._meta.db_table
    sql = f"""
        INSERT INTO {table} (broadcast_id, seq, kind, recipients, recipient_count, retry_key,
                             key_created_at, status, attempts, request_id, last_error,
                             language_code)
        SELECT %s, chunk + 1, %s, jsonb_agg(user_id ORDER BY n), count(*),
               gen_random_uuid(), %s, %s, 0, '', '', ''
        FROM (SELECT user_id, n, (n - 1) / %s AS chunk
              FROM (SELECT r.line_user_id AS user_id, row_number() OVER (ORDER BY r.id) AS n
                    FROM ({inner}) r) numbered) chunked
        GROUP BY chunk
        RETURNING recipient_count
    """  # noqa: S608 - our table name and the ORM's own SQL; values are parameters
    with connection.cursor() as cursor:
        blocks.execute_without_nested_loops(
            cursor,
            sql,
            [broadcast.pk, Delivery.Kind.MULTICAST, now, D.PENDING, MULTICAST_CHUNK, *params],
        )
        counts = [row[0] for row in cursor.fetchall()]
    return len(counts), sum(counts)


def _locked_for_send(broadcast_id: int) -> Broadcast | None:
    """The broadcast, locked, with what the send's checks need read by the same statement
    (one round trip instead of five while an emergency waits): whether it has deliveries
    and an accepted one, whether it has targeting rows, and its latest approval (actor,
    approved hash, the typed recipient count of an emergency).

    The annotations are read on the statement's snapshot: if the lock had to wait for
    another transaction, what that one wrote to other tables is not in them. So they are
    only trusted where the locked row itself says the same (see ``_prepare``).

    The statement is the ORM's (``_locked_query``), compiled once per process and database
    and then run with this id: compiling its eight subqueries took ~10 ms of CPU at every
    send, a fifth of a small send's, with fifty sends waiting at the window's opening.
    Annotation values come back as the database gives them (SQLite: 0/1 for the EXISTS);
    they are only ever tested for truth or compared as text."""
    key = connection.vendor
    compiled = _LOCKED_SQL.get(key)
    if compiled is None:
        sql, params = _locked_query(_ID_MARKER).query.sql_with_params()
        at = [i for i, value in enumerate(params) if value == _ID_MARKER]
        if len(at) != 1:  # pragma: no cover - the query names the id once
            raise RuntimeError(f"the locked read names the broadcast id {len(at)} times")
        compiled = _LOCKED_SQL[key] = (sql, tuple(params), at[0])
    sql, params, at = compiled
    values = list(params)
    values[at] = broadcast_id
    return next(iter(Broadcast.objects.raw(sql, values)), None)


# See ``_locked_for_send``: vendor -> (SQL, parameters, index of the broadcast id in them).
_LOCKED_SQL: dict[str, tuple[str, tuple[Any, ...], int]] = {}
_ID_MARKER = -7_204_519_331  # a broadcast id no row has, to find where the id goes


def _locked_query(broadcast_id: int) -> Any:
    deliveries = Delivery.objects.filter(broadcast=OuterRef("pk"))
    approval = BroadcastEvent.objects.filter(broadcast=OuterRef("pk"), verb="approve").order_by(
        "-created_at", "-id"
    )
    return (
        Broadcast.objects.select_for_update()
        .annotate(
            has_deliveries=Exists(deliveries),
            has_accepted=Exists(deliveries.filter(status=D.ACCEPTED)),
            has_audience_rows=Exists(BroadcastAudience.objects.filter(broadcast=OuterRef("pk"))),
            has_variants=Exists(BroadcastVariant.objects.filter(broadcast=OuterRef("pk"))),
            approval_actor_id=Subquery(approval.values("actor_id")[:1]),
            approval_hash=Subquery(
                approval.annotate(value=KT("data__approved_hash")).values("value")[:1]
            ),
            approval_count=Subquery(
                approval.annotate(value=KT("data__recipient_count")).values("value")[:1]
            ),
            approval_actor_may=Exists(
                _emergency_approvers().filter(pk=OuterRef("approval_actor_id"))
            ),
        )
        .filter(pk=broadcast_id)[:1]
    )


def _emergency_approval_ok(broadcast: Broadcast) -> bool:
    """``_emergency_approved`` from the approval read with the lock; if that reading says no
    (it may predate a transaction the lock waited for), the fresh check decides."""
    actor_id = getattr(broadcast, "approval_actor_id", None)
    if (
        broadcast.approved_by_id
        and broadcast.approved_by_id != broadcast.author_id
        and actor_id is not None
        and actor_id != broadcast.author_id
        and getattr(broadcast, "approval_hash", None) == broadcast.approved_hash
        and getattr(broadcast, "approval_actor_may", False)
    ):
        return True
    return _emergency_approved(broadcast)


def _emergency_approvers() -> Any:
    """Active users holding ``approve_emergency_broadcast`` as ``ModelBackend`` grants it
    (superuser, own permission or a group's), for the locked read. Only ever a shortcut to
    yes: when it says no, ``_emergency_approved`` asks ``has_perm`` itself."""
    perm = Permission.objects.filter(
        codename="approve_emergency_broadcast", content_type__app_label="broadcasts"
    )
    return User.objects.filter(is_active=True).filter(
        Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm)
    )


def _typed_count(broadcast: Broadcast) -> int | None:
    """The recipient count the approving supervisor typed (recorded on the approval's audit
    row, checked against our follower table then) — for an all-friends emergency without
    targeting, the figure the send records instead of counting 100,000 followers again."""
    value = getattr(broadcast, "approval_count", None)
    if (
        not broadcast.is_emergency
        or broadcast.audience != Broadcast.Audience.ALL
        or getattr(broadcast, "has_audience_rows", True)
        or getattr(broadcast, "has_variants", True)
        or getattr(broadcast, "approval_hash", None) != broadcast.approved_hash
    ):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _prepare(
    broadcast_id: int, now: dt.datetime, owner: str, *, claim: bool = False
) -> tuple[Broadcast | None, SendOutcome | None]:
    """Take the lease for the run ``owner``, re-check approval and window, create deliveries.
    One transaction. A lease held by another live run is left alone: one sender per send.

    ``claim`` (the emergency task): a due SCHEDULED broadcast is claimed in this same
    transaction, so the emergency pays for one lock and one commit, not two."""
    with transaction.atomic():
        broadcast = _locked_for_send(broadcast_id)
        if broadcast is None:
            return None, SendOutcome("skipped", "no such broadcast")
        if claim and broadcast.status == S.SCHEDULED:
            if broadcast.scheduled_for is None or broadcast.scheduled_for > now:
                return None, SendOutcome("skipped", "not due")
            _claim_for(broadcast, now, owner)
        if broadcast.status != S.SENDING:
            return None, SendOutcome("skipped", f"status {broadcast.status}")
        if (
            broadcast.lease_owner not in ("", owner)
            and broadcast.lease_expires_at is not None
            and broadcast.lease_expires_at > now
        ):
            return None, SendOutcome("skipped", f"leased by {broadcast.lease_owner}")
        # A run that died (its lease expired) and a task still queued for this send takes
        # over here, without the dispatcher's resume: the audit trail says so all the same.
        previous_owner = broadcast.lease_owner if broadcast.lease_owner not in ("", owner) else ""
        has_targeting = bool(broadcast.has_audience_rows or broadcast.has_variants)
        codes = [code for _pk, code, _bit in audience_selectors.categories_read(broadcast)]
        if not broadcast.approved_by_id or broadcast.approved_hash != compute_hash(
            broadcast, codes, has_targeting=has_targeting
        ):
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
        if broadcast.is_emergency and not _emergency_approval_ok(broadcast):
            _stop(
                broadcast,
                "needs_attention",
                "承認者による緊急配信の承認記録がないため送信を止めました。",
            )
            return None, SendOutcome("needs_attention", "no emergency approval")
        started = _already_started(broadcast)
        if not started and not broadcast.is_emergency:  # emergencies go at any hour
            hold = _window_check(broadcast, now, selectors.calendar_load(now=now))
            if hold is not None:
                _hold(broadcast, at=hold[0], reason=hold[1], from_sending=True)
                return None, SendOutcome("held", hold[1])
        if broadcast.deliveries_total == 0 and not broadcast.has_deliveries:
            typed = _typed_count(broadcast)
            if typed is not None:
                _create_broadcast_delivery(broadcast, now, typed)
                empty = broadcast.deliveries_total == 0
            elif blocks.builds_in_blocks(broadcast):
                # The first block now, so that the first request leaves at once; the
                # sending process's builder adds the rest (build.py).
                complete = blocks.deliveries_build_block(
                    broadcast, now=now, limit=blocks.first_block(), save_totals=False
                )
                empty = complete and broadcast.deliveries_total == 0
                if not empty and audiences.broadcast_is_targeted(broadcast):
                    audiences.aggregation_unit_assign(broadcast=broadcast, now=now)
            else:
                _create_deliveries(broadcast, now)
                empty = broadcast.deliveries_total == 0
            if empty:
                broadcast.save(update_fields=["recipient_count", "deliveries_total"])
                _stop(broadcast, "needs_attention", "配信対象の友だちが0人のため送信できません。")
                return None, SendOutcome("needs_attention", "no recipients")
        broadcast.lease_owner = owner
        broadcast.lease_expires_at = now + _lease_seconds()
        fields = ["recipient_count", "deliveries_total", "lease_owner", "lease_expires_at"]
        if not started and broadcast.quota_reserved_at is None and _plan_known_unlimited():
            # No monthly limit: nothing to share out, so the reservation is this mark, made
            # with the lease instead of one more commit (quota._reserve_quota).
            broadcast.quota_reserved_at = now
            fields.append("quota_reserved_at")
        broadcast.save(update_fields=[*fields, "updated_at"])
        if previous_owner:
            _resumed_record(broadcast, previous_owner, owner)
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


def _already_started(broadcast: Broadcast) -> bool:
    """Whether LINE accepted a request of the send before this run (read by ``_prepare``'s
    locked read: every acceptance also counts into the row's ``deliveries_accepted``)."""
    return broadcast.deliveries_accepted > 0 or bool(getattr(broadcast, "has_accepted", False))


@dataclass
class _Run:
    """One run of a send, as ``broadcast_send`` set it up after ``_prepare``: the broadcast,
    who this run is, whether the send had begun before it, and what the run was handed."""

    broadcast: Broadcast
    owner: str
    started: bool  # LINE accepted a request of this send before this run (``_already_started``)
    gateway: LineGateway
    now_fn: Callable[[], dt.datetime]
    sleep: Callable[[float], None]
    lost: threading.Event  # set once the lease moved to another run: not one more request
    mark: Callable[[str], None] | None = None

    def note(self, step: str) -> None:
        """Tell ``mark`` the run passed ``step`` (the emergency task logs where time went)."""
        if self.mark is not None:
            self.mark(step)


def _create_broadcast_delivery(broadcast: Broadcast, now: dt.datetime, recipients: int) -> None:
    """An all-friends emergency: its one broadcast-API request, and as its recipient count
    the count the supervisor typed (our follower table's, checked at approval moments ago)."""
    Delivery.objects.create(
        broadcast=broadcast, seq=1, kind=Delivery.Kind.BROADCAST, key_created_at=now
    )
    broadcast.recipient_count = recipients
    broadcast.deliveries_total = 1


def _call(
    gateway: LineGateway,
    broadcast: Broadcast,
    delivery: Delivery,
    limiter: RateLimiter | None = None,
) -> SendResult:
    """One LINE request (runs in a sending thread, so rate limiting waits here and not in
    the thread that records results). A multicast waits for ``limiter`` inside the gateway,
    just before the request leaves (``pace``), so that what the limiter spaced is what LINE
    receives."""
    if delivery.kind == Delivery.Kind.BROADCAST:
        return gateway.broadcast(
            messages=broadcast.messages,
            retry_key=delivery.retry_key,
            notification_disabled=broadcast.notification_disabled,
        )
    unit = audiences.delivery_aggregation_unit(broadcast)
    request = {
        "to": delivery.recipients,
        "messages": audiences.delivery_messages(broadcast, delivery),
        "retry_key": delivery.retry_key,
        "notification_disabled": broadcast.notification_disabled,
        "pace": limiter.acquire if limiter is not None else None,
    }
    try:
        return gateway.multicast(**request, aggregation_unit=unit)
    except LinePermanentError as exc:
        if not unit or not audiences.aggregation_unit_refused(exc):
            raise
        # LINE refused the statistics key, not the message: this request was not accepted,
        # so it goes once more with the same retry key and without the unit; the send's
        # next requests go without it too, and the refusal is recorded by the recording
        # thread (``_send_round``).
        audiences.aggregation_unit_drop(broadcast, exc)
        return gateway.multicast(**request, aggregation_unit="")


def _record_accepted(
    broadcast: Broadcast, accepted: list[tuple[Delivery, SendResult]], now: dt.datetime
) -> int:
    """Mark the deliveries LINE accepted in one batch with one ``UPDATE … FROM``
    (the ORM's ``Case``/``When`` for the same cost more CPU than the request it records);
    returns how many were still pending (the caller counts them into the broadcast's
    progress)."""
    if not accepted:
        return 0
    table = Delivery._meta.db_table
    # (SELECT … UNION ALL SELECT …), not VALUES: SQLite cannot name a VALUES list's columns.
    rows = " UNION ALL ".join(
        ["SELECT %s AS id, %s AS request_id, %s AS http_status"] * len(accepted)
    )
    sql = f"""
        UPDATE {table} SET status = %s, request_id = v.request_id, http_status = v.http_status,
               accepted_at = %s, attempts = attempts + 1, last_attempt_at = %s, last_error = ''
        FROM ({rows}) AS v
        WHERE {table}.id = v.id AND {table}.status = %s
    """  # noqa: S608 - our table name; every value is a parameter
    params: list[Any] = [D.ACCEPTED, now, now]
    for delivery, result in accepted:
        params += [delivery.pk, result.request_id, result.http_status]
    params.append(D.PENDING)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


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
    # (seq, request ID) of every request this round recorded as newly accepted.
    accepted: list[tuple[int, str]] = field(default_factory=list)
    completed: bool = False  # the last replies made the send SENT (finish._complete_with_…)


def _send_round(
    run: _Run, deliveries: Iterator[Delivery], pool: ThreadPoolExecutor, *, first: bool = True
) -> _Round:
    """Send the given deliveries, ``MULTICAST_CONCURRENCY`` requests in flight. The requests
    wait for the rate limiter in the sending threads; this thread tops the requests in flight
    up as soon as replies come in and only then records the replies (one transaction, one
    statement for the accepted ones), so the database's round trips overlap the next
    requests instead of holding them back. A crash between LINE's answer and the commit
    leaves those deliveries pending: their retry gets LINE's 409 and counts them accepted.

    In the ``first`` round of a run that started the send, when the last replies make every
    request accepted, the send is completed in the transaction that records them
    (``_complete_with_last_replies``) and the round says ``completed``."""
    broadcast, gateway, now_fn = run.broadcast, run.gateway, run.now_fn
    outcome = _Round()
    # Whether every request of the send is this round's: a run that started the send, its
    # first round (later rounds only retry), and no row already accepted by another run.
    all_ours = first and not run.started
    limiter = RateLimiter("line-multicast", settings.MULTICAST_MAX_PER_SECOND)
    concurrency = max(settings.MULTICAST_CONCURRENCY, 1)
    in_flight: dict[Future[SendResult], Delivery] = {}
    exhausted = False

    def top_up() -> None:
        nonlocal exhausted
        while not exhausted and len(in_flight) < concurrency and outcome.stop is None:
            if run.lost.is_set():  # another run owns this send now: not one more request
                exhausted = True
                return
            delivery = next(deliveries, None)
            if delivery is None:
                exhausted = True
                return
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

    top_up()
    while in_flight:
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        now = now_fn()
        accepted: list[tuple[Delivery, SendResult]] = []
        attempts: list[tuple[Delivery, LineError, str]] = []
        for future in done:
            delivery = in_flight.pop(future)
            try:
                accepted.append((delivery, future.result()))
            except LineQuotaExceededError as exc:
                attempts.append((delivery, exc, D.NEEDS_ATTENTION))
                outcome.stop = (
                    "needs_attention",
                    f"LINE の今月の配信上限に達しました。{exc.describe()}",
                )
            except LineRateLimitedError as exc:
                attempts.append((delivery, exc, D.PENDING))
                outcome.temporary.append(delivery)
                outcome.rate_limited = True
            except LineTemporaryError as exc:
                attempts.append((delivery, exc, D.PENDING))
                outcome.temporary.append(delivery)
            except LinePermanentError as exc:
                attempts.append((delivery, exc, D.FAILED))
                action = "needs_attention" if exc.status in (401, 403) else "fail"
                outcome.stop = outcome.stop or (
                    action,
                    f"LINE が送信を拒否しました: {exc.describe()}",
                )
        top_up()  # the next requests leave before this batch is written
        with transaction.atomic():
            audiences.aggregation_unit_drop_record(broadcast, now=now)
            count = _record_accepted(broadcast, accepted, now)
            for delivery, exc, status in attempts:
                _record_attempt(delivery, exc, now, status)
            if count == len(accepted):
                outcome.accepted += [(d.seq, result.request_id) for d, result in accepted]
            else:  # some were accepted before (by another run): not every request is ours
                all_ours = False
            completes = (
                all_ours
                and not in_flight
                and not attempts
                and outcome.stop is None
                and not outcome.temporary
                and len(outcome.accepted) == broadcast.deliveries_total
            )
            if count and completes:
                request_ids = [request_id for _seq, request_id in sorted(outcome.accepted)]
                outcome.completed = _complete_with_last_replies(
                    broadcast, run.owner, count, request_ids, now
                )
            if count and not outcome.completed:
                Broadcast.objects.filter(pk=broadcast.pk).update(
                    deliveries_accepted=F("deliveries_accepted") + count,
                    lease_expires_at=now + _lease_seconds(),
                )
    return outcome


def _pending(pending_ids: list[int], window: int = 100) -> Iterator[Delivery]:
    """The pending deliveries among ``pending_ids``, loaded a window at a time as the sender
    needs them: never every chunk's recipients in memory at once. The first window is just
    enough to fill the sending threads, so that the first request leaves sooner."""
    first = max(settings.MULTICAST_CONCURRENCY, 1)
    bounds = [0, *range(first, len(pending_ids), window), len(pending_ids)]
    for start, end in itertools.pairwise(bounds):
        if start < end:
            yield from Delivery.objects.filter(
                pk__in=pending_ids[start:end], status=D.PENDING
            ).order_by("seq")


def broadcast_send(
    *,
    broadcast_id: int,
    owner: str = "",
    gateway: LineGateway | None = None,
    now_fn: Callable[[], dt.datetime] = timezone.now,
    sleep: Callable[[float], None] = time.sleep,
    claim: bool = False,
    mark: Callable[[str], None] | None = None,
) -> SendOutcome:
    """Send every not-yet-accepted delivery of a claimed (SENDING) broadcast, as the send run
    ``owner`` (a new one if not given: see ``lease_owner_new``).

    ``claim``: also claim a due SCHEDULED broadcast, in the same transaction as the send's
    preparation (the emergency task: no dispatcher wait, one commit). ``mark``: told
    ``"prepared"`` and ``"calling"`` as the send passes those points (the emergency task
    logs where the time went)."""
    owner = owner or lease_owner_new()
    broadcast, skipped = _prepare(broadcast_id, now_fn(), owner, claim=claim)
    if broadcast is None:
        return skipped or SendOutcome("skipped")
    keeper = LeaseKeeper(broadcast.pk, owner, now_fn)
    run = _Run(
        broadcast=broadcast,
        owner=owner,
        started=_already_started(broadcast),
        gateway=gateway or get_gateway(),
        now_fn=now_fn,
        sleep=sleep,
        lost=keeper.lost,
        mark=mark,
    )
    run.note("prepared")
    keeper.start()
    try:
        return _send_leased(run)
    finally:
        keeper.stop()


def _send_leased(run: _Run) -> SendOutcome:
    builder = blocks.DeliveryBuilder(run.broadcast, run.owner, run.now_fn, run.lost)
    builder.start()
    try:
        return _send_built(run, builder)
    finally:
        builder.stop()


def _send_built(run: _Run, builder: blocks.DeliveryBuilder) -> SendOutcome:
    broadcast, owner, now_fn = run.broadcast, run.owner, run.now_fn
    quota_problem = _reserve_quota(
        broadcast, run.gateway, now_fn(), builder.wait_complete, started=run.started
    )
    if run.lost.is_set():  # (e.g. while the quota waited for the build): not ours to release
        return SendOutcome("skipped", "lease moved to another run")
    if quota_problem is not None:
        action, message = quota_problem
        with transaction.atomic():
            locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
            if locked.status != S.SENDING or locked.lease_owner != owner:
                return SendOutcome("skipped", f"leased by {locked.lease_owner or 'nobody'}")
            if action == "needs_attention":
                _stop(locked, action, message)
            else:
                _release_for_retry(locked, message, now_fn(), {})
        return SendOutcome(action, message)

    audiences.sending_prepare(broadcast)  # language versions and unit, read before the threads
    # One pool of sending threads for the whole send (threads, and their connections to the
    # cache that rate-limits them, are not re-created for every window of chunks).
    pool = ThreadPoolExecutor(
        max_workers=max(settings.MULTICAST_CONCURRENCY, 1), thread_name_prefix="line-send"
    )
    run.note("calling")
    try:
        stop, last_error, completed = _send_all(run, builder, pool)
    finally:
        pool.shutdown(wait=True)
    builder.stop()  # stopped early (要対応, lease lost): not one more row
    if completed:  # SENT with its last replies (the lease keeper may have seen it let go)
        return SendOutcome("sent")
    if run.lost.is_set():
        return SendOutcome("skipped", "lease moved to another run")
    return _finish(broadcast.pk, stop, last_error, owner, now_fn())


def _send_all(
    run: _Run, builder: blocks.DeliveryBuilder, pool: ThreadPoolExecutor
) -> tuple[tuple[str, str] | None, str, bool]:
    """Send every pending request, retrying temporary errors inline. Returns the stop (if
    any), the last temporary error, and whether the last replies already completed the send
    (``_send_round``)."""
    stop: tuple[str, str] | None = None
    last_error = ""
    # The first round takes the rows in order as they are built; later rounds only the ones
    # that met a temporary error.
    deliveries: Iterator[Delivery] = blocks.pending_in_order(run.broadcast, builder)
    for attempt in range(len(INLINE_BACKOFF_SECONDS) + 1):
        outcome = _send_round(run, deliveries, pool, first=attempt == 0)
        if outcome.completed:
            return None, "", True
        retry = [d.pk for d in outcome.temporary]
        if outcome.temporary:
            last_error = (
                Delivery.objects.filter(pk=outcome.temporary[-1].pk)
                .values_list("last_error", flat=True)
                .first()
                or ""
            )
        if outcome.stop is not None:
            stop = outcome.stop
        if stop is not None or not retry or run.lost.is_set():
            break
        deliveries = _pending(retry)
        if attempt < len(INLINE_BACKOFF_SECONDS):
            run.sleep(INLINE_BACKOFF_SECONDS[attempt] * (4 if outcome.rate_limited else 1))
    return stop, last_error, False
