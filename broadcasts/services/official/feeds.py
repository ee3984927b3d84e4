"""Polling JMA's Atom feeds (every 60 s from beat) and the IMAP mailbox.

Each feed is fetched with ``If-None-Match`` / ``If-Modified-Since``; only entries whose
message URL has not been received are fetched, and each goes through
``official_message_ingest`` (stored once by its key whatever the URL). The feed's validators
are kept only when every new entry was fetched, so a message that failed (a 5xx, a timeout)
is fetched again at the next poll; after an outage of the app the ``_l`` long feed is read
too, so nothing published meanwhile is lost. A failure is logged and recorded on the feed's
row (運用状況), never raised: a worker never dies of a feed."""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from django.conf import settings

from ...models import OfficialFeed, OfficialMessage
from ...official.feed import MAX_FEED_BYTES, parse_feed
from ...official.jma import MAX_MESSAGE_BYTES, UnsafeXml
from .ingest import official_mail_ingest, official_message_ingest

logger = logging.getLogger("broadcasts.official")

# After this long without a successful poll, the long feed (_l) is read as well.
CATCH_UP_AFTER = dt.timedelta(minutes=3)
FETCH_CONCURRENCY = 4


class FetchError(Exception):
    """The feed or message could not be fetched (network, timeout, HTTP error, too large)."""


@dataclass(frozen=True)
class Response:
    status: int  # 200 or 304
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""


Fetcher = Callable[..., Response]


