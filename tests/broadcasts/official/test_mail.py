"""防災メール: allow-listed senders only, text parts only, size limits; same rules."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from django.core.management import call_command

from broadcasts import permissions, tasks
from broadcasts.models import Broadcast, OfficialMessage
from broadcasts.official.mail import MailRefused, parse_mail, sender_allowed
from broadcasts.services.official import official_mail_ingest
from tests.broadcasts.sending.helpers import approve, jst, make_followers

NOW = jst(2026, 7, 15, 3, 30)
ALLOW = ["bousai@pref.chiba.lg.jp", "@alert.city.kashiwa.lg.jp"]


def mail(
    sender: str = "千葉県防災情報メール <bousai@pref.chiba.lg.jp>",
    subject: str = "【千葉県防災情報】柏市に避難指示",
    body: str = "柏市は利根川の増水により、布施地区に避難指示を発令しました。",
    message_id: str = "<a1@pref.chiba.lg.jp>",
    html: bool = False,
    in_reply_to: str = "",
    references: str = "",
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "line@city.kashiwa.lg.jp"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = "Wed, 15 Jul 2026 03:28:00 +0900"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
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


FOLLOW = "柏市は布施地区の避難指示の対象を布施新町まで広げました。"


def test_a_reply_updates_the_series_draft_still_awaiting_approval(db, allow_list):
    make_followers(["U" + "2" * 32], ["disaster_crime"])
    draft = official_mail_ingest(data=mail(), now=NOW).message.broadcast
    reply = official_mail_ingest(
        data=mail(
            subject="Re: 【千葉県防災情報】柏市に避難指示（続報）",
            body=FOLLOW,
            message_id="<a2@pref.chiba.lg.jp>",
            in_reply_to="<a1@pref.chiba.lg.jp>",
        ),
        now=NOW,
    ).message
    assert reply.outcome == OfficialMessage.Outcome.UPDATED
    assert reply.broadcast_id == draft.pk
    draft.refresh_from_db()
    assert FOLLOW in draft.messages[0]["text"]
    assert draft.status == Broadcast.Status.PENDING_REVIEW
    assert Broadcast.objects.count() == 1


def test_a_reply_after_the_send_is_a_linked_follow_up_and_a_correction_says_so(
    db, allow_list, supervisor, line_sandbox
):
    make_followers(["U" + "2" * 32], ["disaster_crime"])
    draft = official_mail_ingest(data=mail(), now=NOW).message.broadcast
    approve(draft, supervisor, now=NOW)
    assert tasks.send_emergency_broadcast(draft.pk) == "sent"
    draft.refresh_from_db()
    assert draft.status == Broadcast.Status.SENT

    later = official_mail_ingest(
        data=mail(
            subject="【千葉県防災情報】柏市の避難指示（続報）",
            body=FOLLOW,
            message_id="<a2@pref.chiba.lg.jp>",
            references="<a1@pref.chiba.lg.jp>",
        ),
        now=NOW,
    ).message
    assert later.outcome == OfficialMessage.Outcome.FOLLOW_UP
    follow_up = later.broadcast
    assert follow_up.parent_id == draft.pk
    assert follow_up.kind == Broadcast.Kind.LIVE
    assert follow_up.title.startswith("【続報】")
    assert follow_up.status == Broadcast.Status.PENDING_REVIEW

    # A correction deeper in the thread (References lists the root first) follows up the
    # series too, as a 訂正, and redelivering it changes nothing.
    correction = mail(
        subject="【訂正】柏市の避難指示",
        body="先ほどの地区名に誤りがありました。布施新町ではなく布施東です。",
        message_id="<a3@pref.chiba.lg.jp>",
        references="<a1@pref.chiba.lg.jp> <a2@pref.chiba.lg.jp>",
    )
    corrected = official_mail_ingest(data=correction, now=NOW).message
    assert corrected.outcome == OfficialMessage.Outcome.UPDATED  # the 続報 still waits
    assert corrected.broadcast_id == follow_up.pk
    assert not official_mail_ingest(data=correction, now=NOW).created
    assert Broadcast.objects.count() == 2


def test_a_reply_to_a_mail_never_seen_is_a_draft_of_its_own(db, allow_list):
    make_followers(["U" + "2" * 32], ["disaster_crime"])
    result = official_mail_ingest(
        data=mail(message_id="<b9@pref.chiba.lg.jp>", in_reply_to="<gone@pref.chiba.lg.jp>"),
        now=NOW,
    ).message
    assert result.outcome == OfficialMessage.Outcome.DRAFTED
    assert result.broadcast.parent_id is None


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
