"""Webhook events: stored as they arrive, then claimed and processed in batches by
the citizens tasks; purged after ``RETENTION``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Func, JSONField, Q
from django.db.models.functions import Mod, Ord, Right
from django.utils import timezone

from kashiwa import cache as shared

from ... import citizen_defaults
from ...line.gateway import get_gateway
from ...models import (
    Category,
    StandardReply,
    WebhookEvent,
)
from .. import enqueue, moderation, notifications, replies
from ..audit import audit_record
from .followers import (
    follower_ensure,
    follower_follow,
    follower_unfollow,
    followers_follow,
    postback_handle,
    subscription_menu_messages,
)
from .responses import auto_reply_messages, normalize, standard_reply_messages

logger = logging.getLogger(__name__)

#: a claim older than this is taken to belong to a worker that died
STALE_CLAIM = dt.timedelta(minutes=5)
#: events not picked up this long after arrival are re-enqueued by the sweeper
PENDING_GRACE = dt.timedelta(seconds=30)
#: processed events are kept this long for troubleshooting, then deleted
RETENTION = dt.timedelta(days=30)


def _sanitize(event: dict[str, Any]) -> dict[str, Any]:
    """What processing needs from an event, nothing more (policy 10)."""
    kept: dict[str, Any] = {
        key: event[key] for key in ("type", "timestamp", "mode", "replyToken") if key in event
    }
    message = event.get("message")
    if isinstance(message, dict):
        kept["message"] = {"type": message.get("type"), "id": message.get("id")}
        if message.get("type") == "text":
            kept["message"]["text"] = str(message.get("text", ""))[:5000]
    postback = event.get("postback")
    if isinstance(postback, dict):
        kept["postback"] = {"data": str(postback.get("data", ""))[:300]}
    follow = event.get("follow")
    if isinstance(follow, dict):
        kept["follow"] = {"isUnblocked": bool(follow.get("isUnblocked"))}
    return kept


def _user_id(event: dict[str, Any]) -> str:
    source = event.get("source")
    return str(source.get("userId", ""))[:64] if isinstance(source, dict) else ""


def webhook_events_store(*, payload: Any) -> list[str]:
    """Store the events of one webhook request (insert-or-ignore on ``webhookEventId``) and
    enqueue their processing once the rows are committed. Returns the stored event IDs.

    A body that is not LINE's shape is logged and ignored: the webhook still answers 200."""
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        logger.warning("webhook body without an events list ignored")
        return []
    now = timezone.now()
    rows = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("webhookEventId"), str):
            logger.warning("webhook event without webhookEventId ignored")
            continue
        context = event.get("deliveryContext")
        rows.append(
            WebhookEvent(
                webhook_event_id=event["webhookEventId"][:64],
                event_type=str(event.get("type", ""))[:40],
                line_user_id=_user_id(event),
                payload=_sanitize(event),
                is_redelivery=bool(isinstance(context, dict) and context.get("isRedelivery")),
                received_at=now,
            )
        )
    if not rows:
        return []
    ids = [row.webhook_event_id for row in rows]
    streams = {stream_of(row.line_user_id) for row in rows}
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        _insert_postgresql(rows, now)
        _enqueue(ids, streams)  # committed: the statement was its own transaction
        return ids
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        WebhookEvent.objects.bulk_create(rows, ignore_conflicts=True)
        transaction.on_commit(lambda: _enqueue(ids, streams))
    return ids


