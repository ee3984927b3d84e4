"""The pre-send checklist: shown on the compose screen before submit and again to the reviewer.

``run_checks`` returns ``CheckResult`` rows (ok / warn / error) in the order staff read them.
It reads a little from the database (allowed domains, recent sends) and asks LINE's validate
endpoint; it never writes. A LINE outage gives a warning, never an exception.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from .content import (
    CORRECTION_PLACEHOLDER,
    IMAGE_EXTENSIONS,
    MAX_TEXT_UTF16,
    canonical_json,
    check_messages,
    message_texts,
    utf16_length,
)
from .line.errors import LineError, LineTemporaryError
from .models import AllowedDomain, Broadcast, Category
from .schedule import JST, format_date, format_jst
from .selectors.moderation import draft_risk_checks

OK = "ok"
WARN = "warn"
ERROR = "error"
LEVEL_LABELS = {OK: "問題なし", WARN: "要確認", ERROR: "エラー"}

DEFAULT_FATIGUE_THRESHOLD = 3
DUPLICATE_WINDOW = dt.timedelta(hours=24)

# Personal data (policy 10): phone numbers (04-7167-1111, 090-1234-5678, 0471671111),
# e-mail addresses, and 12-digit numbers shaped like a マイナンバー.
PHONE_RE = re.compile(r"(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])|(?<!\d)0\d{9,10}(?!\d)")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
MY_NUMBER_RE = re.compile(r"(?<![\d-])(?:\d{12}|\d{4}[- ]\d{4}[- ]\d{4})(?![\d-])")
URL_RE = re.compile(r"https?://[^\s<>\"'「」（）()、。]+")


@dataclass(frozen=True)
class CheckResult:
    level: str  # ok / warn / error
    label: str
    detail: str = ""

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS[self.level]


def _halfwidth(text: str) -> str:
    return text.translate(str.maketrans("０１２３４５６７８９－ー−", "0123456789---"))


# --- one check each ------------------------------------------------------------------------


def check_line_validate(messages: list[dict[str, Any]], audience: str) -> CheckResult:
    """LINE's own validate endpoint for the API the audience will use."""
    from .line.gateway import get_gateway

    label = "LINE の事前確認"
    endpoint = "broadcast" if audience == Broadcast.Audience.ALL else "multicast"
    try:
        get_gateway().validate(audience=endpoint, messages=messages)
    except LineTemporaryError as exc:
        return CheckResult(
            WARN,
            label,
            f"LINE に接続できないため確認できませんでした（{exc.describe()}）。"
            "承認前にもう一度確認してください。",
        )
    except LineError as exc:
        return CheckResult(ERROR, label, f"LINE が受け付けません: {exc.describe()}")
    except Exception:  # the checklist must never take the page down
        return CheckResult(
            WARN, label, "LINE の事前確認を実行できませんでした。承認前にもう一度確認してください。"
        )
    return CheckResult(OK, label, "LINE が受け付けられる形式であることを確認しました。")


def check_text_lengths(messages: list[dict[str, Any]]) -> CheckResult:
    label = "文字数"
    lengths = [
        (index, utf16_length(str(m.get("text", ""))))
        for index, m in enumerate(messages, start=1)
        if m.get("type") == "text"
    ]
    if not lengths:
        return CheckResult(OK, label, "テキストメッセージはありません。")
    too_long = [(i, n) for i, n in lengths if n > MAX_TEXT_UTF16]
    summary = "、".join(f"メッセージ{i}: {n:,} / {MAX_TEXT_UTF16:,} 文字" for i, n in lengths)
    if too_long:
        return CheckResult(ERROR, label, f"上限を超えています（{summary}）。")
    return CheckResult(OK, label, summary)


def _image_urls(messages: list[dict[str, Any]]) -> list[tuple[int, str]]:
    urls = []
    for index, message in enumerate(messages, start=1):
        if message.get("type") == "image":
            urls += [
                (index, str(message.get(key, "")))
                for key in ("originalContentUrl", "previewImageUrl")
            ]
        elif message.get("type") == "template":
            thumb = (message.get("template") or {}).get("thumbnailImageUrl")
            if thumb:
                urls.append((index, str(thumb)))
    return urls


def check_images(messages: list[dict[str, Any]]) -> CheckResult:
    label = "画像の URL（https・JPEG/PNG）"
    urls = _image_urls(messages)
    if not urls:
        return CheckResult(OK, label, "画像はありません。")
    bad = []
    for index, url in urls:
        parsed = urlparse(url)
        if parsed.scheme != "https" or not parsed.netloc:
            bad.append(f"メッセージ{index}: https ではありません（{url}）")
        elif not parsed.path.lower().endswith(IMAGE_EXTENSIONS):
            bad.append(f"メッセージ{index}: .jpg / .png ではありません（{url}）")
    if bad:
        return CheckResult(ERROR, label, "／".join(bad))
    return CheckResult(OK, label, f"{len(urls)} 件の画像 URL はすべて https の JPEG/PNG です。")


