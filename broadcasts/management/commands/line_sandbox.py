"""``python manage.py line_sandbox``: run the LINE sandbox until Ctrl-C.

Without channel credentials the app sends to ``settings.SANDBOX_URL``; this command serves it.
Open the printed URL in a browser to see what each test follower received.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from line_sandbox import LineSandbox


class Command(BaseCommand):
    help = "Run the local LINE Messaging API sandbox (until Ctrl-C)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.SANDBOX_HOST)
        parser.add_argument("--port", type=int, default=settings.SANDBOX_PORT)
        parser.add_argument("--followers", type=int, default=200, help="synthetic followers")
        parser.add_argument(
            "--staff", type=int, default=3, help="how many of them are staff test recipients"
        )
        parser.add_argument(
            "--webhook-url",
            default=None,
            help="where to POST webhook events, e.g. http://127.0.0.1:8000/line/webhook/",
        )
        parser.add_argument(
            "--state-file",
            type=Path,
            default=None,
            help="append the delivery log here as JSON lines and reload it on start",
        )
        parser.add_argument(
            "--broadcast-rate-limit",
            action="store_true",
            help="enforce LINE's 60 requests/hour on broadcast and narrowcast",
        )
        parser.add_argument("--token", default=settings.SANDBOX_CHANNEL_ACCESS_TOKEN)
        parser.add_argument("--verbose-requests", action="store_true", help="log every request")

    def handle(self, *args: Any, **options: Any) -> None:
        secret = settings.LINE_CHANNEL_SECRET or settings.SANDBOX_CHANNEL_SECRET
        sandbox = LineSandbox(
            options["host"],
            options["port"],
            token=options["token"],
            channel_secret=secret,
            webhook_url=options["webhook_url"],
            state_file=options["state_file"],
            verbose=options["verbose_requests"],
        )
        restored = len(sandbox.state.deliveries())
        sandbox.state.add_followers(count=options["followers"], staff_count=options["staff"])
        if options["broadcast_rate_limit"]:
            sandbox.state.configure(broadcast_rate_limit=True)
        try:
            sandbox.start()
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        staff = ", ".join(sandbox.state.staff_ids())
        self.stdout.write(
            self.style.SUCCESS(f"LINE sandbox on {sandbox.url}/ (Ctrl-C to stop)") + "\n"
            f"  followers: {options['followers']} (staff test recipients: {staff or '-'})\n"
            f"  webhook:   {options['webhook_url'] or 'not configured'}\n"
            f"  restored:  {restored} deliveries from {options['state_file'] or '-'}"
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()
            self.stdout.write("LINE sandbox stopped.")