def _insert_postgresql(rows: list[WebhookEvent], now: dt.datetime) -> None:
    """The events of one request in one statement, its own transaction: one round trip to
    the database, the acknowledgement LINE waits for.

    The acknowledgement need not wait for the WAL flush either (``synchronous_commit`` off
    for this transaction only, set inside the statement): a database crash could lose the
    last fraction of a second of auto-reply triggers, never corrupt anything. Everything else
    in the app commits synchronously.

    Django's health check of a reused connection (a ``SELECT 1`` before the first query of
    each request) is skipped: a connection found broken is closed and the statement sent
    once more on a new one, which an insert-or-ignore allows. A second failure propagates
    (the webhook answers 500 and LINE redelivers): no event is lost either way."""
    table = WebhookEvent._meta.db_table
    sql = (
        f"INSERT INTO {table} (webhook_event_id, event_type, line_user_id, payload, "  # noqa: S608 - our table name
        "is_redelivery, received_at, processing_started_at, processed_at, error) "
        "SELECT e.id, e.type, e.user_id, e.payload, e.redelivery, %s, NULL, NULL, '' "
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async, "
        "jsonb_to_recordset(%s::jsonb) AS e(id text, type text, user_id text, payload jsonb, "
        "redelivery boolean) ON CONFLICT (webhook_event_id) DO NOTHING"
    )
    data = json.dumps(
        [
            {
                "id": row.webhook_event_id,
                "type": row.event_type,
                "user_id": row.line_user_id,
                "payload": row.payload,
                "redelivery": row.is_redelivery,
            }
            for row in rows
        ],
        ensure_ascii=False,
    )
    for attempt in (1, 2):
        connection.health_check_done = True  # see above: the retry stands in for it
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, [now, data])
            return
        except (OperationalError, InterfaceError):
            if attempt == 2:
                raise
            logger.warning("database connection broken; storing the webhook events again")
            with contextlib.suppress(Exception):
                connection.close()


# Events are split into ``settings.WEBHOOK_STREAMS`` streams by citizen (``stream_of``), so a
# citizen's events stay in order while the streams are processed in parallel. One processor at
# a time takes a stream's new events (``PROCESSOR_KEY``:stream, a lease renewed every batch),
# and it keeps taking them until there are none. The webhook wakes it through ``WAKE_KEY``:
# stream: a request enqueues a processing task only if no wake-up is pending, so a burst of N
# acknowledgements enqueues a handful of tasks, not N. Both live where every process sees them
# (Redis, or the embedded default's shared cache: kashiwa/cache.py); without coalescing
# (settings.WEBHOOK_COALESCE_WAKEUPS off) every request enqueues its own task.
WAKE_KEY = "webhook:processor-awake"
WAKE_SECONDS = 10
PROCESSOR_KEY = "webhook:processor"
#: how long a processor waits for more events before claiming a batch that is not full, and
#: before leaving when it finds none
GATHER_SECONDS = 0.1


def stream_of(line_user_id: str) -> int:
    """The stream of a citizen's events (``_stream_expression`` in the database)."""
    return ord(line_user_id[-1]) % settings.WEBHOOK_STREAMS if line_user_id else 0


def _stream_expression() -> Mod:
    return Mod(Ord(Right("line_user_id", 1)), settings.WEBHOOK_STREAMS)


def _in_stream(queryset: Any, stream: int) -> Any:
    if settings.WEBHOOK_STREAMS == 1:
        return queryset
    return queryset.annotate(stream=_stream_expression()).filter(stream=stream)


def _enqueue(webhook_event_ids: list[str], streams: set[int] | None = None) -> None:
    """Fire and forget. If the broker is down the rows wait for the sweeper."""
    try:
        if not settings.WEBHOOK_COALESCE_WAKEUPS:
            enqueue.task_send(
                enqueue.PROCESS_WEBHOOK_EVENTS, args=[webhook_event_ids], ignore_result=True
            )
            return
        for stream in sorted(streams or {0}):
            if shared.flag_add(f"{WAKE_KEY}:{stream}", "1", WAKE_SECONDS):
                enqueue.task_send(
                    enqueue.PROCESS_NEW_WEBHOOK_EVENTS, args=[stream], ignore_result=True
                )
            # else: the stream's processor is queued or running and will see these rows.
    except Exception:
        # The broker or the cache is down (or both). The events are stored: the sweeper
        # processes them later, and LINE must get its 200 (a 500 makes it redeliver). Even
        # clearing the wake flag may fail when the cache is what is down.
        logger.exception("could not enqueue webhook events %s; the sweeper will", webhook_event_ids)
        for stream in streams or {0}:
            with contextlib.suppress(Exception):
                shared.flag_delete(f"{WAKE_KEY}:{stream}")


