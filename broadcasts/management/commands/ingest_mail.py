"""``manage.py ingest_mail < message``: one e-mail from an MTA pipe (e.g. a .forward or
aliases entry), through the same rules as IMAP. Only allow-listed senders make drafts."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from broadcasts.official.mail import MAX_MAIL_BYTES
from broadcasts.services.official import official_mail_ingest


class Command(BaseCommand):
    help = "標準入力のメール1通を防災メールとして取り込みます（許可した差出人のみ）。"

    def handle(self, *args: Any, **options: Any) -> None:
        # One byte past the limit is enough to refuse it without reading the rest.
        data = sys.stdin.buffer.read(MAX_MAIL_BYTES + 1)
        result = official_mail_ingest(data=data, now=timezone.now())
        message = result.message
        line = f"#{message.pk} {message.title}: {message.get_outcome_display()}"
        if not result.created:
            line = f"受信済みのメールです（#{message.pk}）。"
        elif message.reason:
            line += f"（{message.reason}）"
        self.stdout.write(line)
