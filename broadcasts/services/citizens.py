"""The citizen side: webhook events, followers, 受信設定 and automatic responses.

Policy 5(2): citizens get automatic responses only. Policy 10: we keep a follower's LINE user
ID, follow/unfollow times and chosen categories — nothing else — and a message's text only
until the event has been processed.

New followers receive every category (the choice documented in the greeting): before 受信設定
existed every friend received everything, and nobody should miss 防災・防犯 or 緊急情報 because
they did not open a menu. Each citizen can narrow it down at any time."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Func, JSONField, Q
from django.utils import timezone

from .. import citizen_defaults
from ..content import Problem, check_messages
from ..line.gateway import get_gateway
from ..models import (
    AutoReplyRule,
    Category,
    Follower,
    PublicNotice,
    StandardReply,
    User,
    WebhookEvent,
)
from . import enqueue, replies
from .audit import audit_record
from .errors import BroadcastInvalid

logger = logging.getLogger(__name__)

#: a claim older than this is taken to belong to a worker that died
STALE_CLAIM = dt.timedelta(minutes=5)
#: events not picked up this long after arrival are re-enqueued by the sweeper
PENDING_GRACE = dt.timedelta(seconds=30)
#: processed events are kept this long for troubleshooting, then deleted
RETENTION = dt.timedelta(days=30)
QUICK_REPLY_MAX = 13


# --- webhook events ---------------------------------------------------------------------------


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
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The acknowledgement LINE waits for need not wait for the WAL flush: a database
            # crash could lose the last fraction of a second of auto-reply triggers, never
            # corrupt anything. Everything else in the app commits synchronously.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        WebhookEvent.objects.bulk_create(rows, ignore_conflicts=True)
        transaction.on_commit(lambda: _enqueue(ids))
    return ids


# One processing task at a time is enough to wake: it keeps taking new events until there
# are none. Coalescing wake-ups needs a cache every process shares (Redis, or the embedded
# default's SQLite files: settings.WEBHOOK_COALESCE_WAKEUPS); without one every request
# enqueues its own task.
WAKE_KEY = "webhook:processor-awake"
WAKE_SECONDS = 2


def _enqueue(webhook_event_ids: list[str]) -> None:
    """Fire and forget. If the broker is down the rows wait for the sweeper."""
    try:
        if not settings.WEBHOOK_COALESCE_WAKEUPS:
            enqueue.task_send(
                enqueue.PROCESS_WEBHOOK_EVENTS, args=[webhook_event_ids], ignore_result=True
            )
        elif cache.add(WAKE_KEY, 1, WAKE_SECONDS):
            enqueue.task_send(enqueue.PROCESS_NEW_WEBHOOK_EVENTS, ignore_result=True)
        # else: a processor is queued or running and will see these committed rows.
    except Exception:
        # The broker or the cache is down (or both). The events are stored: the sweeper
        # processes them later, and LINE must get its 200 (a 500 makes it redeliver). Even
        # clearing the wake flag may fail when the cache is what is down.
        logger.exception("could not enqueue webhook events %s; the sweeper will", webhook_event_ids)
        with contextlib.suppress(Exception):
            cache.delete(WAKE_KEY)


def webhook_events_process_new(
    *,
    batch: int = 50,
    max_rounds: int = 400,
    now_fn: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Process every event nobody has claimed yet, until there are none.

    Several of these may run at once (a wake-up every couple of seconds under load): each
    claims its own batches (``select_for_update(skip_locked=True)``), so they share the work.
    Before leaving it clears the wake flag and looks once more: an event committed while the
    flag was still set (its request did not enqueue) is committed before that last look, and
    one committed after it finds the flag clear and enqueues a new processor."""

    def claim(now: dt.datetime) -> list[WebhookEvent]:
        events = _claim_batch(limit=batch, now=now)
        if not events:
            cache.delete(WAKE_KEY)
            events = _claim_batch(limit=batch, now=now)
            if events:
                cache.add(WAKE_KEY, 1, WAKE_SECONDS)
        return events

    processed, more = _process_claimed(
        claim, batch=batch, max_rounds=max_rounds, now_fn=now_fn or timezone.now, sleep=sleep
    )
    if more:
        # Still more after many rounds: hand over to a fresh task rather than run forever.
        enqueue.task_send(enqueue.PROCESS_NEW_WEBHOOK_EVENTS, ignore_result=True)
    return processed


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