def webhook_events_wake_all(*, now_fn: Callable[[], dt.datetime] | None = None) -> int:
    """The sweeper: with one stream, its processor here and now (events processed); with
    several, a processor woken for each (0: they run on the worker's other processes)."""
    if settings.WEBHOOK_STREAMS == 1:
        return webhook_events_process_new(stream=0, now_fn=now_fn)
    for stream in range(settings.WEBHOOK_STREAMS):
        enqueue.task_send(enqueue.PROCESS_NEW_WEBHOOK_EVENTS, args=[stream], ignore_result=True)
    return 0


def webhook_events_process_new(
    *,
    stream: int = 0,
    batch: int = 100,
    max_rounds: int = 400,
    gather: float = GATHER_SECONDS,
    now_fn: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Process every new event of ``stream``, until there are none: the one processor of
    that stream (returns 0 at once if another holds the lease; that one looks again before
    it leaves).

    Taking the lease it first takes back the events a processor that died had claimed and not
    finished (only the lease's holder claims, so any such claim is a dead one's; the state of
    a batch is committed in one transaction, so a dead one's batch is done again whole, and a
    reply it may have sent is refused by LINE, which accepts a reply token once). Events whose
    processing failed wait ``STALE_CLAIM`` before they are tried again.

    Leaving, once every reply it sent has been answered and recorded (a processor taking the
    lease takes back what is claimed and unfinished), it releases the lease, clears the wake
    flag and looks once more: an event committed while the flag was still set (its request
    did not enqueue) is committed before that last look, and one committed after it finds the
    flag clear and wakes a processor."""
    now_fn = now_fn or timezone.now
    owner = uuid.uuid4().hex
    lease = settings.WEBHOOK_PROCESSOR_LEASE_SECONDS
    lease_key, wake_key = f"{PROCESSOR_KEY}:{stream}", f"{WAKE_KEY}:{stream}"
    if not shared.flag_add(lease_key, owner, lease):
        return 0
    _reclaim_orphans(now_fn(), stream)
    holding = True
    stop = threading.Event()

    def heartbeat() -> None:
        # The lease is renewed while this process lives, also while it waits for LINE's
        # answers (a slow LINE holds a batch up to a token's lifetime): only a processor that
        # died loses it.
        while not stop.wait(lease / 3):
            if holding:
                with contextlib.suppress(Exception):
                    shared.flag_renew(lease_key, owner, lease)

    def claim(now: dt.datetime) -> list[WebhookEvent]:
        nonlocal holding
        if not holding or not shared.flag_renew(lease_key, owner, lease):
            holding = False
            logger.warning("webhook processor lost its lease; leaving to the next one")
            return []
        events = _claim_batch(limit=batch, now=now, stream=stream)
        if len(events) < batch // 4 and gather > 0:
            sleep(gather)  # a fuller batch: fewer, larger transactions under load
            events += _claim_batch(limit=batch - len(events), now=now_fn(), stream=stream)
        return events

    threading.Thread(target=heartbeat, name="webhook-lease", daemon=True).start()
    processed = 0
    more = False
    try:
        while True:
            # returns once every reply it sent has been answered and recorded
            done, more = _process_claimed(
                claim, batch=batch, max_rounds=max_rounds, now_fn=now_fn, sleep=sleep
            )
            processed += done
            if more or not holding:
                break
            shared.flag_release(lease_key, owner)
            holding = False
            shared.flag_delete(wake_key)
            if not (_unclaimed_exists(stream) and shared.flag_add(lease_key, owner, lease)):
                break
            holding = True  # committed while the flag was still set: ours after all
    finally:
        stop.set()
        if holding:
            with contextlib.suppress(Exception):
                shared.flag_release(lease_key, owner)
    if more:
        # Still more after many rounds: hand over to a fresh task rather than run forever.
        enqueue.task_send(enqueue.PROCESS_NEW_WEBHOOK_EVENTS, args=[stream], ignore_result=True)
    return processed


def _reclaim_orphans(now: dt.datetime, stream: int) -> int:
    """Unclaim what a processor of ``stream`` that died left claimed: events without an error
    (a failed event is tried again after ``STALE_CLAIM``)."""
    count = (
        _in_stream(WebhookEvent.objects.all(), stream)
        .filter(processed_at__isnull=True, processing_started_at__isnull=False)
        .filter(Q(error="") | Q(processing_started_at__lt=now - STALE_CLAIM))
        .update(processing_started_at=None)
    )
    if count:
        logger.warning("%d webhook events a stopped processor had claimed are taken back", count)
    return count


def _unclaimed_exists(stream: int) -> bool:
    return (
        _in_stream(WebhookEvent.objects.all(), stream)
        .filter(processed_at__isnull=True, processing_started_at__isnull=True)
        .exists()
    )


def webhook_events_process(
    *,
    webhook_event_ids: list[str],
    batch: int = 50,
    now_fn: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Process the given events (those still unclaimed, or whose claim went stale)."""
    remaining = list(webhook_event_ids)

    def claim(now: dt.datetime) -> list[WebhookEvent]:
        while remaining:
            ids = remaining[:batch]
            del remaining[:batch]
            events = _claim_ids(ids, now=now)
            if events:
                return events
        return []

    processed, _ = _process_claimed(
        claim, batch=batch, max_rounds=None, now_fn=now_fn or timezone.now, sleep=sleep
    )
    return processed


def webhook_event_process(*, webhook_event_id: str, now: dt.datetime | None = None) -> bool:
    """Process one stored event exactly once. Returns whether this call processed it."""
    now_fn = (lambda: now) if now is not None else None
    return webhook_events_process(webhook_event_ids=[webhook_event_id], now_fn=now_fn) == 1


def _claim_batch(*, limit: int, now: dt.datetime, stream: int = 0) -> list[WebhookEvent]:
    """Take the oldest unclaimed events of ``stream``; rows another processor is claiming are
    skipped. (On SQLite the IMMEDIATE transaction serialises claimers instead.)"""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _claim_batch_postgresql(limit=limit, now=now, stream=stream)
    with transaction.atomic():
        events = list(
            _in_stream(WebhookEvent.objects.select_for_update(skip_locked=True), stream)
            .filter(processed_at__isnull=True, processing_started_at__isnull=True)
            .order_by("received_at", "id")[:limit]
        )
        WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(processing_started_at=now)
    return events


def _claim_batch_postgresql(*, limit: int, now: dt.datetime, stream: int) -> list[WebhookEvent]:
    """The same claim in one statement, its own transaction (a round trip, not four). Its
    commit does not wait for the WAL flush: a claim lost in a database crash only leaves the
    events unclaimed, to be claimed again."""
    table = WebhookEvent._meta.db_table
    columns = ", ".join(f.column for f in WebhookEvent._meta.concrete_fields)
    streams = settings.WEBHOOK_STREAMS
    sql = (
        f"UPDATE {table} SET processing_started_at = %s "  # noqa: S608 - our table name
        "WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off' AND id IN ("
        f"SELECT id FROM {table} WHERE processed_at IS NULL AND processing_started_at IS NULL "
        f"{'AND mod(ascii(right(line_user_id, 1)), %s) = %s ' if streams > 1 else ''}"
        "ORDER BY received_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
        f"RETURNING {columns}"
    )
    params = [now, *([streams, stream] if streams > 1 else []), limit]
    events = list(WebhookEvent.objects.raw(sql, params))
    events.sort(key=lambda e: (e.received_at, e.pk))
    return events


def _claim_ids(ids: list[str], *, now: dt.datetime) -> list[WebhookEvent]:
    """Take these events unless done or another worker has them (a claim older than
    ``STALE_CLAIM`` belongs to a worker that died)."""
    with transaction.atomic():
        events = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(
                Q(processing_started_at__isnull=True)
                | Q(processing_started_at__lt=now - STALE_CLAIM),
                webhook_event_id__in=ids,
                processed_at__isnull=True,
            )
            .order_by("received_at", "id")
        )
        WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(processing_started_at=now)
    return events