def check_placeholder(messages: list[dict[str, Any]]) -> CheckResult | None:
    """A correction's pre-filled text keeps 「（正しい内容を入力してください）」 until the
    author writes the correct content: it may never go out (issue 13 item 8). Shown only when
    the placeholder is there (an ordinary broadcast has nothing to say about it)."""
    label = "訂正の文面"
    found = [
        index
        for index, message in enumerate(messages, start=1)
        if any(CORRECTION_PLACEHOLDER in text for text in message_texts([message]))
    ]
    if found:
        where = "、".join(f"メッセージ{i}" for i in found)
        return CheckResult(
            ERROR,
            label,
            f"{where}に「{CORRECTION_PLACEHOLDER}」が残っています。正しい内容に書き換えてください。",
        )
    return None


def message_links(messages: list[dict[str, Any]]) -> list[str]:
    """Every link a citizen could follow: URLs in text and the cards' URI actions."""
    links: list[str] = []
    for text in message_texts(messages):
        links += URL_RE.findall(text)
    for message in messages:
        if message.get("type") == "template":
            for action in (message.get("template") or {}).get("actions") or []:
                uri = str(action.get("uri", ""))
                if uri.startswith(("http://", "https://")):
                    links.append(uri)
    return list(dict.fromkeys(links))


def domain_allowed(host: str, allowed: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in allowed)


def check_links(messages: list[dict[str, Any]], allowed: Iterable[str]) -> CheckResult:
    label = "リンク先のドメイン"
    allowed = [d.lower().strip(".") for d in allowed]
    links = message_links(messages)
    if not links:
        return CheckResult(OK, label, "リンクはありません。")
    outside = [u for u in links if not domain_allowed(urlparse(u).hostname or "", allowed)]
    insecure = [u for u in links if u.startswith("http://")]
    problems = []
    if outside:
        problems.append("許可リストにないドメインへのリンクがあります: " + "、".join(outside))
    if insecure:
        problems.append("https ではないリンクがあります: " + "、".join(insecure))
    if problems:
        return CheckResult(WARN, label, "／".join(problems))
    return CheckResult(OK, label, f"{len(links)} 件のリンクはすべて許可されたドメインです。")


def find_personal_data(texts: Iterable[str]) -> list[str]:
    found: list[str] = []
    for raw in texts:
        text = _halfwidth(raw)
        found += [f"電話番号らしき文字列「{m}」" for m in PHONE_RE.findall(text)]
        found += [f"メールアドレス「{m}」" for m in EMAIL_RE.findall(text)]
        found += [f"12桁の番号（マイナンバーの可能性）「{m}」" for m in MY_NUMBER_RE.findall(text)]
    return list(dict.fromkeys(found))


def check_personal_data(messages: list[dict[str, Any]]) -> CheckResult:
    label = "個人情報の可能性（ポリシー10）"
    found = find_personal_data(message_texts(messages))
    if found:
        return CheckResult(
            WARN,
            label,
            "、".join(found) + "。個人の情報でないこと（市の代表番号など）を確認してください。",
        )
    return CheckResult(OK, label, "電話番号・メールアドレス・12桁の番号は見つかりませんでした。")


def _messages_key(messages: list[dict[str, Any]]) -> str:
    return canonical_json(messages)


def check_duplicates(
    messages: list[dict[str, Any]], *, now: dt.datetime, exclude_id: int | None
) -> CheckResult:
    label = "24時間以内の重複配信"
    since = now - DUPLICATE_WINDOW
    recent = Broadcast.objects.filter(
        Q(sent_at__gte=since) | Q(sending_started_at__gte=since),
        status__in=[Broadcast.Status.SENT, Broadcast.Status.SENDING],
    ).only("id", "title", "messages", "sent_at", "sending_started_at")
    if exclude_id:
        recent = recent.exclude(pk=exclude_id)
    key = _messages_key(messages)
    texts = {t.strip() for t in message_texts(messages) if t.strip()}
    duplicates = []
    for other in recent:
        same_content = _messages_key(other.messages) == key
        same_text = bool(texts & {t.strip() for t in message_texts(other.messages)})
        if same_content or same_text:
            when = other.sent_at or other.sending_started_at
            what = "同じ内容" if same_content else "同じ文面"
            duplicates.append(f"「{other.title}」（{format_jst(when)} 配信、{what}）")
    if duplicates:
        return CheckResult(
            WARN, label, "最近配信した内容と重複しています: " + "、".join(duplicates)
        )
    return CheckResult(OK, label, "24時間以内に同じ内容の配信はありません。")


def fatigue_threshold() -> int:
    return int(getattr(settings, "CATEGORY_DAILY_FATIGUE_THRESHOLD", DEFAULT_FATIGUE_THRESHOLD))


