"""Start web, workers (default + emergency), beat and — without LINE credentials — the LINE
sandbox together, with their output prefixed, and stop them all together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from kashiwa.preflight import check_all


class Command(BaseCommand):
    help = "web, Celery workers, beat and the LINE sandbox in one terminal"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--followers", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        check_all()
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
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = threading.Event()

        def pump(name: str, proc: subprocess.Popen[bytes]) -> None:
            if proc.stdout is None:
                return
            for line in iter(proc.stdout.readline, b""):
                sys.stdout.write(f"{name:>9} | {line.decode('utf-8', 'replace')}")
                sys.stdout.flush()

        for name, cmd in processes.items():
            proc = subprocess.Popen(  # noqa: S603 - fixed argv built above
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
            children[name] = proc
            threading.Thread(target=pump, args=(name, proc), daemon=True).start()

        def stop(*_: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  柏市役所 LINE 配信管理: {web_url}/"
                + (
                    f"\n  LINE サンドボックス（市民に届いた内容）: {settings.SANDBOX_URL}/"
                    if settings.LINE_USES_SANDBOX
                    else ""
                )
                + "\n  Ctrl-C で停止します。\n"
            )
        )
        exit_code = 0
        while not stopping.is_set():
            for name, proc in children.items():
                if proc.poll() is not None:
                    self.stderr.write(
                        f"{name} が終了しました (exit {proc.returncode})。すべて停止します。"
                    )
                    exit_code = proc.returncode or 1
                    stopping.set()
                    break
            time.sleep(0.5)
        for proc in children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for proc in children.values():
            try:
                proc.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        sys.exit(exit_code)
