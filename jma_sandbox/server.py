"""The JMA feed sandbox: JMA-style Atom feeds and messages on loopback, and a page to publish.

Stdlib only. URL space (as JMA's, under ``/developer/xml/``):

- ``/developer/xml/feed/extra.xml`` and ``eqvol.xml`` (the last ``SHORT_FEED_ENTRIES``
  entries) and ``extra_l.xml`` / ``eqvol_l.xml`` (all), with ``ETag`` / ``Last-Modified``
  and 304 answers to conditional requests;
- ``/developer/xml/data/<id>.xml``: one published message;
- ``/`` : the page listing the samples, with a 「公開」 button each, and what was published;
- ``POST /publish`` (form or ``name=``): publish one sample; ``POST /sandbox/fail``
  (``status=503&count=2``): answer the next requests with that status (outage drills);
  ``POST /sandbox/reset``: forget everything published.

Publishing moves every time in the message so that Head/ReportDateTime is the moment of
publication (as JMA would issue it now); everything else is the sample's."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import threading
import uuid
from dataclasses import dataclass
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

MESSAGES = Path(__file__).parent / "messages"
JST = ZoneInfo("Asia/Tokyo")
SHORT_FEED_ENTRIES = 30
EQVOL_CODES = ("VXSE", "VTSE", "VYSE", "VZSE")


@dataclass(frozen=True)
class Published:
    entry_id: str
    name: str
    title: str
    author: str
    content: str
    updated: dt.datetime
    feed: str  # "extra" or "eqvol"
    body: bytes


def _tag(data: str, name: str) -> str:
    found = re.search(rf"<{name}>([^<]*)</{name}>", data)
    return found.group(1).strip() if found else ""


ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)")


def restamp(data: bytes, when: dt.datetime) -> bytes:
    """The sample as if issued at ``when``: every time in it moved by the same amount, so
    that Head/ReportDateTime is ``when`` and the rest keeps its distance (an earthquake two
    minutes before its 震度速報, a warning's validity …)."""
    text = data.decode("utf-8")
    found = re.search(r"<ReportDateTime>([^<]*)</ReportDateTime>", text)
    if found is None:
        return data
    shift = when - dt.datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))

    def moved(match: re.Match[str]) -> str:
        value = match.group(0)
        original = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        new = (original + shift).replace(microsecond=0)
        if value.endswith("Z"):
            return new.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return new.astimezone(original.tzinfo).isoformat()

    return ISO_TIME.sub(moved, text).encode("utf-8")


class JmaSandboxState:
    def __init__(self, messages_dir: Path = MESSAGES) -> None:
        self.messages_dir = messages_dir
        self._lock = threading.Lock()
        self._published: list[Published] = []
        self._fail_status = 0
        self._fail_count = 0

    def samples(self) -> list[str]:
        return sorted(p.name for p in self.messages_dir.glob("*.xml"))

    def publish(self, name: str, *, when: dt.datetime | None = None) -> Published:
        if name not in self.samples():
            raise KeyError(name)
        when = when or dt.datetime.now(dt.UTC)
        body = restamp((self.messages_dir / name).read_bytes(), when)
        text = body.decode("utf-8")
        control_title = _tag(text, "Title")
        data_type = name.rsplit("_", 1)[-1].removesuffix(".xml")
        entry = Published(
            entry_id=uuid.uuid4().hex,
            name=name,
            title=control_title,
            author=_tag(text, "PublishingOffice") or _tag(text, "EditorialOffice"),
            content=_tag(text, "Text")[:200],
            updated=when,
            feed="eqvol" if data_type.startswith(EQVOL_CODES) else "extra",
            body=body,
        )
        with self._lock:
            self._published.append(entry)
        return entry

    def published(self) -> list[Published]:
        with self._lock:
            return list(self._published)

    def message(self, entry_id: str) -> Published | None:
        with self._lock:
            return next((p for p in self._published if p.entry_id == entry_id), None)

    def fail_next(self, status: int, count: int) -> None:
        with self._lock:
            self._fail_status, self._fail_count = status, count

    def take_failure(self) -> int:
        with self._lock:
            if self._fail_count <= 0:
                return 0
            self._fail_count -= 1
            return self._fail_status

    def reset(self) -> None:
        with self._lock:
            self._published.clear()
            self._fail_status = self._fail_count = 0

    def feed(self, name: str, base_url: str) -> tuple[bytes, str, dt.datetime | None]:
        long = name.endswith("_l")
        kind = name.removesuffix("_l")
        entries = [p for p in self.published() if p.feed == kind]
        if not long:
            entries = entries[-SHORT_FEED_ENTRIES:]
        updated = entries[-1].updated if entries else None
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
            'lang="ja">',
            f"<title>{'高頻度（地震火山）' if kind == 'eqvol' else '高頻度（随時）'}</title>",
            "<subtitle>JMAXML publishing feed（ローカルサンドボックス）</subtitle>",
            f"<updated>{(updated or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).isoformat()}</updated>",
            f"<id>{base_url}/developer/xml/feed/{name}.xml</id>",
        ]
        for p in reversed(entries):
            link = f"{base_url}/developer/xml/data/{p.entry_id}.xml"
            parts.append(
                "<entry>"
                f"<title>{escape(p.title)}</title>"
                f"<id>urn:uuid:{p.entry_id}</id>"
                f"<updated>{p.updated.isoformat()}</updated>"
                f"<author><name>{escape(p.author)}</name></author>"
                f'<link type="application/xml" href="{escape(link)}"/>'
                f'<content type="text">{escape(p.content)}</content>'
                "</entry>"
            )
        parts.append("</feed>")
        body = "".join(parts).encode("utf-8")
        return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', updated


class JmaSandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: JmaSandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        failure = state.take_failure() if path.startswith("/developer/") else 0
        if failure:
            self._send(failure, b"<html><body>Service Unavailable</body></html>", "text/html")
            return
        feed = re.fullmatch(r"/developer/xml/feed/(extra|eqvol)(_l)?\.xml", path)
        if feed:
            body, etag, updated = state.feed(feed.group(1) + (feed.group(2) or ""), self.server.url)
            last_modified = (
                format_datetime(updated.astimezone(dt.UTC), usegmt=True) if updated else ""
            )
            if self.headers.get("If-None-Match") == etag:
                self._send(304, b"", "application/atom+xml", {"ETag": etag})
                return
            headers = {"ETag": etag}
            if last_modified:
                headers["Last-Modified"] = last_modified
            self._send(200, body, "application/atom+xml; charset=utf-8", headers)
            return
        message = re.fullmatch(r"/developer/xml/data/([0-9a-f]{32})\.xml", path)
        if message:
            published = state.message(message.group(1))
            if published is None:
                self._send(404, b"not found", "text/plain")
                return
            self._send(200, published.body, "application/xml; charset=utf-8")
            return
        if path == "/":
            self._send(200, self.server.page().encode("utf-8"), "text/html; charset=utf-8")
            return
        self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
        if path == "/publish":
            try:
                published = state.publish(form.get("name", ""))
            except KeyError:
                self._send(400, "そのサンプルはありません。".encode(), "text/plain; charset=utf-8")
                return
            if form.get("redirect"):
                self._send(303, b"", "text/plain", {"Location": "/"})
                return
            self._send(
                200,
                f'{{"id": "{published.entry_id}", "feed": "{published.feed}"}}'.encode(),
                "application/json",
            )
            return
        if path == "/sandbox/fail":
            state.fail_next(int(form.get("status", "503")), int(form.get("count", "1")))
            self._send(200, b"{}", "application/json")
            return
        if path == "/sandbox/reset":
            state.reset()
            self._send(200, b"{}", "application/json")
            return
        self._send(404, b"not found", "text/plain")


class JmaSandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, state: JmaSandboxState, verbose: bool = False):
        super().__init__((host, port), JmaSandboxHandler)
        self.state = state
        self.verbose = verbose

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def page(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td><form method='post' action='/publish'>"
            f"<input type='hidden' name='name' value='{html.escape(name)}'>"
            f"<input type='hidden' name='redirect' value='1'>"
            f"<button type='submit' aria-label='{html.escape(name)} を公開'>公開</button>"
            "</form></td></tr>"
            for name in self.state.samples()
        )
        published = "".join(
            f"<li>{p.updated.astimezone(JST):%m/%d %H:%M:%S} {html.escape(p.title)}"
            f"（{html.escape(p.name)}）→ {p.feed}.xml</li>"
            for p in reversed(self.state.published())
        )
        return (
            "<!doctype html><html lang='ja'><head><meta charset='utf-8'>"
            "<title>気象庁フィード サンドボックス</title>"
            "<style>body{font-family:sans-serif;margin:2rem;color:#1a1a1a}"
            "td{padding:.25rem .75rem}button{font-size:1rem}</style></head><body>"
            "<h1>気象庁フィード サンドボックス（開発用）</h1>"
            "<p>気象庁のサンプル電文と、それをもとに柏市向けに作った電文です"
            "（出典：気象庁ホームページ）。「公開」を押すと、その電文がいま発表されたものとして"
            "フィード（extra.xml / eqvol.xml）に載ります。</p>"
            f"<h2>サンプル電文</h2><table>{rows}</table>"
            f"<h2>公開した電文</h2><ul>{published or '<li>まだありません</li>'}</ul>"
            "</body></html>"
        )


class JmaSandbox:
    """Start and stop the server in a thread (tests, bench, ``python -m jma_sandbox``)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, messages_dir: Path = MESSAGES
    ) -> None:
        self.state = JmaSandboxState(messages_dir)
        self.server = JmaSandboxServer(host, port, self.state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def feed_urls(self) -> list[str]:
        return [
            f"{self.url}/developer/xml/feed/eqvol.xml",
            f"{self.url}/developer/xml/feed/extra.xml",
        ]

    def start(self) -> JmaSandbox:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
