"""Start web, workers (default + emergency), beat and — without LINE credentials — the LINE
sandbox and the JMA feed sandbox together, with their output prefixed; restart any that exits
(kashiwa/supervisor.py, recorded for 運用状況) and stop them all on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from broadcasts import ops
from kashiwa.preflight import check_all
from kashiwa.supervisor import Death, Supervisor


class Command(BaseCommand):
    help = "web, Celery workers, beat and the LINE sandbox in one terminal"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--followers", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        check_all()
        check_ports(options["port"])
        python = sys.executable
        manage = [python, str(settings.BASE_DIR / "manage.py")]
        celery = [python, "-m", "celery", "-A", "kashiwa"]
        web_url = f"http://{options['host']}:{options['port']}"
        processes: dict[str, list[str]] = {
            "web": [*manage, "runserver", f"{options['host']}:{options['port']}", "--noreload"],
            "worker": [
                *celery,
                "worker",
                "-Q",
                "default",
                "-n",
                "default@%h",
                "--concurrency",
                "2",
                "-l",
                "INFO",
            ],
            "emergency": [
                *celery,
                "worker",
                "-Q",
                "emergency",
                "-n",
                "emergency@%h",
                "--concurrency",
                "1",
                "-l",
                "INFO",
            ],
            "beat": [
                *celery,
                "beat",
                "-l",
                "INFO",
                "-s",
                str(settings.DATA_DIR / "celerybeat-schedule"),
            ],
        }
        if settings.LINE_USES_SANDBOX:
            processes["sandbox"] = [
                *manage,
                "line_sandbox",
                "--followers",
                str(options["followers"]),
                "--webhook-url",
                f"{web_url}/line/webhook/",
                "--state-file",
                str(settings.DATA_DIR / "sandbox-log.jsonl"),
            ]
        if settings.JMA_USES_SANDBOX:
            # The local stand-in for JMA's feeds (development tooling, like the LINE sandbox).
            processes["jma"] = [
                python,
                "-m",
                "jma_sandbox",
                "--host",
                settings.JMA_SANDBOX_HOST,
                "--port",
                str(settings.JMA_SANDBOX_PORT),
            ]
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        supervisor = Supervisor(
            processes, out=sys.stdout, on_death=record_death, now=timezone.localtime
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  柏市役所 LINE 配信管理: {web_url}/"
                + (
                    f"\n  LINE サンドボックス（市民に届いた内容）: {settings.SANDBOX_URL}/"
                    if settings.LINE_USES_SANDBOX
                    else ""
                )
                + (
                    f"\n  気象庁フィード サンドボックス（電文の公開）: {settings.JMA_SANDBOX_URL}/"
                    if settings.JMA_USES_SANDBOX
                    else ""
                )
                + "\n  終了したプロセスは自動で再起動します。Ctrl-C で停止します。\n"
            )
        )
        sys.exit(supervisor.run())


def check_ports(web_port: int) -> None:
    """Two of our own processes on one port would leave one restarting for ever: say so once."""
    used = {"LINE サンドボックス": settings.SANDBOX_PORT} if settings.LINE_USES_SANDBOX else {}
    if settings.JMA_USES_SANDBOX:
        used["気象庁フィード サンドボックス"] = settings.JMA_SANDBOX_PORT
    for name, port in used.items():
        if port == web_port:
            raise CommandError(
                f"画面のポート {web_port} は{name}と同じです。PORT（または --port）を"
                "別の番号にしてください。"
            )


def record_death(death: Death) -> None:
    """For 運用状況: which process died, when, and how."""
    ops.process_restart_record(
        name=death.name, returncode=death.returncode, died_at=death.at, restart_in=death.restart_in
    )
