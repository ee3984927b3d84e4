"""LINE message content: canonical form, the approval hash, and the checks LINE enforces.

Pure functions (no ORM), shared by forms, services and the pre-send checklist."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

MAX_MESSAGES = 5
MAX_TEXT_UTF16 = 5000
MAX_ALT_TEXT = 400
MAX_URL_LENGTH = 2000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DRILL_MARKER = "【訓練】"
# Left in a correction's pre-filled text for the author to replace; it may never go out.
CORRECTION_PLACEHOLDER = "（正しい内容を入力してください）"


def utf16_length(text: str) -> int:
    """LINE counts text in UTF-16 code units: an emoji outside the BMP counts 2."""
    return len(text.encode("utf-16-le")) // 2


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(
    *,
    messages: list[dict[str, Any]],
    audience: str,
    category_codes: list[str],
    requested_at_iso: str | None,
    priority: str,
    notification_disabled: bool,
    kind: str,
    targeting: dict[str, Any] | None = None,
) -> str:
    """The hash an approval is bound to: exactly what will be sent, to whom, and when.
    ``targeting``: areas, age groups, languages and language versions (issue 16); left out
    when there are none, so earlier approvals keep their hash."""
    payload: dict[str, Any] = {
        "messages": messages,
        "audience": audience,
        "categories": sorted(category_codes),
        "requested_at": requested_at_iso,
        "priority": priority,
        "notification_disabled": notification_disabled,
        "kind": kind,
    }
    if targeting:
        payload["targeting"] = targeting
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Problem:
    """A reason a message cannot be sent, in Japanese, with where it is."""

    field: str
    message: str


def _https(url: Any) -> bool:
    return isinstance(url, str) and urlparse(url).scheme == "https" and bool(urlparse(url).netloc)


def _check_uri_action(action: Any, where: str) -> list[Problem]:
    if not isinstance(action, dict):
        return [Problem(where, "アクションの形式が不正です。")]
    problems = []
    if not str(action.get("label", "")).strip():
        problems.append(Problem(where, "ボタンの表示名を入力してください。"))
    elif len(action["label"]) > 20:
        problems.append(Problem(where, "ボタンの表示名は20文字以内にしてください。"))
    if action.get("type") == "uri":
        uri = action.get("uri", "")
        if not _https(uri) and not str(uri).startswith("tel:"):
            problems.append(Problem(where, "リンク先は https:// で始まる URL にしてください。"))
        elif len(uri) > 1000:
            problems.append(Problem(where, "リンク先の URL が長すぎます（1000文字以内）。"))
    return problems


def check_message(message: Any, index: int) -> list[Problem]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return [Problem(where, "メッセージの形式が不正です。")]
    kind = message.get("type")
    problems: list[Problem] = []
    if kind == "text":
        text = message.get("text", "")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(f"{where}.text", "本文を入力してください。"))
        elif utf16_length(text) > MAX_TEXT_UTF16:
            problems.append(
                Problem(
                    f"{where}.text",
                    f"本文が長すぎます（{utf16_length(text):,} / {MAX_TEXT_UTF16:,} 文字。"
                    "絵文字は2文字として数えます）。",
                )
            )
    elif kind == "image":
        for key in ("originalContentUrl", "previewImageUrl"):
            url = message.get(key, "")
            if not _https(url):
                problems.append(
                    Problem(f"{where}.{key}", "画像は https:// の URL で指定してください。")
                )
            elif not urlparse(url).path.lower().endswith(IMAGE_EXTENSIONS):
                problems.append(
                    Problem(
                        f"{where}.{key}", "画像は JPEG または PNG（.jpg / .png）にしてください。"
                    )
                )
            elif len(url) > MAX_URL_LENGTH:
                problems.append(Problem(f"{where}.{key}", "画像の URL が長すぎます。"))
    elif kind == "sticker":
        for key in ("packageId", "stickerId"):
            if not str(message.get(key, "")).isdigit():
                problems.append(Problem(f"{where}.{key}", "スタンプのIDは数字で指定してください。"))
    elif kind == "template":
        alt = str(message.get("altText", ""))
        if not alt.strip():
            problems.append(Problem(f"{where}.altText", "代替テキストを入力してください。"))
        elif len(alt) > MAX_ALT_TEXT:
            problems.append(
                Problem(f"{where}.altText", "代替テキストは400文字以内にしてください。")
            )
        template = message.get("template") or {}
        text = str(template.get("text", ""))
        if not text.strip():
            problems.append(Problem(f"{where}.template.text", "カードの本文を入力してください。"))
        limit = 60 if template.get("title") or template.get("thumbnailImageUrl") else 160
        if template.get("type") == "confirm":
            limit = 240
        if len(text) > limit:
            problems.append(
                Problem(f"{where}.template.text", f"カードの本文は{limit}文字以内にしてください。")
            )
        if template.get("thumbnailImageUrl") and not _https(template["thumbnailImageUrl"]):
            problems.append(
                Problem(
                    f"{where}.template.thumbnailImageUrl",
                    "画像は https:// の URL で指定してください。",
                )
            )
        actions = template.get("actions") or []
        max_actions = 2 if template.get("type") == "confirm" else 4
        if not actions:
            problems.append(
                Problem(f"{where}.template.actions", "ボタンを1つ以上追加してください。")
            )
        elif len(actions) > max_actions:
            problems.append(
                Problem(f"{where}.template.actions", f"ボタンは{max_actions}個までです。")
            )
        for a_index, action in enumerate(actions):
            problems += _check_uri_action(action, f"{where}.template.actions[{a_index}]")
    else:
        problems.append(Problem(f"{where}.type", "この種類のメッセージには対応していません。"))
    return problems


def check_messages(messages: Any) -> list[Problem]:
    """Every reason LINE would refuse these messages, in Japanese."""
    if not isinstance(messages, list) or not messages:
        return [Problem("messages", "メッセージを1件以上作成してください。")]
    if len(messages) > MAX_MESSAGES:
        return [Problem("messages", f"メッセージは1回の配信につき{MAX_MESSAGES}件までです。")]
    problems: list[Problem] = []
    for index, message in enumerate(messages):
        problems += check_message(message, index)
    return problems


def has_drill_marker(messages: list[dict[str, Any]]) -> bool:
    """Whether any text a citizen would read carries 【訓練】."""
    return any(DRILL_MARKER in text for text in message_texts(messages))


def message_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The human-readable text in messages (for search, checks and markers)."""
    texts = []
    for message in messages:
        if message.get("type") == "text":
            texts.append(str(message.get("text", "")))
        elif message.get("type") == "template":
            template = message.get("template") or {}
            texts += [
                str(message.get("altText", "")),
                str(template.get("title", "")),
                str(template.get("text", "")),
            ]
    return [t for t in texts if t]
