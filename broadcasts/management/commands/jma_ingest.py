"""``manage.py jma_ingest PATH_OR_URL``: feed one JMA message through the same path as the
feeds (stored once by its key, rules, draft). For operators and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from broadcasts.models import OfficialMessage
from broadcasts.official.jma import MAX_MESSAGE_BYTES
from broadcasts.services.official import official_message_ingest
from broadcasts.services.official.feeds import FetchError, http_get


class Command(BaseCommand):
    help = "気象庁防災情報XMLの電文を1件取り込みます（ファイルのパスまたは URL）。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path_or_url")

    def handle(self, *args: Any, **options: Any) -> None:
        target: str = options["path_or_url"]
        if target.startswith(("http://", "https://")):
            try:
                data = http_get(target, max_bytes=MAX_MESSAGE_BYTES).body
            except FetchError as exc:
                raise CommandError(str(exc)) from exc
            source = OfficialMessage.Source.FEED
        else:
            path = Path(target)
            if not path.is_file():
                raise CommandError(f"ファイルがありません: {target}")
            if path.stat().st_size > MAX_MESSAGE_BYTES:
                raise CommandError(
                    f"大きすぎる電文です（上限 {MAX_MESSAGE_BYTES:,} バイト）: {target}"
                )
            data = path.read_bytes()
            source = OfficialMessage.Source.FILE
        result = official_message_ingest(data=data, source=source, url=target, now=timezone.now())
        message = result.message
        if not result.created:
            self.stdout.write(f"受信済みの電文です（#{message.pk}）。何もしませんでした。")
            return
        line = f"#{message.pk} {message.title}: {message.get_outcome_display()}"
        if message.broadcast_id:
            line += f" → 配信 #{message.broadcast_id}"
        if message.reason:
            line += f"（{message.reason}）"
        self.stdout.write(line)