def http_get(
    url: str, *, etag: str = "", last_modified: str = "", max_bytes: int = MAX_MESSAGE_BYTES
) -> Response:
    """GET with conditional headers, a timeout and a size cap (never reads more)."""
    if urlparse(url).scheme not in ("http", "https"):
        raise FetchError(f"http(s) 以外の URL は取得しません: {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "kashiwa-line-broadcasts"})  # noqa: S310
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    try:
        with urllib.request.urlopen(request, timeout=settings.JMA_FEED_TIMEOUT_SECONDS) as reply:  # noqa: S310
            body = reply.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchError(f"大きすぎる応答です（上限 {max_bytes:,} バイト）: {url}")
            return Response(
                status=reply.status,
                body=body,
                etag=reply.headers.get("ETag", "") or "",
                last_modified=reply.headers.get("Last-Modified", "") or "",
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Response(status=304, etag=etag, last_modified=last_modified)
        raise FetchError(f"HTTP {exc.code}: {url}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise FetchError(f"接続できません（{exc}）: {url}") from exc


def long_feed_url(url: str) -> str:
    """extra.xml → extra_l.xml (JMA's longer history)."""
    if url.endswith(".xml") and not url.endswith("_l.xml"):
        return url[: -len(".xml")] + "_l.xml"
    return url


@dataclass
class FeedPollResult:
    feeds: int = 0
    not_modified: int = 0
    new_entries: int = 0
    created: list[int] = field(default_factory=list)  # OfficialMessage ids stored this poll
    failures: list[str] = field(default_factory=list)
    fetched_at: dict[str, dt.datetime] = field(default_factory=dict)  # feed url → when read


def official_feeds_poll(
    *,
    now_fn: Callable[[], dt.datetime],
    urls: list[str] | None = None,
    fetch: Fetcher = http_get,
) -> FeedPollResult:
    """Poll every configured feed once. Never raises for a feed's or a message's failure."""
    result = FeedPollResult()
    for url in settings.JMA_FEED_URLS if urls is None else urls:
        result.feeds += 1
        feed, _ = OfficialFeed.objects.get_or_create(url=url)
        now = now_fn()
        catch_up = feed.last_success_at is None or now - feed.last_success_at > CATCH_UP_AFTER
        if catch_up and long_feed_url(url) != url:
            # The long feed first: whatever was published while the app was down.
            ok = _poll_one(
                long_feed_url(url), feed, result, now_fn=now_fn, fetch=fetch, conditional=False
            )
            if not ok:
                continue  # the short feed's validators must not move past what was missed
        _poll_one(url, feed, result, now_fn=now_fn, fetch=fetch, conditional=True)
    return result


def _poll_one(
    url: str,
    feed: OfficialFeed,
    result: FeedPollResult,
    *,
    now_fn: Callable[[], dt.datetime],
    fetch: Fetcher,
    conditional: bool,
) -> bool:
    """Read one feed (the configured one, conditionally; or its long variant, in full) and
    ingest its unseen entries. Health is recorded on the configured feed's row."""
    now = now_fn()
    try:
        response = fetch(
            url,
            etag=feed.etag if conditional else "",
            last_modified=feed.last_modified if conditional else "",
            max_bytes=MAX_FEED_BYTES,
        )
        result.fetched_at[url] = now_fn()
        if response.status == 304:
            result.not_modified += 1
            _feed_ok(feed, now=now, etag=feed.etag, last_modified=feed.last_modified)
            return True
        entries = parse_feed(response.body, base_url=url)
    except (FetchError, UnsafeXml) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        _feed_failed(feed, url, reason, now=now, result=result)
        return False
    links = [e.link for e in entries]
    seen = set(OfficialMessage.objects.filter(url__in=links).values_list("url", flat=True))
    unseen = [e for e in entries if e.link not in seen]
    # The offices that issue Kashiwa's information first (a stable sort: each series keeps
    # its order), so a draft for Kashiwa does not wait behind the whole country's messages.
    first = set(settings.JMA_PRIORITY_OFFICES)
    unseen.sort(key=lambda e: e.author not in first)
    result.new_entries += len(unseen)
    complete = True
    # Messages are fetched a few at a time (network latency overlaps); each is ingested in
    # order on this thread, which alone touches the database.
    with ThreadPoolExecutor(max_workers=FETCH_CONCURRENCY) as pool:
        pending = [
            (entry, pool.submit(fetch, entry.link, max_bytes=MAX_MESSAGE_BYTES)) for entry in unseen
        ]
        for entry, future in pending:
            try:
                message = future.result()
            except FetchError as exc:
                complete = False
                _feed_failed(feed, url, f"電文を取得できません: {exc}", now=now, result=result)
                continue
            ingested = official_message_ingest(
                data=message.body, source=OfficialMessage.Source.FEED, url=entry.link, now=now_fn()
            )
            if ingested.created:
                result.created.append(ingested.message.pk)
    if complete and conditional:
        _feed_ok(feed, now=now, etag=response.etag, last_modified=response.last_modified)
    elif not complete:
        # Keep the old validators: the next poll reads the feed again and retries.
        feed.last_polled_at = now
        feed.save(update_fields=["last_polled_at"])
    return complete


def _feed_ok(feed: OfficialFeed, *, now: dt.datetime, etag: str, last_modified: str) -> None:
    feed.etag = etag[:300]
    feed.last_modified = last_modified[:100]
    feed.last_polled_at = now
    feed.last_success_at = now
    feed.consecutive_failures = 0
    feed.save(
        update_fields=[
            "etag",
            "last_modified",
            "last_polled_at",
            "last_success_at",
            "consecutive_failures",
        ]
    )


def _feed_failed(
    feed: OfficialFeed, url: str, reason: str, *, now: dt.datetime, result: FeedPollResult
) -> None:
    logger.warning("防災情報フィードの取得に失敗しました: %s（%s）", reason, url)
    result.failures.append(f"{url}: {reason}")
    feed.last_polled_at = now
    feed.last_error = reason[:2000]
    feed.last_error_at = now
    feed.consecutive_failures += 1
    feed.save(
        update_fields=["last_polled_at", "last_error", "last_error_at", "consecutive_failures"]
    )


def imap_poll(*, now_fn: Callable[[], dt.datetime], imap_url: str | None = None) -> int:
    """Read unseen mails from ``IMAP_URL`` (imaps://user:password@host[:port]/MAILBOX) and
    ingest each; returns how many were read. Failures are logged, never raised."""
    imap_url = imap_url if imap_url is not None else settings.IMAP_URL
    if not imap_url:
        return 0
    parts = urlparse(imap_url)
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    try:
        client_class = imaplib.IMAP4_SSL if parts.scheme == "imaps" else imaplib.IMAP4
        with client_class(
            parts.hostname or "", parts.port or (993 if parts.scheme == "imaps" else 143)
        ) as client:
            client.login(unquote(parts.username or ""), unquote(parts.password or ""))
            client.select(mailbox)
            _status, found = client.search(None, "UNSEEN")
            count = 0
            for number in (found[0] or b"").split():
                _status, fetched = client.fetch(number, "(RFC822)")
                for item in fetched:
                    if isinstance(item, tuple):
                        official_mail_ingest(data=item[1], now=now_fn())
                        count += 1
            return count
    except (imaplib.IMAP4.error, OSError) as exc:
        logger.warning("防災メール（IMAP）の取得に失敗しました: %s", exc)
        return 0
