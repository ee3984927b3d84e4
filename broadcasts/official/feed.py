"""JMA's Atom feeds (PULL型): bytes in, entries out. Pure, and as guarded as the messages.

An entry names one message: ``id``, ``title`` (the 電文 kind, e.g. 気象警報・注意報（Ｈ２７）),
``updated``, ``author`` (the issuing office), ``link`` (the message's URL) and ``content``
(its headline)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urljoin

from .jma import UnsafeXml, _child, _children, _datetime, _local, _text, safe_parse

# JMA's long feeds (extra_l.xml) hold days of entries: a few MB. Refuse anything larger.
MAX_FEED_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FeedEntry:
    entry_id: str
    title: str
    updated: dt.datetime | None
    author: str
    link: str
    content: str


def parse_feed(
    data: bytes, *, base_url: str = "", max_bytes: int = MAX_FEED_BYTES
) -> list[FeedEntry]:
    """Entries of an Atom feed, oldest first. Raises ``UnsafeXml`` like ``parse_message``."""
    root = safe_parse(data, max_bytes=max_bytes)
    if _local(root.tag) != "feed":
        raise UnsafeXml("Atom フィードではありません（feed 要素がありません）。")
    entries = []
    for entry in _children(root, "entry"):
        link = ""
        for candidate in _children(entry, "link"):
            if candidate.get("rel", "alternate") in ("alternate", "related", ""):
                link = candidate.get("href", "")
                break
        if not link:
            continue
        entries.append(
            FeedEntry(
                entry_id=_text(entry, "id") or link,
                title=_text(entry, "title"),
                updated=_datetime(_text(entry, "updated")),
                author=_text(_child(entry, "author"), "name"),
                link=urljoin(base_url, link) if base_url else link,
                content=_text(entry, "content"),
            )
        )
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    entries.sort(key=lambda e: e.updated or epoch)
    return entries