def check_fatigue(category_ids: list[int], *, day: dt.date, exclude_id: int | None) -> CheckResult:
    """Too many sends in one category on one day tire citizens out (they block the account)."""
    label = "カテゴリごとの1日の配信数"
    threshold = fatigue_threshold()
    if not category_ids:
        return CheckResult(OK, label, "カテゴリが選ばれていません。")
    start = dt.datetime.combine(day, dt.time(0), tzinfo=JST)
    end = start + dt.timedelta(days=1)
    on_day = Broadcast.objects.filter(
        Q(status=Broadcast.Status.SENT, sent_at__gte=start, sent_at__lt=end)
        | Q(
            status__in=[Broadcast.Status.SCHEDULED, Broadcast.Status.SENDING],
            scheduled_for__gte=start,
            scheduled_for__lt=end,
        )
    )
    if exclude_id:
        on_day = on_day.exclude(pk=exclude_id)
    counts = dict(
        Category.objects.filter(pk__in=category_ids, broadcast__in=on_day)
        .values_list("label")
        .annotate(n=Count("broadcast"))
    )
    over = {label_: n + 1 for label_, n in counts.items() if n + 1 > threshold}
    if over:
        return CheckResult(
            WARN,
            label,
            f"{format_date(day)}の配信数が目安（{threshold}件）を超えます: "
            + "、".join(f"{k} {v}件目" for k, v in over.items()),
        )
    return CheckResult(OK, label, f"{format_date(day)}の配信数は目安（{threshold}件）以内です。")


# --- the checklist -------------------------------------------------------------------------


def run_checks(
    *,
    messages: list[dict[str, Any]],
    audience: str,
    category_ids: Iterable[int],
    send_day: dt.date | None = None,
    exclude_id: int | None = None,
    now: dt.datetime | None = None,
    validate_with_line: bool = True,
) -> list[CheckResult]:
    now = now or timezone.now()
    category_ids = list(category_ids)
    results: list[CheckResult] = []
    problems = check_messages(messages)
    if problems:
        results.append(
            CheckResult(ERROR, "メッセージの形式", "／".join(p.message for p in problems))
        )
    if validate_with_line and messages and not problems:
        results.append(check_line_validate(messages, audience))
    placeholder = check_placeholder(messages)
    if placeholder is not None:
        results.append(placeholder)
    results += [
        check_text_lengths(messages),
        check_images(messages),
        check_links(messages, AllowedDomain.objects.values_list("domain", flat=True)),
        check_personal_data(messages),
        check_duplicates(messages, now=now, exclude_id=exclude_id),
        check_fatigue(
            category_ids, day=send_day or now.astimezone(JST).date(), exclude_id=exclude_id
        ),
    ]
    # Policy 6 applied to the city's own posts: one warning per word list hit, naming the item.
    results += draft_risk_checks(messages)
    return results


def broadcast_checks(
    broadcast: Broadcast, *, now: dt.datetime | None = None, validate_with_line: bool = True
) -> list[CheckResult]:
    """The checklist for a stored broadcast, on the day it would go out."""
    from .services.scheduling import schedule_for

    now = now or timezone.now()
    send_at = broadcast.scheduled_for
    if send_at is None:
        try:
            send_at = schedule_for(broadcast, now=now).at
        except ValueError:
            send_at = now
    results = run_checks(
        messages=broadcast.messages,
        audience=broadcast.audience,
        category_ids=[c.pk for c in broadcast.categories.all()],
        send_day=send_at.astimezone(JST).date(),
        exclude_id=broadcast.pk,
        now=now,
        validate_with_line=validate_with_line,
    )
    return results + variant_checks(broadcast, validate_with_line=validate_with_line)


def variant_checks(broadcast: Broadcast, *, validate_with_line: bool = True) -> list[CheckResult]:
    """The same checks for each language version (issue 16), named by its language. Versions
    go out as multicasts: LINE validates them for that API."""
    results: list[CheckResult] = []
    allowed = list(AllowedDomain.objects.values_list("domain", flat=True))
    for variant in broadcast.variants.select_related("language").order_by("language__sort_order"):
        name = f"{variant.language.label}版"
        problems = check_messages(variant.messages)
        if problems:
            results.append(
                CheckResult(
                    ERROR, f"{name}: メッセージの形式", "／".join(p.message for p in problems)
                )
            )
            continue
        checks = [check_links(variant.messages, allowed), check_personal_data(variant.messages)]
        if validate_with_line:
            checks.insert(0, check_line_validate(variant.messages, Broadcast.Audience.SUBSCRIBERS))
        results += [replace(r, label=f"{name}: {r.label}") for r in checks]
    return results


def has_errors(results: Iterable[CheckResult]) -> bool:
    return any(r.level == ERROR for r in results)