def _process_claimed(
    claim: Callable[[dt.datetime], list[WebhookEvent]],
    *,
    batch: int,
    max_rounds: int | None,
    now_fn: Callable[[], dt.datetime],
    sleep: Callable[[float], None],
) -> tuple[int, bool]:
    """Claim batches until ``claim`` finds none, act on each batch on this thread (follow
    state and 受信設定 are committed before any reply is sent, whatever happens to it), hand
    the replies to a pool of threads and record each outcome. Returns (events processed,
    stopped with more to do).

    At most about ``batch`` replies wait in the pool while the next batch is claimed: events
    are not claimed faster than they can be answered, so other processors get their share and
    a claimed event's token does not age in a queue."""
    processed = rounds = 0
    more = False
    with replies.ReplyPool(gateway=get_gateway(), now_fn=now_fn, sleep=sleep) as pool:
        while True:
            processed += _record(pool.finished(below=batch), now_fn())
            if max_rounds is not None and rounds >= max_rounds:
                more = True
                break
            events = claim(now_fn())
            if not events:
                break
            rounds += 1
            done: list[tuple[WebhookEvent, str]] = []
            for event, messages in _apply(events):
                token = event.payload.get("replyToken")
                if token and messages:
                    pool.submit(
                        event, token=str(token), messages=messages, event_at=_event_time(event)
                    )
                else:
                    done.append((event, ""))
            processed += _record(done, now_fn())
        processed += _record(pool.drain(), now_fn())
    return processed, more


