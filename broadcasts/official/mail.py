"""Official information by e-mail (千葉県防災情報メール, L-ALERT relays, the city's own disaster
system): RFC 5322 bytes in, a typed message out. Pure.

Only allow-listed senders are read, only text parts, only up to ``MAX_MAIL_BYTES``. The From
header can be forged: allow-listing assumes the receiving MTA checked the sender (SPF/DKIM)
or that the mailbox only receives from the relay; the draft is approved by a person anyway."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr, parsedate_to_datetime

MAX_MAIL_BYTES = 1024 * 1024
MAX_BODY_CHARS = 4000


class MailRefused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MailMessage:
    sender: str
    subject: str
    message_id: str
    sent_at: dt.datetime | None
    body: str
    # The Message-IDs this mail answers (References, then In-Reply-To), oldest first: a 続報
    # or 訂正 sent as a reply belongs to the series its first mail started.
    references: tuple[str, ...] = ()

    @property
    def thread_root(self) -> str:
        return self.references[0] if self.references else self.message_id

    @property
    def follow_up_label(self) -> str:
        """How the sender marked a later mail of a series (件名に「訂正」「解除」), else 続報."""
        for label in ("訂正", "解除"):
            if label in self.subject:
                return label
        return "続報"


_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def message_ids(header: str) -> tuple[str, ...]:
    return tuple(_MESSAGE_ID.findall(header))


def sender_allowed(sender: str, allow_list: tuple[str, ...] | list[str]) -> bool:
    """An entry is a full address (bousai@pref.chiba.lg.jp) or a domain (@pref.chiba.lg.jp)."""
    sender = sender.lower()
    for entry in allow_list:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry.startswith("@") and sender.endswith(entry):
            return True
        if sender == entry:
            return True
    return False


def parse_mail(
    data: bytes, *, allow_list: tuple[str, ...] | list[str], max_bytes: int = MAX_MAIL_BYTES
) -> MailMessage:
    if len(data) > max_bytes:
        raise MailRefused(
            f"メールが大きすぎます（{len(data):,} バイト、上限 {max_bytes:,} バイト）。"
        )
    message = BytesParser(policy=policy.default).parsebytes(data)
    sender = parseaddr(str(message.get("From", "")))[1]
    if not sender or not sender_allowed(sender, allow_list):
        raise MailRefused(f"許可されていない差出人のメールです（{sender or '差出人なし'}）。")
    texts = []
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_attachment():
            try:
                texts.append(str(part.get_content()))
            except (LookupError, UnicodeDecodeError):
                continue
    if not texts:
        raise MailRefused("本文（テキスト）がないメールです。")
    body = "\n".join(t.strip() for t in texts).strip()[:MAX_BODY_CHARS]
    sent_at = None
    if message.get("Date"):
        try:
            sent_at = parsedate_to_datetime(str(message["Date"]))
        except (TypeError, ValueError):
            sent_at = None
        if sent_at is not None and sent_at.tzinfo is None:
            sent_at = None
    references = message_ids(str(message.get("References", "")))
    if not references:
        references = message_ids(str(message.get("In-Reply-To", "")))
    return MailMessage(
        sender=sender.lower(),
        subject=str(message.get("Subject", "")).strip()[:200],
        message_id=str(message.get("Message-ID", "")).strip()[:300],
        sent_at=sent_at,
        body=body,
        references=tuple(r[:300] for r in references[:20]),
    )
