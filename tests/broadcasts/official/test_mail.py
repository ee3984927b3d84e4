"""防災メール: allow-listed senders only, text parts only, size limits; same rules."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from django.core.management import call_command

from broadcasts import permissions
from broadcasts.models import Broadcast, OfficialMessage
from broadcasts.official.mail import MailRefused, parse_mail, sender_allowed
from broadcasts.services.official import official_mail_ingest
from tests.broadcasts.sending.helpers import jst, make_followers

NOW = jst(2026, 7, 15, 3, 30)
ALLOW = ["bousai@pref.chiba.lg.jp", "@alert.city.kashiwa.lg.jp"]


def mail(
    sender: str = "千葉県防災情報メール <bousai@pref.chiba.lg.jp>",
    subject: str = "【千葉県防災情報】柏市に避難指示",
    body: str = "柏市は利根川の増水により、布施地区に避難指示を発令しました。",
    message_id: str = "<a1@pref.chiba.lg.jp>",
    html: bool = False,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "line@city.kashiwa.lg.jp"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = "Wed, 15 Jul 2026 03:28:00 +0900"
    if html:
        message.set_content("<p>本文</p>", subtype="html")
    else:
        message.set_content(body)
        message.add_attachment(
            b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="a.pdf"
        )
    return message.as_bytes()


@pytest.fixture
def allow_list(settings):
    settings.OFFICIAL_MAIL_ALLOW_LIST = ALLOW


def test_sender_allow_list_matches_addresses_and_domains():
    assert sender_allowed("bousai@pref.chiba.lg.jp", ALLOW)
    assert sender_allowed("relay@alert.city.kashiwa.lg.jp", ALLOW)
    assert not sender_allowed("bousai@pref.chiba.lg.jp.evil.example", ALLOW)
    assert not sender_allowed("evil@example.com", ALLOW)
    assert not sender_allowed("x@notalert.city.kashiwa.lg.jp", ALLOW)


def test_text_only_and_attachments_ignored():
    parsed = parse_mail(mail(), allow_list=ALLOW)
    assert parsed.sender == "bousai@pref.chiba.lg.jp"
    assert parsed.body == "柏市は利根川の増水により、布施地区に避難指示を発令しました。"
    with pytest.raises(MailRefused, match="本文（テキスト）がない"):
        parse_mail(mail(html=True), allow_list=ALLOW)
    with pytest.raises(MailRefused, match="大きすぎます"):
        parse_mail(mail(body="あ" * 600_000), allow_list=ALLOW)


def test_an_allow_listed_mail_becomes_one_draft(db, allow_list):
    make_followers(["U" + "2" * 32], ["disaster_crime"])
    first = official_mail_ingest(data=mail(), now=NOW).message
    assert first.outcome == OfficialMessage.Outcome.DRAFTED
    draft = first.broadcast
    assert draft.author.username == permissions.SYSTEM_AUTHOR_USERNAME
    assert draft.status == Broadcast.Status.PENDING_REVIEW
    assert "布施地区に避難指示" in draft.messages[0]["text"]
    again = official_mail_ingest(data=mail(), now=NOW)
    assert not again.created
    assert Broadcast.objects.count() == 1


def test_a_mail_from_anyone_else_is_refused(db, allow_list, caplog):
    result = official_mail_ingest(data=mail(sender="Evil <bousai@evil.example>"), now=NOW)
    assert result.message.outcome == OfficialMessage.Outcome.REFUSED
    assert "許可されていない差出人" in result.message.reason
    assert result.message.raw == ""  # nothing of it is kept
    assert "受信拒否" in caplog.text
    assert not Broadcast.objects.exists()


def test_ingest_mail_reads_stdin(db, allow_list, monkeypatch, capsys):
    import io
    import sys

    make_followers(["U" + "2" * 32], ["disaster_crime"])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(mail(message_id="<b2@x>"))))
    call_command("ingest_mail")
    assert "下書きを作成" in capsys.readouterr().out
    assert Broadcast.objects.count() == 1


class FakeImap:
    """Stands in for the mailbox's server (imaplib's client API, as the code calls it)."""

    mails: list[bytes] = []
    logins: list[tuple[str, str]] = []

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def login(self, user: str, password: str) -> None:
        FakeImap.logins.append((user, password))

    def select(self, mailbox: str) -> None:
        assert mailbox == "INBOX"

    def search(self, charset, criterion: str):
        assert criterion == "UNSEEN"
        return "OK", [" ".join(str(i + 1) for i in range(len(FakeImap.mails))).encode()]

    def fetch(self, number: bytes, parts: str):
        return "OK", [(b"1 (RFC822 {n})", FakeImap.mails[int(number) - 1]), b")"]


def test_imap_polling_ingests_unseen_mails(db, allow_list, monkeypatch):
    import imaplib

    from broadcasts.services.official import imap_poll

    make_followers(["U" + "2" * 32], ["disaster_crime"])
    FakeImap.mails = [
        mail(message_id="<i1@x>"),
        mail(sender="evil@example.com", message_id="<i2@x>"),
    ]
    FakeImap.logins = []
    monkeypatch.setattr(imaplib, "IMAP4_SSL", FakeImap)
    read = imap_poll(now_fn=lambda: NOW, imap_url="imaps://line%40city:pa%2Fss@mail.example/INBOX")
    assert read == 2
    assert FakeImap.logins == [("line@city", "pa/ss")]
    outcomes = sorted(OfficialMessage.objects.values_list("outcome", flat=True))
    assert outcomes == [OfficialMessage.Outcome.DRAFTED, OfficialMessage.Outcome.REFUSED]


def test_an_unreachable_mailbox_is_logged_not_raised(db, caplog):
    from broadcasts.services.official import imap_poll

    assert imap_poll(now_fn=lambda: NOW, imap_url="imap://127.0.0.1:9/INBOX") == 0
    assert "防災メール（IMAP）の取得に失敗しました" in caplog.text