def _apply(events: list[WebhookEvent]) -> list[tuple[WebhookEvent, list[dict[str, Any]]]]:
    """Act on a batch of events in one transaction (a commit per event was most of the cost
    of a burst); the replies to send. If any event fails, the batch is rolled back and done
    again event by event, so that one bad event does not hold back the others."""
    reads = _BatchReads()
    try:
        with transaction.atomic():
            return _apply_together(events, reads)
    except Exception:
        logger.warning("a batch of webhook events failed; event by event", exc_info=True)
    applied = []
    for event in events:
        try:
            with transaction.atomic():
                applied.append((event, _handle(event, reads)))
        except Exception as exc:
            # Left claimed but unprocessed: the sweeper retries after STALE_CLAIM.
            logger.exception("webhook event %s failed", event.webhook_event_id)
            WebhookEvent.objects.filter(pk=event.pk).update(
                error=f"{type(exc).__name__}: {exc}"[:500]
            )
    return applied


def _apply_together(
    events: list[WebhookEvent], reads: _BatchReads
) -> list[tuple[WebhookEvent, list[dict[str, Any]]]]:
    """The follow events of citizens with nothing else in the batch are applied together (a
    burst of new friends is mostly that); every other event one at a time, in order."""
    per_user = Counter(event.line_user_id for event in events)
    follows = {
        event.line_user_id: _event_time(event)
        for event in events
        if event.event_type == "follow" and event.line_user_id and per_user[event.line_user_id] == 1
    }
    if follows:
        followers_follow(follows=follows, category_ids=reads.category_ids())
    return [
        (event, reads.standard_reply(StandardReply.Kind.GREETING))
        if event.event_type == "follow" and event.line_user_id in follows
        else (event, _handle(event, reads))
        for event in events
    ]


class _BatchReads:
    """What every event of a batch would read again: the categories and the standard
    replies."""

    def __init__(self) -> None:
        self._category_ids: list[int] | None = None
        self._standard: dict[str, list[dict[str, Any]]] = {}

    def category_ids(self) -> list[int]:
        if self._category_ids is None:
            self._category_ids = list(Category.objects.values_list("pk", flat=True))
        return self._category_ids

    def standard_reply(self, kind: str) -> list[dict[str, Any]]:
        if kind not in self._standard:
            self._standard[kind] = standard_reply_messages(kind)
        return self._standard[kind]


def _record(outcomes: list[tuple[Any, str]], now: dt.datetime) -> int:
    """Mark events processed with their reply's error, and forget what policy 10 says not to
    keep: one UPDATE per distinct error (usually one per batch; per-row writes cost more
    than the rest of an event's processing)."""
    by_error: dict[str, list[int]] = {}
    expired = 0
    for event, error in outcomes:
        if error.startswith(replies.EXPIRED):
            expired += 1  # one line for all of them: under overload there are many
        elif error:
            logger.warning("reply to webhook event %s: %s", event.webhook_event_id, error)
        by_error.setdefault(error, []).append(event.pk)
    if expired:
        logger.warning("%d replies not attempted: their reply tokens had expired", expired)
    # one UPDATE (the usual case) needs no transaction of its own: a round trip, not three
    with transaction.atomic() if len(by_error) > 1 else contextlib.nullcontext():
        for error, pks in by_error.items():
            WebhookEvent.objects.filter(pk__in=pks).update(
                processed_at=now, error=error, payload=_Forgotten("payload")
            )
    return len(outcomes)