def _claim_batch(*, limit: int, now: dt.datetime) -> list[WebhookEvent]:
    """Take the oldest unclaimed events; rows another processor is claiming are skipped.
    (On SQLite the IMMEDIATE transaction serialises claimers instead.)"""
    with transaction.atomic():
        events = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(processed_at__isnull=True, processing_started_at__isnull=True)
            .order_by("received_at", "id")[:limit]
        )
        WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(processing_started_at=now)
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
    with transaction.atomic():
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
    now = now or timezone.now()
    deleted, _ = WebhookEvent.objects.filter(
        processed_at__isnull=False, processed_at__lt=now - RETENTION
    ).delete()
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
        if normalize(text) == normalize(citizen_defaults.SUBSCRIPTION_KEYWORD):
            follower = follower_ensure(line_user_id=user_id, at=at)
            return subscription_menu_messages(follower)
        return auto_reply_messages(text=text, now=at)
    if kind == "postback":
        data = str((event.payload.get("postback") or {}).get("data", ""))
        return postback_handle(line_user_id=user_id, data=data, at=at)
    logger.info("webhook event type %r acknowledged and ignored", kind)
    return []


# --- followers and 受信設定 -------------------------------------------------------------------


def follower_follow(
    *, line_user_id: str, at: dt.datetime | None = None, category_ids: list[int] | None = None
) -> Follower:
    """A citizen added the account (or unblocked it): see ``followers_follow``."""
    follows = {line_user_id: at or timezone.now()}
    return followers_follow(follows=follows, category_ids=category_ids)[line_user_id]


@transaction.atomic(savepoint=False)
def followers_follow(
    *, follows: dict[str, dt.datetime], category_ids: list[int] | None = None
) -> dict[str, Follower]:
    """Citizens added the account (or unblocked it), each at its own time. New followers get
    every category (``category_ids``: all of them, if the caller has read them already); a
    returning follower keeps the choices they made before. Many at once cost a few
    statements, not a few per citizen (a burst of follow events).

    Inside a caller's transaction this adds no savepoint (a webhook batch is one transaction):
    if another transaction creates one of these followers meanwhile, the unique index fails
    the caller's transaction, and a webhook batch is then done again event by event, finding
    the row."""
    followers = {
        f.line_user_id: f
        for f in Follower.objects.select_for_update().filter(line_user_id__in=list(follows))
    }
    for line_user_id, follower in followers.items():
        at = follows[line_user_id]
        if follower.unfollowed_at is None or follower.unfollowed_at <= at:
            follower.followed_at = at
            follower.unfollowed_at = None
            follower.save(update_fields=["followed_at", "unfollowed_at"])
    new = [
        Follower(line_user_id=u, followed_at=at) for u, at in follows.items() if u not in followers
    ]
    if new:
        created = Follower.objects.bulk_create(new)
        if any(f.pk is None for f in created):  # a database that does not return new ids
            created = list(Follower.objects.filter(line_user_id__in=[f.line_user_id for f in new]))
        if category_ids is None:
            category_ids = list(Category.objects.values_list("pk", flat=True))
        through = Follower.categories.through
        through.objects.bulk_create(
            [through(follower_id=f.pk, category_id=pk) for f in created for pk in category_ids]
        )
        followers.update((f.line_user_id, f) for f in created)
    return followers


def follower_unfollow(*, line_user_id: str, at: dt.datetime | None = None) -> None:
    """A citizen blocked the account. Only an unfollow newer than the last follow counts."""
    at = at or timezone.now()
    Follower.objects.filter(line_user_id=line_user_id, followed_at__lte=at).update(unfollowed_at=at)


def follower_ensure(*, line_user_id: str, at: dt.datetime | None = None) -> Follower:
    """The follower row for someone who can talk to us (and so is a friend)."""
    follower = Follower.objects.filter(line_user_id=line_user_id).first()
    if follower is None or follower.unfollowed_at is not None:
        follower = follower_follow(line_user_id=line_user_id, at=at)
    return follower


