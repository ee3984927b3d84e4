"""Replies to webhook events, in time (issue 12, finding 7).

LINE's reply token is single-use and short-lived. LINE's documentation ("Send reply message",
https://developers.line.biz/en/reference/messaging-api/#send-reply-message, and "Sending
messages" → "Reply messages", https://developers.line.biz/en/docs/messaging-api/sending-messages/
#reply-messages): reply tokens must be used within one minute after the webhook is received;
use after more than one minute is not guaranteed (the Japanese reference: 「応答トークンは、
Webhookを受信してから1分以内に使用する必要があります。1分を超える場合の使用については、動作は
保証されません。」). The OpenAPI documents in line-openapi only say "replyToken received via
webhook". Hence:

- **No reply after the token's lifetime.** A reply is not attempted once its event is older
  than ``settings.REPLY_TOKEN_MAX_AGE_SECONDS`` (default 50 s); the event is recorded with
  ``EXPIRED`` instead. The age is counted from LINE's own ``timestamp`` of the event, which is
  when it happened, a little before LINE sent the webhook: the safe side. The margin under
  LINE's minute is for clock differences and the request's own time.
- **Calls to LINE in parallel.** One reply at a time ran at ~45 events/s, and a burst of 5,000
  follow events left half the greetings later than a minute. The calls run in a bounded pool
  of threads (``settings.REPLY_CONCURRENCY``) that only talk to LINE: the database stays with
  the caller's thread, which records what happened.
- **Temporary failures are retried while the token is valid** (5xx, timeouts, 429), with
  backoff. A retry cannot reply twice: LINE accepts a token once, so a retry after an attempt
  that did reach LINE is refused with 400 "Invalid reply token" (recorded, with a note).
  These retries are here rather than Celery retries of the task: a task handles batches of
  events, and the deadline that matters is each token's.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

from django.conf import settings

from ..line.errors import LineError, LineTemporaryError
from ..line.gateway import LineGateway

logger = logging.getLogger(__name__)

#: the start of the error recorded on an event whose reply was not attempted (token too old)
EXPIRED = "応答せず: 応答トークンの有効期限切れ"
#: waits between attempts after a temporary failure (then the last one again), for as long as
#: the token stays valid
RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)


def max_age() -> dt.timedelta:
    return dt.timedelta(seconds=settings.REPLY_TOKEN_MAX_AGE_SECONDS)


def expired_error(age: dt.timedelta) -> str:
    return (
        f"{EXPIRED}（イベントから {age.total_seconds():.0f} 秒、"
        f"上限 {settings.REPLY_TOKEN_MAX_AGE_SECONDS} 秒。LINE の応答トークンは受信から1分）"
    )


class ReplyPool:
    """The replies of one processing run: submitted from the caller's thread, sent by up to
    ``concurrency`` threads, their outcomes collected back on the caller's thread as
    ``(key, error)`` pairs (``error`` is "" when LINE accepted the reply).

    Use as a context manager; leaving it waits for the replies already started and cancels
    the ones that were not."""

    def __init__(
        self,
        *,
        gateway: LineGateway,
        now_fn: Callable[[], dt.datetime],
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int | None = None,
    ) -> None:
        self._gateway = gateway
        self._now_fn = now_fn
        self._sleep = sleep
        self._executor = ThreadPoolExecutor(
            max_workers=max(concurrency or settings.REPLY_CONCURRENCY, 1),
            thread_name_prefix="line-reply",
        )
        self._in_flight: dict[Future[str], Hashable] = {}
        self._finished: list[tuple[Hashable, str]] = []

    def __enter__(self) -> ReplyPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def submit(
        self, key: Hashable, *, token: str, messages: list[dict[str, Any]], event_at: dt.datetime
    ) -> None:
        """Reply to the event ``key`` happened at ``event_at``, unless its token is too old."""
        age = self._now_fn() - event_at
        if age >= max_age():
            self._finished.append((key, expired_error(age)))
            return
        future = self._executor.submit(self._reply, token, messages, event_at)
        self._in_flight[future] = key

    def finished(self, *, below: int | None = None) -> list[tuple[Hashable, str]]:
        """The outcomes so far. With ``below``, first wait until fewer than that many replies
        are in flight (the caller does not claim more events than it can answer in time)."""
        while below is not None and len(self._in_flight) >= max(below, 1):
            done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
            self._collect(done)
        self._collect([f for f in self._in_flight if f.done()])
        finished, self._finished = self._finished, []
        return finished

    def drain(self) -> list[tuple[Hashable, str]]:
        """Wait for every reply in flight; all the outcomes not yet taken."""
        if self._in_flight:
            wait(self._in_flight)
        return self.finished()

    def _collect(self, done: Any) -> None:
        for future in list(done):
            key = self._in_flight.pop(future)
            try:
                error = future.result()
            except Exception as exc:  # a bug, not LINE: record it, never lose the event
                logger.exception("reply to webhook event %s raised", key)
                error = f"{type(exc).__name__}: {exc}"
            self._finished.append((key, error[:500]))

    def _reply(self, token: str, messages: list[dict[str, Any]], event_at: dt.datetime) -> str:
        """In a pool thread: LINE calls only, no database."""
        deadline = event_at + max_age()
        delays = iter(RETRY_SECONDS)
        attempts = 0
        last: LineError | None = None
        while True:
            now = self._now_fn()
            if now >= deadline:
                if last is None:  # waited in the pool past the token's lifetime
                    return expired_error(now - event_at)
                return _gave_up(last, attempts)
            try:
                self._gateway.reply(reply_token=token, messages=messages)
            except LineTemporaryError as exc:
                attempts, last = attempts + 1, exc
                delay = next(delays, RETRY_SECONDS[-1])
                if self._now_fn() + dt.timedelta(seconds=delay) >= deadline:
                    return _gave_up(exc, attempts)
                logger.info("reply failed temporarily (%s); retrying in %s s", exc, delay)
                self._sleep(delay)
                continue
            except LineError as exc:
                attempts += 1
                if attempts > 1:  # an earlier attempt may have reached LINE and used the token
                    return f"{exc.describe()}（{attempts} 回目。先の試行が届いた可能性があります）"
                return exc.describe()
            return ""


def _gave_up(exc: LineError, attempts: int) -> str:
    return f"{exc.describe()}（{attempts} 回試行。応答トークンの期限内に送れませんでした）"
