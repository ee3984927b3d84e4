"""Delivery rows built in blocks while the send goes (PostgreSQL, plain multicast audiences).

Building all 2,000 rows of a 1,000,000-recipient send before the first request cost 1.66 s
on top of LINE's 10 s floor. Instead ``_prepare`` builds the first block (the first
``MULTICAST_BUILD_FIRST_RECIPIENTS``) in its transaction, and a ``DeliveryBuilder`` thread
in the sending process builds the rest ahead of the sending threads, one committed block at
a time.

Effectively once still holds because every request is still a committed row with its own
retry key before it is sent (the senders read only committed rows), and the blocks are
deterministic: recipients in follower-``id`` order, ``MULTICAST_CHUNK`` to a row, each block
a whole number of rows, the next block starting after the highest follower of the last
committed row. A run killed mid-build leaves its committed rows (and their keys) as they
are; the run that takes the send over resumes after them, and a block two runs would both
write collides on the ``(broadcast, seq)`` constraint instead of sending anyone twice.

The build is complete when ``Broadcast.deliveries_total`` is set (in the transaction of the
last block): until then it is 0, and a send with ``deliveries_total == 0`` is never
finished as sent (``finish._finish``) nor reserves its quota without its count.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Sum

from ...models import Broadcast, Delivery, Follower
from ...selectors import audiences as audience_selectors
from ..scheduling import MULTICAST_CHUNK

logger = logging.getLogger(__name__)

D = Delivery.Status

# The first block goes out with the lease (settings.MULTICAST_BUILD_FIRST_RECIPIENTS, 20,000:
# 40 requests, 0.2 s of LINE's 200/s) and the builder adds blocks of
# MULTICAST_BUILD_STEP_RECIPIENTS (100,000: 200 requests, 1 s at LINE's limit), keeping what
# is built at most AHEAD_FACTOR × what has been sent, plus one step, so that it never holds
# the senders back yet leaves the two cores to them.
AHEAD_FACTOR = 1.5


def _block(recipients: int) -> int:
    """A block size in recipients: whole multicasts, at least one."""
    return max(recipients // MULTICAST_CHUNK, 1) * MULTICAST_CHUNK


def first_block() -> int:
    return _block(settings.MULTICAST_BUILD_FIRST_RECIPIENTS)


def step_block() -> int:
    return _block(settings.MULTICAST_BUILD_STEP_RECIPIENTS)


def builds_in_blocks(broadcast: Broadcast) -> bool:
    """Whether this send's rows are built in blocks: on PostgreSQL, a multicast send in one
    version (subscribers of categories, narrowed by area, age or language or not, or the
    staff test recipients). SQLite (development: one small city) and sends with language
    versions (whose rows are filled per version) build every row up front; the broadcast API
    needs one row."""
    if connection.vendor != "postgresql" or broadcast.audience == Broadcast.Audience.ALL:
        return False
    return not audience_selectors.audience_spec(broadcast).variant_codes


def execute_without_nested_loops(cursor: Any, sql: str, params: list[Any]) -> None:
    """PostgreSQL: run ``sql`` with nested loops off for it alone (right after a bulk import
    of followers, before statistics exist, the planner picked a nested loop over
    100,000 × 100,000 rows), in one round trip: ``SET LOCAL … off; sql; SET LOCAL … on`` as
    one string, which Django's client-side binding sends as one simple query (three round
    trips were a tenth of a small send's statements). The cursor is left on ``sql``'s result."""
    cursor.execute(
        f"SET LOCAL enable_nestloop = off; {sql}; SET LOCAL enable_nestloop = on", params
    )
    cursor.nextset()


def _resume_point(broadcast: Broadcast) -> tuple[int, int]:
    """(last seq, highest follower id in it) of the rows committed so far: (0, 0) if none."""
    last = (
        Delivery.objects.filter(broadcast=broadcast)
        .order_by("-seq")
        .values_list("seq", "recipients")
        .first()
    )
    if last is None:
        return 0, 0
    seq, recipients = last
    # A row's recipients are in follower order, so its last is its highest follower; one
    # look-up by the unique LINE user ID (``MAX(id) … IN (500 IDs)`` walked the primary key
    # instead: 0.3–0.6 s). Followers are never deleted (unfollowing only marks them).
    cursor = (
        Follower.objects.filter(line_user_id=recipients[-1]).values_list("id", flat=True).first()
    )
    if cursor is None:
        raise LookupError(f"the last recipient of delivery {seq} is no longer a follower")
    return seq, cursor


def deliveries_build_block(
    broadcast: Broadcast, *, now: dt.datetime, limit: int, save_totals: bool = True
) -> bool:
    """Build the next block of up to ``limit`` recipients (a multiple of ``MULTICAST_CHUNK``)
    in the caller's transaction. When the block is the last one (fewer than ``limit``
    recipients were left), also set the send's ``deliveries_total`` and ``recipient_count``
    (on ``broadcast``, and in its row unless ``save_totals`` is false: the caller saves
    them with the rest of its changes in the same transaction).
    Returns whether the build is complete."""
    assert limit % MULTICAST_CHUNK == 0, "a block is a whole number of rows"  # noqa: S101
    seq, cursor = _resume_point(broadcast)
    picked = (
        audience_selectors.followers_for_spec(
            audience_selectors.audience_spec(broadcast), after=cursor
        )
        .order_by("id")
        .values("id", "line_user_id")[:limit]
    )
    inner, params = picked.query.get_compiler(connection=connection).as_sql()
    table = Delivery._meta.db_table
    # Recipients in ``id`` order, cut into rows of MULTICAST_CHUNK, each with a new v4 retry
    # key, without the IDs passing through Python. No nested loop (see the ANALYZE note in
    # send._create_deliveries_in_database).
    sql = f"""
        WITH picked AS (
            SELECT r.line_user_id AS user_id, row_number() OVER (ORDER BY r.id) AS n
            FROM ({inner}) r
        ), ins AS (
            INSERT INTO {table} (broadcast_id, seq, kind, recipients, recipient_count, retry_key,
                                 key_created_at, status, attempts, request_id, last_error,
                                 language_code)
            SELECT %s, %s + (n - 1) / %s + 1, %s, jsonb_agg(user_id ORDER BY n), count(*),
                   gen_random_uuid(), %s, %s, 0, '', '', ''
            FROM picked
            GROUP BY (n - 1) / %s
            RETURNING recipient_count
        )
        SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM ins),
               (SELECT coalesce(sum(recipient_count), 0) FROM ins)
    """  # noqa: S608 - our table name and the ORM's own SQL; values are parameters
    chunk = MULTICAST_CHUNK
    with connection.cursor() as cursor_:
        execute_without_nested_loops(
            cursor_,
            sql,
            [*params, broadcast.pk, seq, chunk, Delivery.Kind.MULTICAST, now, D.PENDING, chunk],
        )
        row = cursor_.fetchone()
    picked_count = int(row[0]) if row else 0
    if picked_count == limit:
        return False
    if seq == 0:  # the whole send in this one block: its rows are the ones just written
        broadcast.deliveries_total = int(row[1]) if row else 0
        broadcast.recipient_count = int(row[2]) if row else 0
    else:
        totals = Delivery.objects.filter(broadcast=broadcast).aggregate(
            rows=Max("seq"), recipients=Sum("recipient_count")
        )
        broadcast.deliveries_total = totals["rows"] or 0
        broadcast.recipient_count = totals["recipients"] or 0
    if save_totals:
        Broadcast.objects.filter(pk=broadcast.pk).update(
            deliveries_total=broadcast.deliveries_total, recipient_count=broadcast.recipient_count
        )
    return True


class DeliveryBuilder(threading.Thread):
    """Builds the rest of a send's rows ahead of its sending threads (see the module's
    docstring). Stops when the build is complete, when the run loses its lease, or at the
    first error (the send is then left unfinished: the next run resumes the build)."""

    def __init__(
        self,
        broadcast: Broadcast,
        owner: str,
        now_fn: Callable[[], dt.datetime],
        lost: threading.Event,
    ) -> None:
        super().__init__(name=f"build-{broadcast.pk}", daemon=True)
        self.broadcast = broadcast
        self.owner = owner
        self.now_fn = now_fn
        self.lost = lost
        self.complete = broadcast.deliveries_total > 0
        self.built_seq = (
            broadcast.deliveries_total
            if self.complete
            else broadcast.deliveries.aggregate(m=Max("seq"))["m"] or 0
        )
        self.sent_seq = 0
        self.finished = self.complete  # no more rows will come from this builder
        self.error: BaseException | None = None
        self._rush = False
        self._stopped = False
        self._cond = threading.Condition()
        self._step = step_block()
        self._blocks = 0
        self._step_rows = self._step // MULTICAST_CHUNK

    def start(self) -> None:
        if not self.finished:
            super().start()

    def _wanted(self) -> bool:
        return self._rush or self.built_seq < AHEAD_FACTOR * self.sent_seq + self._step_rows

    def run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._stopped or self.lost.is_set() or self._wanted(), 0.5
                    )
                    if self._stopped or self.lost.is_set():
                        return
                    if not self._wanted():
                        continue
                with transaction.atomic():
                    owned = Broadcast.objects.filter(
                        pk=self.broadcast.pk,
                        status=Broadcast.Status.SENDING,
                        lease_owner=self.owner,
                    ).exists()
                    if not owned:
                        return
                    complete = deliveries_build_block(
                        self.broadcast, now=self.now_fn(), limit=self._next_limit()
                    )
                    built = Delivery.objects.filter(broadcast=self.broadcast).aggregate(
                        m=Max("seq")
                    )["m"]
                with self._cond:
                    self.built_seq = built or 0
                    self.complete = complete
                    self._cond.notify_all()
                if complete:
                    return
        except Exception as exc:
            logger.exception("broadcast %s: building deliveries failed", self.broadcast.pk)
            self.error = exc
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()
            connection.close()

    def _next_limit(self) -> int:
        """Blocks grow from twice the first to the step (40k, 80k, 100k, …), so that the
        senders, who start with only the first block, do not wait for a whole step. The rows
        are the same whatever the block sizes: each block is whole rows in follower order."""
        self._blocks += 1
        return min(self._step, first_block() * 2**self._blocks)

    def note_sent(self, seq: int) -> None:
        with self._cond:
            if seq > self.sent_seq:
                self.sent_seq = seq
                if self._wanted():
                    self._cond.notify_all()

    def wait_beyond(self, seq: int) -> None:
        """Wait until a row after ``seq`` is committed or no more will be."""
        with self._cond:
            self._cond.wait_for(lambda: self.built_seq > seq or self.finished)

    def wait_complete(self) -> bool:
        """Build the rest now, without waiting for the senders, and wait for it (the quota
        reservation needs the count). Returns whether the build completed."""
        with self._cond:
            self._rush = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.finished)
            return self.complete

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self.is_alive():
            self.join(timeout=30)


def pending_in_order(
    broadcast: Broadcast, builder: DeliveryBuilder, window: int = 100
) -> Iterator[Delivery]:
    """The send's pending deliveries in ``seq`` order, a window at a time as the sender needs
    them (never every chunk's recipients in memory at once), waiting for the builder when the
    senders catch up with it. The first window is just enough to fill the sending threads."""
    last = 0
    limit = max(settings.MULTICAST_CONCURRENCY, 1)
    builder_done = builder.finished
    while True:
        known = builder.built_seq  # every row up to here is committed, so seen by the read
        asked = limit
        rows = list(
            Delivery.objects.filter(broadcast=broadcast, status=D.PENDING, seq__gt=last).order_by(
                "seq"
            )[:limit]
        )
        limit = window
        if builder_done and len(rows) < asked:
            # Fewer than asked for, and no row is added after the build finished (before
            # this read): these are the last pending rows (a small send needs one read).
            yield from _noting(rows, builder)
            return
        if not rows:
            if builder_done:
                return
            if known > last:  # rows up to ``known`` exist but are no longer pending
                last = known
                builder.note_sent(last)
            builder.wait_beyond(last)
            # Rows committed before the builder said it finished are seen by the next read.
            builder_done = builder.finished
            continue
        yield from _noting(rows, builder)
        last = rows[-1].seq


def _noting(rows: list[Delivery], builder: DeliveryBuilder) -> Iterator[Delivery]:
    """Each row in turn, telling the builder how far the senders have got."""
    for delivery in rows:
        yield delivery
        builder.note_sent(delivery.seq)
