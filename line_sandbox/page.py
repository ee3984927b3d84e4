"""The sandbox's HTML pages: what each test follower received, the request log and the faults.

Self-contained (inline CSS, no scripts, no external stylesheets). Every value that came from a
request is passed through ``html.escape``; link targets from messages are only emitted for
``http(s)``/``tel`` URLs so a ``javascript:`` URI in a message cannot become a live link.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from .records import JST, Delivery, Follower, InboxItem
from .state import SandboxState
from .webhook import tappable_postbacks

TITLE = "LINE サンドボックス — 市民に届いた内容"
WEEKDAYS = "月火水木金土日"
ENDPOINT_LABELS = {
    "broadcast": "ブロードキャスト",
    "multicast": "マルチキャスト",
    "push": "プッシュ",
    "narrowcast": "ナローキャスト",
    "reply": "応答",
}
INBOX_PREVIEW = 3

CSS = """
body{font-family:"Noto Sans JP","Hiragino Sans",Meiryo,sans-serif;margin:0;color:#1a1a1c;
background:#f1f1f4;line-height:1.6}
header{background:#05602b;color:#fff;padding:.75rem 1.5rem}
header h1{margin:0;font-size:1.35rem}
main{padding:1rem 1.5rem;max-width:80rem}
section{background:#fff;border-radius:8px;padding:1rem 1.25rem;margin-bottom:1rem}
h2{font-size:1.1rem;margin:.2rem 0 .75rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
code{font-size:.8rem;word-break:break-all}
.follower{border:1px solid #ddd;border-radius:8px;padding:.5rem .75rem;margin:.5rem 0}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;font-size:.75rem;margin-left:.3rem}
.staff{background:#e0ecff;color:#003a8c}.blocked{background:#ffe3e3;color:#8c0000}
.bubble{background:#e8f8ee;border-radius:12px;padding:.4rem .7rem;margin:.35rem 0;
max-width:40rem}
.bubble .meta{font-size:.72rem;color:#555}
.text{white-space:pre-wrap;word-break:break-word}
.thumb{max-width:160px;max-height:160px;border:1px solid #ccc;display:block}
.status-ok{color:#05602b}.status-err{color:#a00000;font-weight:bold}
details pre{white-space:pre-wrap;font-size:.75rem;background:#f6f6f6;padding:.4rem}
nav a{color:#fff;margin-right:1rem}
.tap-panel{border:1px solid #06c755;border-radius:8px;padding:.5rem .75rem;margin:.5rem 0}
.taps{list-style:none;padding:0;margin:.25rem 0;display:flex;flex-wrap:wrap;gap:.4rem}
.taps form{margin:0}
.tap{font:inherit;min-height:44px;padding:.3rem .8rem;border:1px solid #05602b;
border-radius:22px;background:#fff;color:#05602b;cursor:pointer}
.tap:focus{outline:3px solid #003a8c;outline-offset:2px}
h3{font-size:1rem;margin:.5rem 0 .25rem}
.notice{background:#e8f8ee;border-left:4px solid #05602b;padding:.4rem .6rem}
"""


def jst(moment: datetime | None) -> str:
    """``12/1(月) 8:30:05`` in Asia/Tokyo."""
    if moment is None:
        return "-"
    local = moment.astimezone(JST)
    return (
        f"{local.month}/{local.day}({WEEKDAYS[local.weekday()]}) "
        f"{local.hour}:{local.minute:02d}:{local.second:02d}"
    )


def _safe_href(url: Any) -> str | None:
    if isinstance(url, str) and url.startswith(("https://", "http://", "tel:")):
        return escape(url, quote=True)
    return None


def _link(url: Any, label: str | None = None) -> str:
    text = escape(str(label if label is not None else url))
    href = _safe_href(url)
    if href is None:
        return text
    return f'<a href="{href}" rel="noopener noreferrer" target="_blank">{text}</a>'


def _action(action: Any) -> str:
    if not isinstance(action, dict):
        return ""
    label = escape(str(action.get("label", "")))
    kind = action.get("type")
    if kind == "uri":
        return f"[{label}] → {_link(action.get('uri'))}"
    if kind == "postback":
        return f"[{label}] postback <code>{escape(str(action.get('data', '')))}</code>"
    if kind == "message":
        return f"[{label}] 送信: {escape(str(action.get('text', '')))}"
    return f"[{label}] {escape(str(kind))}"


def _actions(actions: Any) -> str:
    if not isinstance(actions, list) or not actions:
        return ""
    return "<ul>" + "".join(f"<li>{_action(a)}</li>" for a in actions) + "</ul>"


def _template(template: Any) -> str:
    if not isinstance(template, dict):
        return ""
    kind = template.get("type")
    parts = [f"<div>テンプレート（{escape(str(kind))}）</div>"]
    thumb = _safe_href(template.get("thumbnailImageUrl"))
    if thumb:
        parts.append(f'<img class="thumb" src="{thumb}" alt="" loading="lazy">')
    if template.get("title"):
        parts.append(f"<strong>{escape(str(template['title']))}</strong>")
    if template.get("text"):
        parts.append(f'<div class="text">{escape(str(template["text"]))}</div>')
    parts.append(_actions(template.get("actions")))
    for i, column in enumerate(template.get("columns") or [], start=1):
        if isinstance(column, dict):
            title = escape(str(column.get("title") or ""))
            text = escape(str(column.get("text") or ""))
            inner = _actions(column.get("actions")) or _action(column.get("action"))
            parts.append(f"<div>列 {i}: <strong>{title}</strong> {text}{inner}</div>")
    return "".join(parts)


def render_message(message: dict[str, Any]) -> str:
    """One message object, readable (HTML-escaped)."""
    kind = message.get("type")
    if kind in ("text", "textV2"):
        return f'<div class="text">{escape(str(message.get("text", "")))}</div>'
    if kind == "image":
        preview = _safe_href(message.get("previewImageUrl"))
        original = _safe_href(message.get("originalContentUrl"))
        img = f'<img class="thumb" src="{preview}" alt="画像" loading="lazy">' if preview else ""
        if original:
            return (
                f'<a href="{original}" rel="noopener noreferrer" target="_blank">'
                f"{img or '画像'}</a>"
            )
        return img or "画像"
    if kind == "sticker":
        return (
            f"スタンプ（package {escape(str(message.get('packageId')))} / "
            f"sticker {escape(str(message.get('stickerId')))}）"
        )
    if kind in ("video", "audio"):
        label = "動画" if kind == "video" else "音声"
        return f"{label}: {_link(message.get('originalContentUrl'))}"
    if kind == "location":
        return (
            f"位置情報: {escape(str(message.get('title', '')))} "
            f"{escape(str(message.get('address', '')))}"
        )
    if kind == "template":
        return f"<div>代替テキスト: {escape(str(message.get('altText', '')))}</div>" + _template(
            message.get("template")
        )
    dump = escape(json.dumps(message, ensure_ascii=False, indent=1))
    alt = escape(str(message.get("altText", "")))
    return f"{escape(str(kind))}: {alt}<details><summary>JSON</summary><pre>{dump}</pre></details>"


def _bubble(item: InboxItem) -> str:
    silent = "（通知なし）" if item.notification_disabled else ""
    return (
        '<div class="bubble"><div class="meta">'
        f"{jst(item.received_at)} · {ENDPOINT_LABELS.get(item.kind, item.kind)}{silent}"
        f" · request <code>{escape(item.request_id)}</code></div>"
        f"{render_message(item.message)}</div>"
    )


def _badges(follower: Follower) -> str:
    out = ""
    if follower.staff:
        out += '<span class="badge staff">職員テスト受信者</span>'
    if follower.blocked:
        out += '<span class="badge blocked">ブロック中</span>'
    return out


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape(TITLE)}</h1><nav><a href="/">一覧</a></nav></header>'
        f"<main>{body}</main></body></html>"
    )


def _deliveries_table(deliveries: list[Delivery]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{jst(d.accepted_at)}</td>"
        f"<td>{escape(ENDPOINT_LABELS.get(d.kind, d.kind))}</td>"
        f"<td><code>{escape(d.request_id)}</code></td>"
        f"<td><code>{escape(d.retry_key or '-')}</code></td>"
        f"<td>{len(d.recipients)} 人</td><td>{len(d.messages)} 件</td>"
        f"<td>{d.status}</td>"
        f"<td><code>{escape(', '.join(d.aggregation_units) or '-')}</code></td></tr>"
        for d in reversed(deliveries[-50:])
    )
    return (
        "<table><thead><tr><th>受付</th><th>種類</th><th>request id</th><th>retry key</th>"
        "<th>宛先</th><th>メッセージ</th><th>返した status</th><th>集計単位</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=8>まだ送信はありません</td></tr>'}</tbody></table>"
    )


def render_index(state: SandboxState) -> str:
    followers = state.followers()
    followers.sort(key=lambda f: (not f.staff, f.blocked))
    deliveries = state.deliveries()
    quota = state.quota()
    blocks = sum(1 for f in followers if f.blocked)
    staff = sum(1 for f in followers if f.staff)
    quota_text = "上限なし（type: none）" if quota.type == "none" else f"上限 {quota.value} 通"
    summary = (
        "<section><h2>概要</h2><ul>"
        f"<li>友だち {len(followers)} 人（うち職員テスト受信者 {staff} 人、ブロック中 {blocks} 人）</li>"
        f"<li>受け付けた送信 {len(deliveries)} 件</li>"
        f"<li>今月の配信数 {state.quota_consumption()} 通 / {escape(quota_text)}</li>"
        f"<li>デフォルトリッチメニュー: <code>{escape(state.default_rich_menu() or 'なし')}</code></li>"
        f"<li>Webhook 送信先: <code>{escape(state.webhook_url or '未設定')}</code></li>"
        "</ul></section>"
    )
    cards = []
    for follower in followers:
        inbox = state.inbox(follower.user_id)
        latest = "".join(_bubble(i) for i in reversed(inbox[-INBOX_PREVIEW:]))
        more = (
            f'<div><a href="/follower/{quote(follower.user_id)}">ほか {len(inbox) - INBOX_PREVIEW}'
            " 件を見る</a></div>"
            if len(inbox) > INBOX_PREVIEW
            else ""
        )
        cards.append(
            '<div class="follower">'
            f'<a href="/follower/{quote(follower.user_id)}"><strong>'
            f"{escape(follower.display_name)}</strong></a>{_badges(follower)} "
            f"<code>{escape(follower.user_id)}</code> · 受信 {len(inbox)} 件"
            f"{latest}{more}</div>"
        )
    followers_html = (
        f"<section><h2>友だちと受信内容（新しい順）</h2>{''.join(cards) or '友だちはいません'}"
        "</section>"
    )
    requests_rows = "".join(
        "<tr>"
        f"<td>{jst(r.time)}</td><td>{escape(r.method)}</td><td><code>{escape(r.path)}</code></td>"
        f'<td class="{"status-ok" if r.status < 400 else "status-err"}">{r.status or "切断"}</td>'
        f"<td><code>{escape(r.request_id)}</code></td>"
        f"<td><code>{escape(r.retry_key or '-')}</code></td>"
        f"<td>{r.duration_ms} ms</td><td>{escape(r.note)}</td></tr>"
        for r in state.requests(100)
    )
    requests_html = (
        "<section><h2>API リクエストログ（新しい順、100 件まで）</h2><table><thead><tr>"
        "<th>時刻</th><th>method</th><th>path</th><th>status</th><th>request id</th>"
        "<th>retry key</th><th>処理時間</th><th>メッセージ</th></tr></thead>"
        f"<tbody>{requests_rows or '<tr><td colspan=8>まだありません</td></tr>'}</tbody></table>"
        "</section>"
    )
    fault_rows = "".join(
        f"<tr><td><code>{escape(f.method or '*')} {escape(f.path)}</code></td>"
        f"<td>{escape(f.mode)}</td><td>{f.status}</td>"
        f"<td>{'無制限' if f.count is None else f.count}</td><td>{f.latency_ms} ms</td>"
        f"<td><code>{escape(json.dumps(f.response_body(), ensure_ascii=False))}</code></td></tr>"
        for f in state.faults()
    )
    limits = ", ".join(
        f"{escape(k)}: {v[0]} 回 / {v[1]:g} 秒" for k, v in sorted(state.rate_limits.items())
    )
    faults_html = (
        "<section><h2>障害設定</h2><table><thead><tr><th>対象</th><th>mode</th>"
        "<th>status</th><th>残り回数</th><th>遅延</th><th>応答本文</th></tr></thead>"
        f"<tbody>{fault_rows or '<tr><td colspan=6>障害は設定されていません</td></tr>'}"
        f"</tbody></table><p>レート制限: {limits or 'なし'}</p></section>"
    )
    deliveries_html = (
        "<section><h2>送信ログ（新しい順、50 件まで）</h2>"
        f"{_deliveries_table(deliveries)}</section>"
    )
    return _document(
        TITLE, summary + followers_html + deliveries_html + requests_html + faults_html
    )


def render_follower(state: SandboxState, user_id: str, notice: str = "") -> str | None:
    follower = state.follower(user_id)
    if follower is None:
        return None
    inbox = state.inbox(user_id)
    bubbles = "".join(_bubble(i) for i in reversed(inbox)) or "<p>まだ何も届いていません</p>"
    body = (
        f"<section><h2>{escape(follower.display_name)}{_badges(follower)}</h2>"
        f"<p><code>{escape(follower.user_id)}</code> · 受信 {len(inbox)} 件（新しい順）</p>"
        f"{_notice(notice)}{_taps(state, follower)}{bubbles}</section>"
    )
    return _document(f"{follower.display_name} — {TITLE}", body)


TAP_PLACES = (
    ("richmenu", "リッチメニュー"),
    ("quick_reply", "クイックリプライ（最新のメッセージ）"),
    ("button", "メッセージ内のボタン"),
)


def _notice(notice: str) -> str:
    return f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""


def _taps(state: SandboxState, follower: Follower) -> str:
    """The postback buttons this follower's LINE app shows, as forms: tapping one posts the
    postback event to the app's webhook as LINE would."""
    if follower.blocked:
        return ""
    tappable = tappable_postbacks(state, follower.user_id)
    groups = []
    action = f"/follower/{quote(follower.user_id)}/tap"
    for where, heading in TAP_PLACES:
        buttons = "".join(
            f'<li><form method="post" action="{escape(action)}">'
            f'<input type="hidden" name="data" value="{escape(t.data)}">'
            f'<button type="submit" class="tap">{escape(t.label or t.data)}</button></form></li>'
            for t in dict.fromkeys(t for t in tappable if t.where == where)
        )
        if buttons:
            groups.append(f'<h3>{escape(heading)}</h3><ul class="taps">{buttons}</ul>')
    if not groups:
        return ""
    return (
        '<div class="tap-panel"><h3 class="tap-title">LINE アプリで押せるボタン</h3>'
        "<p>押すと、LINE と同じ postback イベントをアプリの Webhook に送ります。</p>"
        f"{''.join(groups)}</div>"
    )