class _Forgotten(Func):
    """A webhook event's payload without its reply token (single use, and useless after a
    minute) and with a message's text blanked (policy 10), computed by the database. The
    app runs on PostgreSQL or SQLite (settings/env.py)."""

    output_field = JSONField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "jsonb_set(%(expressions)s - 'replyToken', '{message,text}', '\"\"', false)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = (
            "json_remove(json_replace(%(expressions)s, '$.message.text', ''), '$.replyToken')"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


def webhook_events_pending(*, now: dt.datetime | None = None) -> list[str]:
    """Events nobody picked up (broker down) or whose worker died."""
    now = now or timezone.now()
    return list(
        WebhookEvent.objects.filter(processed_at__isnull=True)
        .filter(
            Q(processing_started_at__isnull=True, received_at__lt=now - PENDING_GRACE)
            | Q(processing_started_at__lt=now - STALE_CLAIM)
        )
        .order_by("received_at")
        .values_list("webhook_event_id", flat=True)[:1000]
    )


def webhook_events_purge(*, now: dt.datetime | None = None) -> int:
    """Delete processed events older than ``RETENTION``; the run is audited (the personal
    data page shows the last runs)."""
    now = now or timezone.now()
    with transaction.atomic():
        deleted, _ = WebhookEvent.objects.filter(
            processed_at__isnull=False, processed_at__lt=now - RETENTION
        ).delete()
        audit_record(
            verb="data_purged", actor=None, data={"job": "webhook_events", "deleted": deleted}
        )
    return deleted


def _event_time(event: WebhookEvent) -> dt.datetime:
    stamp = event.payload.get("timestamp")
    if isinstance(stamp, int | float) and stamp > 0:
        return dt.datetime.fromtimestamp(stamp / 1000, tz=dt.UTC)
    return event.received_at


def _handle(event: WebhookEvent, reads: _BatchReads) -> list[dict[str, Any]]:
    """Act on one event (follow state, 受信設定) and return the reply to send, if any. The
    reply is sent afterwards, outside this transaction (``replies.ReplyPool``)."""
    user_id = event.line_user_id
    at = _event_time(event)
    kind = event.event_type
    if not user_id:
        logger.info("webhook %s event without a user ID: nothing to do", kind)
        return []
    if kind == "follow":
        follower_follow(line_user_id=user_id, at=at, category_ids=reads.category_ids())
        return reads.standard_reply(StandardReply.Kind.GREETING)
    if kind == "unfollow":
        follower_unfollow(line_user_id=user_id, at=at)
        return []
    if kind == "message":
        message = event.payload.get("message") or {}
        text = str(message.get("text", "")) if message.get("type") == "text" else ""
        # A staff member's LINE link code is answered here and is never a citizen's message.
        link_reply = notifications.line_link_message(line_user_id=user_id, text=text, now=at)
        if link_reply is not None:
            return link_reply
        if moderation.citizen_message_receive(
            webhook_event_id=event.webhook_event_id,
            line_user_id=user_id,
            message_type=str(message.get("type", "")),
            text=text,
            at=at,
        ):
            return []  # staff stopped automatic replies to this citizen (policy 6 措置)
        if normalize(text) == normalize(citizen_defaults.SUBSCRIPTION_KEYWORD):
            follower = follower_ensure(line_user_id=user_id, at=at)
            return subscription_menu_messages(follower)
        return auto_reply_messages(text=text, now=at)
    if kind == "postback":
        data = str((event.payload.get("postback") or {}).get("data", ""))
        return postback_handle(line_user_id=user_id, data=data, at=at)
    logger.info("webhook event type %r acknowledged and ignored", kind)
    return []
