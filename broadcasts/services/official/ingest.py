"""Official information in, emergency drafts out (issue 15, DESIGN.md §7b).

A message (JMA XML from a feed or a file, or an allow-listed e-mail) is stored once, keyed by
data type + EventID + Serial + InfoType (a unique constraint: two polls, two beats or a
restart never store or process it twice), matched against the admin's rules, and becomes:

* a new draft, submitted through ``broadcast_submit`` exactly as a drafter's submission (so
  an emergency draft waits for a supervisor's approval with the typed count and a fresh
  second factor, and whatever fires on submission fires for it too);
* an update of the still-pending draft of the same series (a later serial, an upgrade, a
  解除 of a warning that never went out);
* a linked follow-up of a draft already approved or sent (続報, 解除, JMA's 訂正 → 訂正,
  JMA's 取消 → 取消);
* the cancellation of a still-pending draft (JMA's 取消);
* or nothing, with the reason (訓練, another area, below the threshold …).

The drafts' author is the system account (``permissions.SYSTEM_AUTHOR_USERNAME``): no person
wrote them, so any supervisor may approve; the app never sends by itself. Hostile or
malformed input is refused with a log line and a row saying why, never an exception."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction

from ... import permissions
from ...models import Broadcast, Category, OfficialMessage, OfficialRule, User
from ...official import drafts
from ...official.jma import JmaMessage, Kind, UnsafeXml, parse_message
from ...official.mail import MailMessage, MailRefused, parse_mail
from ...schedule import format_jst
from ..audit import audit_record
from ..errors import BroadcastInvalid, InvalidTransition
from ..lifecycle import broadcast_cancel, broadcast_create, broadcast_submit, broadcast_update

logger = logging.getLogger("broadcasts.official")

S = Broadcast.Status
OUT = OfficialMessage.Outcome
PENDING = frozenset({S.DRAFT, S.PENDING_REVIEW})
GONE_OUT = frozenset({S.SCHEDULED, S.SENDING, S.SENT, S.NEEDS_ATTENTION})
MAX_RAW_CHARS = 1_000_000
# A feed entry older than this (a catch-up from the long feed after an outage, a first poll)
# is stored but makes no draft: it would tell citizens yesterday's news.
MAX_AGE_FOR_DRAFT = dt.timedelta(hours=6)


def system_author() -> User:
    """The account drafts from official information are written by (made by migration 0014;
    made again here if a test database was flushed)."""
    user, _ = User.objects.get_or_create(
        username=permissions.SYSTEM_AUTHOR_USERNAME,
        defaults={
            "is_active": False,
            "password": make_password(None),
            "last_name": "自動起案（防災情報）",
        },
    )
    return user


@dataclass(frozen=True)
class _Plan:
    rule: OfficialRule | None
    finding: drafts.Finding | None
    reason: str


def _rule_spec(rule: OfficialRule) -> drafts.RuleSpec:
    return drafts.RuleSpec(
        kind=rule.kind,
        area_codes=rule.area_code_set,
        names=rule.name_list,
        min_intensity=rule.min_intensity,
        template=rule.template,
    )


def _plan(message: JmaMessage) -> _Plan:
    """The rule that applies, most severe first (emergency before normal, then the stronger
    finding, then the admin's order)."""
    rules = list(OfficialRule.objects.filter(enabled=True, kind=message.kind))
    if not rules:
        return _Plan(None, None, "この種類の情報に有効な起案規則がありません。")
    best: tuple[tuple[int, int, int], OfficialRule, drafts.Finding] | None = None
    reason = ""
    for rule in rules:
        outcome = drafts.evaluate(message, _rule_spec(rule))
        if outcome.finding is None:
            # The last rule's reason: the admin's order puts the broadest rule last.
            reason = outcome.reason
            continue
        rank = (
            int(rule.priority == Broadcast.Priority.EMERGENCY),
            outcome.finding.severity,
            -rule.sort_order,
        )
        if best is None or rank > best[0]:
            best = (rank, rule, outcome.finding)
    if best is None:
        return _Plan(None, None, reason)
    return _Plan(best[1], best[2], "")


def _thread_key(message: JmaMessage) -> str:
    """Messages of one series: one earthquake, one prefecture's warnings of one kind, one
    river forecast …, so a later message updates or follows up the earlier draft."""
    if message.kind == Kind.EARTHQUAKE and message.event_id:
        return f"earthquake:{message.event_id}"
    if message.kind == Kind.WEATHER_WARNING:
        return f"{message.data_type}:{message.head_title}"
    return f"{message.data_type}:{message.event_id or message.head_title}"


def _thread_broadcast(thread_key: str) -> Broadcast | None:
    latest = (
        OfficialMessage.objects.filter(thread_key=thread_key, broadcast__isnull=False)
        .select_related("broadcast")
        .order_by("-received_at", "-id")
        .first()
    )
    if latest is None:
        return None
    # Locked for this transaction: an approval racing with this message waits for it.
    return Broadcast.objects.select_for_update().get(pk=latest.broadcast_id)


def _store(
    *,
    key: tuple[str, str, str, str],
    source: str,
    received_at: dt.datetime,
    url: str,
    raw: str,
    **fields: object,
) -> OfficialMessage | None:
    """Insert the message row, or return None when it is already there (the unique key)."""
    data_type, event_id, serial, info_type = key
    try:
        with transaction.atomic():
            return OfficialMessage.objects.create(
                source=source,
                data_type=data_type[:12],
                event_id=event_id[:200],
                serial=serial[:40],
                info_type=info_type[:10],
                received_at=received_at,
                url=url[:500],
                raw=raw[:MAX_RAW_CHARS],
                **{"outcome": OUT.IGNORED, **fields},
            )
    except IntegrityError:
        return None


def _refuse(
    *, data: bytes, source: str, url: str, reason: str, now: dt.datetime, title: str = ""
) -> OfficialMessage:
    digest = hashlib.sha256(data).hexdigest()
    logger.warning("防災情報を受信拒否しました: %s（%s, sha256=%s）", reason, url or source, digest)
    stored = _store(
        key=("", digest, "", "refused"),
        source=source,
        received_at=now,
        url=url,
        raw="",
        title=title[:200] or "（読み込めない電文）",
        outcome=OUT.REFUSED,
        reason=reason,
    )
    return stored or OfficialMessage.objects.get(data_type="", event_id=digest, info_type="refused")


@dataclass(frozen=True)
class IngestResult:
    message: OfficialMessage
    created: bool  # False: already received (nothing done again)


def official_message_ingest(
    *, data: bytes, source: str, url: str = "", now: dt.datetime
) -> IngestResult:
    """Store and act on one JMA message, once. Never raises for bad input."""
    try:
        parsed = parse_message(data)
    except UnsafeXml as exc:
        return IngestResult(
            _refuse(data=data, source=source, url=url, reason=exc.reason, now=now), True
        )
    with transaction.atomic():
        stored = _store(
            key=parsed.key,
            source=source,
            received_at=now,
            url=url,
            raw=data.decode("utf-8", errors="replace"),
            kind=parsed.kind,
            control_status=parsed.control_status[:10],
            title=(parsed.head_title or parsed.control_title)[:200],
            publisher=(parsed.publishing_office or parsed.editorial_office)[:200],
            headline=parsed.headline,
            reported_at=parsed.report_at,
            thread_key=_thread_key(parsed)[:300],
        )
        if stored is None:
            data_type, event_id, serial, info_type = parsed.key
            existing = OfficialMessage.objects.get(
                data_type=data_type[:12],
                event_id=event_id[:200],
                serial=serial[:40],
                info_type=info_type[:10],
            )
            return IngestResult(existing, False)
        try:
            with transaction.atomic():
                _act(stored, parsed, now=now)
        except Exception as exc:
            # A message this code cannot handle must not block the feed behind it (it would
            # be retried at every poll): kept, marked, logged; a person drafts by hand.
            logger.exception("防災情報 %s の処理に失敗しました", stored.pk)
            _finish(
                stored,
                OUT.FAILED,
                f"処理中にエラーが起きたため、下書きは作られていません（{type(exc).__name__}）。"
                "内容を確認し、必要なら手動で起案してください。",
            )
    return IngestResult(stored, True)


def _finish(
    stored: OfficialMessage,
    outcome: str,
    reason: str = "",
    *,
    broadcast: Broadcast | None = None,
    rule: OfficialRule | None = None,
    finding: str = "",
) -> None:
    stored.outcome = outcome
    stored.reason = reason
    stored.broadcast = broadcast
    stored.rule = rule
    stored.finding = finding[:300]
    stored.save(update_fields=["outcome", "reason", "broadcast", "rule", "finding"])
    logger.info(
        "防災情報 %s: %s %s → %s %s",
        stored.pk,
        stored.title,
        stored.info_type,
        stored.get_outcome_display(),
        f"#{broadcast.pk}" if broadcast else reason,
    )


def _act(stored: OfficialMessage, message: JmaMessage, *, now: dt.datetime) -> None:
    if (
        stored.source == OfficialMessage.Source.FEED
        and message.report_at is not None
        and now - message.report_at > MAX_AGE_FOR_DRAFT
    ):
        _finish(
            stored,
            OUT.IGNORED,
            "発表から6時間以上たった情報のため、下書きは作りません（保存のみ）。",
        )
        return
    if not message.is_live:
        _finish(
            stored, OUT.IGNORED, f"{message.control_status}の電文のため、配信の下書きは作りません。"
        )
        return
    if message.kind == Kind.OTHER:
        _finish(stored, OUT.IGNORED, "柏市の配信の対象としない種類の情報です（保存のみ）。")
        return
    thread = _thread_broadcast(stored.thread_key)
    if message.info_type == "取消":
        _cancel(stored, message, thread)
        return
    plan = _plan(message)
    if plan.finding is None or plan.rule is None:
        _finish(stored, OUT.IGNORED, plan.reason)
        return
    finding = plan.finding
    draft = drafts.render(
        message, finding, template=plan.rule.template, info_url=settings.OFFICIAL_INFO_URL
    )
    origin = f"気象庁「{message.control_title}」（{format_jst(message.report_at) if message.report_at else ''}）"
    if finding.change == drafts.LIFTED and thread is None:
        _finish(stored, OUT.IGNORED, "解除の情報ですが、この情報による配信はありません。")
        return
    if finding.change == drafts.LIFTED and thread.status in PENDING:
        # The warning never went out: the draft now says it was lifted; the supervisor
        # sends that (citizens may have heard of the warning elsewhere) or cancels it.
        thread = _update_pending(thread, plan.rule, draft, reason=f"{origin}による更新")
        _finish(
            stored,
            OUT.UPDATED,
            "未配信の下書きを解除の内容に更新しました。配信が不要なら取り消してください。",
            broadcast=thread,
            rule=plan.rule,
            finding=finding.summary,
        )
        return
    if thread is not None and thread.status in PENDING:
        thread = _update_pending(thread, plan.rule, draft, reason=f"{origin}による更新")
        _finish(
            stored,
            OUT.UPDATED,
            "同じ系列の承認待ちの下書きを最新の内容に更新しました。",
            broadcast=thread,
            rule=plan.rule,
            finding=finding.summary,
        )
        return
    if thread is not None and thread.status in GONE_OUT:
        last = (
            OfficialMessage.objects.filter(broadcast=thread)
            .exclude(pk=stored.pk)
            .order_by("-received_at", "-id")
            .first()
        )
        if last is not None and last.finding == finding.summary and message.info_type != "訂正":
            _finish(
                stored,
                OUT.IGNORED,
                "配信済み・承認済みの内容から変わっていません。",
                rule=plan.rule,
                finding=finding.summary,
            )
            return
        label = (
            "訂正"
            if message.info_type == "訂正"
            else ("解除" if finding.change == drafts.LIFTED else "続報")
        )
        _follow_up(
            stored, thread, plan.rule, draft, origin=origin, label=label, finding=finding.summary
        )
        return
    if finding.change == drafts.LIFTED:
        _finish(
            stored,
            OUT.IGNORED,
            "解除の情報ですが、この情報による配信は取り消し済みです。",
            rule=plan.rule,
            finding=finding.summary,
        )
        return
    created = _create(plan.rule, draft, reason=origin, parent=None, kind=Broadcast.Kind.LIVE)
    _finish(stored, OUT.DRAFTED, "", broadcast=created, rule=plan.rule, finding=finding.summary)


def _follow_up(
    stored: OfficialMessage,
    thread: Broadcast,
    rule: OfficialRule,
    draft: drafts.DraftText,
    *,
    origin: str,
    label: str,
    finding: str,
) -> None:
    """A linked 続報/解除/訂正 of what went out (or was approved), awaiting approval."""
    kind = Broadcast.Kind.CORRECTION if label == "訂正" else Broadcast.Kind.LIVE
    if kind == Broadcast.Kind.CORRECTION:
        sent_label = format_jst(thread.sent_at or thread.approved_at or thread.created_at)
        draft = drafts.DraftText(
            title=draft.title, text=drafts.correction_text(draft.text, sent_at_label=sent_label)
        )
    follow_up = _create(
        rule,
        draft,
        reason=f"{origin}（{label}）",
        parent=thread,
        kind=kind,
        title_prefix=f"【{label}】",
    )
    _finish(
        stored,
        OUT.FOLLOW_UP,
        f"配信済み・承認済みの配信の{label}を作成しました。",
        broadcast=follow_up,
        rule=rule,
        finding=finding,
    )


def _cancel(stored: OfficialMessage, message: JmaMessage, thread: Broadcast | None) -> None:
    """JMA withdrew a message: cancel the still-pending draft, or draft a 取消 of what went out."""
    if thread is None:
        _finish(stored, OUT.IGNORED, "取り消された情報による配信はありません。")
        return
    if thread.status in PENDING:
        _cancel_pending(thread, "気象庁が情報を取り消したため、未配信の下書きを取り消しました。")
        _finish(
            stored,
            OUT.CANCELLED,
            "気象庁が情報を取り消したため、未配信の下書きを取り消しました。",
            broadcast=thread,
        )
        return
    if thread.status not in GONE_OUT:
        _finish(
            stored,
            OUT.IGNORED,
            f"元の配信は「{thread.get_status_display()}」のため、取消は不要です。",
            broadcast=thread,
        )
        return
    if Broadcast.objects.filter(parent=thread, kind=Broadcast.Kind.CANCELLATION).exists():
        _finish(stored, OUT.IGNORED, "この配信の取消はすでに作成されています。", broadcast=thread)
        return
    sent_label = format_jst(thread.sent_at or thread.approved_at or thread.created_at)
    text = drafts.cancellation_text(message, thread.title, sent_at_label=sent_label)
    follow_up = _create_broadcast(
        title=f"【取消】{thread.title}"[:120],
        text=text,
        categories=list(thread.categories.all()),
        audience=thread.audience,
        priority=Broadcast.Priority.EMERGENCY,
        reason=f"気象庁が「{message.control_title}」を取り消したため",
        parent=thread,
        kind=Broadcast.Kind.CANCELLATION,
    )
    _finish(stored, OUT.FOLLOW_UP, "配信済みの配信の取消を作成しました。", broadcast=follow_up)


def _cancel_pending(broadcast: Broadcast, comment: str) -> None:
    try:
        broadcast_cancel(broadcast=broadcast, actor=system_author(), comment=comment)
    except InvalidTransition:
        logger.info("防災情報: 配信 #%s は既に取り消せない状態です", broadcast.pk)


def _create(
    rule: OfficialRule,
    draft: drafts.DraftText,
    *,
    reason: str,
    parent: Broadcast | None,
    kind: str,
    title_prefix: str = "",
) -> Broadcast:
    return _create_broadcast(
        title=f"{title_prefix}{draft.title}"[:120],
        text=draft.text,
        categories=[rule.category],
        audience=rule.audience,
        priority=rule.priority,
        reason=f"{reason}による自動起案（規則「{rule.name}」）",
        parent=parent,
        kind=kind,
    )


def _create_broadcast(
    *,
    title: str,
    text: str,
    categories: list[Category],
    audience: str,
    priority: str,
    reason: str,
    parent: Broadcast | None,
    kind: str,
) -> Broadcast:
    author = system_author()
    broadcast = broadcast_create(
        author=author,
        title=title,
        categories=categories,
        messages=[{"type": "text", "text": text}],
        audience=audience,
        priority=priority,
        emergency_reason=reason[:1000],
        kind=kind,
        parent=parent,
    )
    return _submit(broadcast, author)


def _submit(broadcast: Broadcast, author: User) -> Broadcast:
    """承認待ち, the same way a drafter's submission does (and whatever it triggers)."""
    try:
        return broadcast_submit(broadcast=broadcast, actor=author)
    except BroadcastInvalid as exc:
        audit_record(
            verb="official_submit_failed",
            actor=None,
            broadcast=broadcast,
            from_status=broadcast.status,
            to_status=broadcast.status,
            comment="自動起案の下書きを承認申請できませんでした。内容を確認してください。",
            data={"problems": [p.message for p in exc.problems]},
        )
        return broadcast


def _update_pending(
    broadcast: Broadcast, rule: OfficialRule, draft: drafts.DraftText, *, reason: str
) -> Broadcast:
    author = system_author()
    updated = broadcast_update(
        broadcast=broadcast,
        actor=author,
        title=draft.title,
        categories=[rule.category],
        messages=[{"type": "text", "text": draft.text}],
        audience=rule.audience,
        requested_at=None,
        priority=rule.priority,
        emergency_reason=f"{reason}（規則「{rule.name}」）"[:1000],
        notification_disabled=broadcast.notification_disabled,
    )
    if updated.status == S.DRAFT:
        updated = _submit(updated, author)
    return updated


# --- e-mail ---------------------------------------------------------------------------


def official_mail_ingest(*, data: bytes, now: dt.datetime) -> IngestResult:
    """One e-mail (IMAP or ``manage.py ingest_mail``): only allow-listed senders, text only."""
    try:
        mail = parse_mail(data, allow_list=settings.OFFICIAL_MAIL_ALLOW_LIST)
    except MailRefused as exc:
        return IngestResult(
            _refuse(
                data=data, source=OfficialMessage.Source.MAIL, url="", reason=exc.reason, now=now
            ),
            True,
        )
    key_id = mail.message_id or hashlib.sha256(data).hexdigest()
    with transaction.atomic():
        stored = _store(
            key=("MAIL", key_id, "", "発表"),
            source=OfficialMessage.Source.MAIL,
            received_at=now,
            url="",
            raw=mail.body,
            kind=OfficialRule.Kind.MAIL,
            control_status="通常",
            title=mail.subject,
            publisher=mail.sender,
            headline=mail.body[:500],
            reported_at=mail.sent_at,
            thread_key=f"mail:{mail.thread_root or key_id}"[:300],
        )
        if stored is None:
            existing = OfficialMessage.objects.get(
                data_type="MAIL", event_id=key_id[:200], serial="", info_type="発表"
            )
            return IngestResult(existing, False)
        _act_on_mail(stored, mail)
    return IngestResult(stored, True)


def _act_on_mail(stored: OfficialMessage, mail: MailMessage) -> None:
    """The first matching rule drafts it. A reply to an earlier mail (References /
    In-Reply-To) belongs to that mail's series, as JMA's serials do: it updates the series'
    draft still awaiting approval, or becomes a linked 続報/訂正/解除 of what went out."""
    haystack = f"{mail.subject}\n{mail.body}"
    for rule in OfficialRule.objects.filter(enabled=True, kind=OfficialRule.Kind.MAIL):
        if rule.name_list and not any(n in haystack for n in rule.name_list):
            continue
        text = drafts.fill(
            rule.template,
            {
                "見出し": mail.subject or "防災情報",
                "内容": mail.body,
                "地域": "柏市",
                "行動": "",
                "発表時刻": format_jst(mail.sent_at) if mail.sent_at else "",
                "発表者": mail.sender,
                "詳細URL": settings.OFFICIAL_INFO_URL,
            },
        ).strip()
        draft = drafts.DraftText(title=f"【防災メール】{mail.subject}"[:120], text=text[:4900])
        reason = f"防災メール（{mail.sender}）"
        thread = _thread_broadcast(stored.thread_key) if mail.references else None
        if thread is not None and thread.status in PENDING:
            thread = _update_pending(thread, rule, draft, reason=f"{reason}による更新")
            _finish(
                stored,
                OUT.UPDATED,
                "同じ系列の承認待ちの下書きを最新の内容に更新しました。",
                broadcast=thread,
                rule=rule,
                finding=mail.subject,
            )
            return
        if thread is not None and thread.status in GONE_OUT:
            label = mail.follow_up_label
            _follow_up(
                stored, thread, rule, draft, origin=reason, label=label, finding=mail.subject
            )
            return
        created = _create(rule, draft, reason=reason, parent=None, kind=Broadcast.Kind.LIVE)
        _finish(stored, OUT.DRAFTED, "", broadcast=created, rule=rule, finding=mail.subject)
        return
    _finish(stored, OUT.IGNORED, "該当する起案規則がありません。")