def subscription_set(*, follower: Follower, category_code: str, subscribed: bool) -> bool:
    """Add or remove one category. False if there is no such category."""
    category = Category.objects.filter(code=category_code).first()
    if category is None:
        return False
    if subscribed:
        follower.categories.add(category)
    else:
        follower.categories.remove(category)
    return True


def subscription_set_all(*, follower: Follower, subscribed: bool) -> None:
    follower.categories.set(Category.objects.all() if subscribed else [])


def postback_handle(
    *, line_user_id: str, data: str, at: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Postbacks from the rich menu and the 受信設定 quick replies. Returns the reply."""
    params = {k: v[0] for k, v in parse_qs(data, keep_blank_values=True).items()}
    action = params.get("action", "")
    if action not in {
        "show_subscriptions",
        "subscribe",
        "unsubscribe",
        "subscribe_all",
        "unsubscribe_all",
    }:
        logger.info("unknown postback ignored")
        return []
    follower = follower_ensure(line_user_id=line_user_id, at=at)
    notice = ""
    if action in ("subscribe", "unsubscribe"):
        code = params.get("category", "")
        subscribed = action == "subscribe"
        if subscription_set(follower=follower, category_code=code, subscribed=subscribed):
            label = Category.objects.get(code=code).label
            notice = f"「{label}」を{'受け取る' if subscribed else '受け取らない'}設定にしました。"
        else:
            notice = "そのカテゴリは見つかりませんでした。"
    elif action in ("subscribe_all", "unsubscribe_all"):
        subscribed = action == "subscribe_all"
        subscription_set_all(follower=follower, subscribed=subscribed)
        notice = (
            "すべてのカテゴリを受け取る設定にしました。"
            if subscribed
            else "すべてのカテゴリを受け取らない設定にしました。"
        )
    return subscription_menu_messages(follower, notice=notice)


def subscription_menu_messages(follower: Follower, *, notice: str = "") -> list[dict[str, Any]]:
    """The citizen's current choices and a quick-reply menu to change them."""
    chosen = set(follower.categories.values_list("pk", flat=True))
    categories = list(Category.objects.all())
    lines = [notice] if notice else []
    lines.append("【受信設定】現在の設定です（✅ 受け取る／－ 受け取らない）")
    lines += [f"{'✅' if c.pk in chosen else '－'} {c.label}" for c in categories]
    lines.append("下のボタンで変更できます。")
    items = []
    for c in categories:
        on = c.pk in chosen
        items.append(
            _postback_item(
                label=f"{'停止' if on else '受信'}：{c.label}"[:20],
                data=f"action={'unsubscribe' if on else 'subscribe'}&category={c.code}",
                display=f"「{c.label}」を{'受け取らない' if on else '受け取る'}",
            )
        )
    items.append(_postback_item("すべて受け取る", "action=subscribe_all", "すべて受け取る"))
    items.append(_postback_item("すべて停止", "action=unsubscribe_all", "すべて受け取らない"))
    return [{"type": "text", "text": "\n".join(lines), "quickReply": {"items": items[:13]}}]


def _postback_item(label: str, data: str, display: str) -> dict[str, Any]:
    return {
        "type": "action",
        "action": {"type": "postback", "label": label, "data": data, "displayText": display},
    }


# --- automatic responses --------------------------------------------------------------------


def normalize(text: str) -> str:
    """Full-width/half-width and case differences do not matter when matching keywords."""
    return unicodedata.normalize("NFKC", text or "").casefold().strip()


def auto_reply_rule_select(*, text: str, now: dt.datetime | None = None) -> AutoReplyRule | None:
    """The first active rule (by priority) whose keyword matches ``text``."""
    now = now or timezone.now()
    wanted = normalize(text)
    if not wanted:
        return None
    rules = AutoReplyRule.objects.filter(
        Q(active_from__isnull=True) | Q(active_from__lte=now),
        Q(active_until__isnull=True) | Q(active_until__gt=now),
        is_active=True,
    ).order_by("priority", "id")
    for rule in rules:
        for keyword in (normalize(k) for k in rule.keyword_list()):
            if not keyword:
                continue
            if rule.match_type == AutoReplyRule.MatchType.EXACT and wanted == keyword:
                return rule
            if rule.match_type == AutoReplyRule.MatchType.CONTAINS and keyword in wanted:
                return rule
    return None


def auto_reply_messages(*, text: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    rule = auto_reply_rule_select(text=text, now=now)
    if rule is not None:
        return list(rule.messages)
    return standard_reply_messages(StandardReply.Kind.DEFAULT)


def standard_reply_messages(kind: str) -> list[dict[str, Any]]:
    reply = StandardReply.objects.filter(kind=kind).first()
    if reply is not None and reply.messages:
        return list(reply.messages)
    body = (
        citizen_defaults.GREETING_TEXT
        if kind == StandardReply.Kind.GREETING
        else citizen_defaults.DEFAULT_REPLY_TEXT
    )
    return [citizen_defaults.text(body)]


def reply_messages_check(messages: Any) -> list[Problem]:
    """The broadcast builder's checks, for automatic responses (reply API: 5 messages)."""
    return check_messages(messages)


def _rule_data(rule: AutoReplyRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "match_type": rule.match_type,
        "keywords": rule.keyword_list(),
        "priority": rule.priority,
        "active_from": rule.active_from.isoformat() if rule.active_from else None,
        "active_until": rule.active_until.isoformat() if rule.active_until else None,
        "is_active": rule.is_active,
        "messages": rule.messages,
    }


@transaction.atomic
def auto_reply_rule_save(*, rule: AutoReplyRule, actor: User) -> AutoReplyRule:
    problems = reply_messages_check(rule.messages)
    if problems:
        raise BroadcastInvalid(problems)
    created = rule.pk is None
    before = (
        None if created else _rule_data(AutoReplyRule.objects.select_for_update().get(pk=rule.pk))
    )
    rule.save()
    audit_record(
        verb="auto_reply_rule_created" if created else "auto_reply_rule_changed",
        actor=actor,
        data={"id": rule.pk, "before": before, "after": _rule_data(rule)},
    )
    return rule


@transaction.atomic
def auto_reply_rule_delete(*, rule: AutoReplyRule, actor: User) -> None:
    data = {"id": rule.pk, "before": _rule_data(rule)}
    rule.delete()
    audit_record(verb="auto_reply_rule_deleted", actor=actor, data=data)


@transaction.atomic
def standard_reply_save(*, reply: StandardReply, actor: User) -> StandardReply:
    problems = reply_messages_check(reply.messages)
    if problems:
        raise BroadcastInvalid(problems)
    before = StandardReply.objects.filter(pk=reply.pk).values_list("messages", flat=True).first()
    reply.save()
    audit_record(
        verb="standard_reply_changed",
        actor=actor,
        data={"kind": reply.kind, "before": before, "after": reply.messages},
    )
    return reply


# --- public notices ---------------------------------------------------------------------------


def _notice_data(notice: PublicNotice) -> dict[str, Any]:
    return {"title": notice.title, "body": notice.body, "is_published": notice.is_published}


@transaction.atomic
def public_notice_save(*, notice: PublicNotice, actor: User) -> PublicNotice:
    """Save a notice; publishing stamps ``published_at`` (shown on the public page)."""
    previous = PublicNotice.objects.filter(pk=notice.pk).first() if notice.pk else None
    if notice.is_published and (previous is None or not previous.is_published):
        notice.published_at = timezone.now()
    notice.save()
    audit_record(
        verb="public_notice_saved",
        actor=actor,
        data={
            "id": notice.pk,
            "before": _notice_data(previous) if previous else None,
            "after": _notice_data(notice),
        },
    )
    return notice


@transaction.atomic
def public_notice_delete(*, notice: PublicNotice, actor: User) -> None:
    data = {"id": notice.pk, "before": _notice_data(notice)}
    notice.delete()
    audit_record(verb="public_notice_deleted", actor=actor, data=data)
