"""Approval alerts: time from a drafter submitting an emergency to the first supervisor alert
at the LINE sandbox (push) and at the mail server (SMTP), with an ordinary 100k multicast.

"Submit" is the start of the drafter's POST to ``broadcasts:submit`` over HTTP to a real
gunicorn (2 sync workers), on a connection already open, with the page's CSRF token (from a
GET of the broadcast page first, not timed). "LINE" is when the sandbox accepted the first push
of this submission (any supervisor); "mail" is when the SMTP sink in this process had the
first message's data (any supervisor). The path: view → ``broadcast_submit`` (the alert rows
in its transaction) → commit → on-commit enqueue of ``deliver_approval_alerts`` on the
``emergency`` queue → the emergency worker → pushes (LINE first), then e-mails over SMTP.

Processes, as in production: gunicorn -w 2 (web); celery worker -Q emergency -c 1; celery
worker -Q default -c 1 (the ordinary multicast); a private Redis (broker); PostgreSQL or
SQLite; no beat (the backstop would hide a lost enqueue). The LINE sandbox and the SMTP sink
run in this process. Three supervisors, each with a linked LINE and an e-mail address.

Phases: idle, then busy — ordinary 100,000-recipient multicasts (200 chunks of 500, sandbox
latency 20 ms per multicast) back to back on the default worker; every submission is made
while one is SENDING (checked and reported).

    .venv/bin/python bench/notifications/submit_to_alert.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_notify
"""

from __future__ import annotations

import re
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import common
from bench.emergency.approval_to_line import (
    EMERGENCY_CATEGORY,
    ORDINARY_CATEGORY,
    Browser,
    OrdinaryLoad,
    load_average,
    load_in_progress,
    start_redis,
    start_stack,
    supervisor_session,
    trim_sandbox,
)

GOAL_P95_S = 2.0
SUPERVISORS = 3


# --- an SMTP server that accepts everything and notes when -------------------------------------
class SmtpSink(socketserver.ThreadingTCPServer):
    """Enough SMTP for Django's backend: EHLO, MAIL, RCPT, DATA, QUIT."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.received: list[tuple[float, list[str]]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def since(self, t0: float) -> list[tuple[float, list[str]]]:
        with self.lock:
            return [r for r in self.received if r[0] >= t0]


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        recipients: list[str] = []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb in ("HELO", "NOOP", "RSET"):
                self.reply("250 OK")
            elif verb == "MAIL":
                recipients = []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                while self.rfile.readline() not in (b".\r\n", b".\n", b""):
                    pass
                server: Any = self.server
                with server.lock:
                    server.received.append((time.time(), list(recipients)))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


# --- the bench --------------------------------------------------------------------------------
def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--submissions", type=int, default=30, help="measured submissions per phase")
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--phases", default="idle,busy")
    args = p.parse_args()
    name = "notifications"
    db = common.BenchDatabase(name, args.database_url, keep=args.keep)
    db.create()
    run = common.run_dir(name)
    sandbox = common.start_sandbox()
    sink = SmtpSink()
    bootstrap = common.Processes(run, {})
    redis_url = args.redis_url or start_redis(bootstrap)
    extra = {
        "SEND_WINDOW_START": "00:00",
        "SEND_WINDOW_END": "23:59",
        "EMAIL_URL": f"smtp://127.0.0.1:{sink.port}",
        "SITE_URL": "https://line-admin.example.lg.jp",
    }
    env = common.bench_env(db=db, sandbox_url=sandbox.url, run=run, redis_url=redis_url, **extra)
    common.configure(env)
    procs = common.Processes(run, env)
    try:
        report = measure(args, db, sandbox, sink, procs, redis_url)
    finally:
        procs.stop_all()
        bootstrap.stop_all()
        sandbox.stop()
        sink.shutdown()
        db.drop()
    print(report)
    (common.OUT / "notifications.txt").write_text(report + "\n")


def make_supervisors(sandbox: Any) -> list[str]:
    """Three more 承認者, each with an e-mail address and a linked LINE account."""
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from broadcasts import roles
    from broadcasts.models import LineLink, User
    from line_sandbox import synthetic_user_id

    line_ids = []
    for n in range(SUPERVISORS):
        user = User.objects.create_user(
            username=f"bench-boss-{n}", password=None, email=f"boss{n}@example.lg.jp"
        )
        user.groups.add(Group.objects.get(name=roles.SUPERVISOR))
        line_user_id = synthetic_user_id(3_000_000 + n)
        LineLink.objects.create(user=user, line_user_id=line_user_id, linked_at=timezone.now())
        line_ids.append(line_user_id)
    sandbox.state.add_followers(user_ids=line_ids)
    return line_ids


def draft_emergency(drafter: Any, n: int, phase: str) -> Any:
    from broadcasts import services
    from broadcasts.models import Broadcast, Category

    return services.broadcast_create(
        author=drafter,
        title=f"ベンチ緊急 {phase} #{n}",
        categories=list(Category.objects.filter(code=EMERGENCY_CATEGORY)),
        messages=[{"type": "text", "text": f"【柏市】避難指示を発令しました。{phase}#{n}"}],
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="ベンチマーク",
    )


def one_submission(
    browser: Browser,
    drafter: Any,
    sandbox: Any,
    sink: SmtpSink,
    line_ids: list[str],
    n: int,
    phase: str,
) -> dict[str, Any]:
    from django.urls import reverse

    trim_sandbox(sandbox)
    broadcast = draft_emergency(drafter, n, phase)
    page = browser.get(reverse("broadcasts:detail", args=[broadcast.pk]))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the broadcast page"
    busy = load_in_progress()
    started, ended, status, location = browser.post(
        reverse("broadcasts:submit", args=[broadcast.pk]), {"csrfmiddlewaretoken": token.group(1)}
    )
    if status != 302 or "edit" in location:
        raise SystemExit(f"submission refused: {status} {location}")

    def first_push() -> float | None:
        times = [
            d.accepted_at.timestamp()
            for uid in line_ids
            for d in sandbox.state.deliveries(endpoint="push", user_id=uid)
        ]
        return min(times) if times else None

    def first_mail() -> float | None:
        times = [t for t, _ in sink.since(started)]
        return min(times) if times else None

    common.wait_for(lambda: first_push() is not None, 30, f"the LINE alert #{n}", step=0.005)
    common.wait_for(lambda: first_mail() is not None, 30, f"the e-mail alert #{n}", step=0.005)
    common.wait_for(
        lambda: len(sink.since(started)) >= SUPERVISORS, 30, f"every e-mail #{n}", step=0.01
    )
    line_at, mail_at = first_push(), first_mail()
    assert line_at is not None and mail_at is not None
    pushes = sum(len(sandbox.state.deliveries(endpoint="push", user_id=u)) for u in line_ids)
    return {
        "line": line_at - started,
        "mail": mail_at - started,
        "response": ended - started,
        "busy": busy and load_in_progress(),
        "pushes": pushes,
        "mails": len(sink.since(started)),
    }


def measure(
    args: Any,
    db: common.BenchDatabase,
    sandbox: Any,
    sink: SmtpSink,
    procs: common.Processes,
    redis_url: str,
) -> str:
    from django.utils import timezone

    from line_sandbox import synthetic_user_id

    lines: list[str] = []
    say = lines.append
    migrate_s = common.migrate()
    day = common.open_today_if_closed(timezone.now().astimezone(common.JST).date())
    drafter, supervisor = common.make_staff()
    ids = [synthetic_user_id(2_000_000 + i) for i in range(args.recipients)]
    with common.timed() as t_followers:
        common.make_followers(ids, ORDINARY_CATEGORY)
    sandbox.state.reset()
    sandbox.state.add_followers(user_ids=ids)
    line_ids = make_supervisors(sandbox)
    sandbox.state.set_fault(
        common.MULTICAST, mode="latency", latency_ms=args.latency_ms, count=None
    )
    port = start_stack(procs, "minimal")  # the shape this bench has always measured
    browser = Browser(port, supervisor_session(drafter).session_key)

    say("# approval alerts — emergency submitted → first supervisor alert (LINE push, e-mail)")
    say(f"setup: {common.describe_setup(db, redis_url)}")
    say(
        "processes: gunicorn 2 sync workers (web); celery worker -Q emergency -c 1 (alerts); "
        "celery worker -Q default -c 1 (ordinary multicast); private Redis broker; no beat; "
        "LINE sandbox and SMTP sink in the bench process"
    )
    say(
        f"data: {args.recipients:,} followers (inserted in {t_followers[0]:.1f} s, migrate "
        f"{migrate_s:.1f} s); {SUPERVISORS + 1} 承認者, {SUPERVISORS} with LINE and e-mail "
        f"(each submission: {SUPERVISORS} pushes, then {SUPERVISORS} e-mails over SMTP); "
        f"ordinary load: multicast to {args.recipients:,} subscribers, sandbox latency "
        f"{args.latency_ms} ms per multicast; today (JST) is {day}"
    )
    say(f"load average before: {load_average()} (other work on this machine shows here)")
    for n in range(2):  # warm-up: connections, first imports, SMTP
        one_submission(browser, drafter, sandbox, sink, line_ids, n, "warmup")

    load = OrdinaryLoad((drafter, supervisor))
    summary = []
    for phase in args.phases.split(","):
        results = []
        for n in range(1, args.submissions + 1):
            if phase == "busy":
                load.keep_busy()
                load.wait_sending()
                time.sleep(0.05 * (n % 7))  # land at different points of the send
                if not load_in_progress():
                    load.keep_busy()
                    load.wait_sending()
            results.append(one_submission(browser, drafter, sandbox, sink, line_ids, n, phase))
        say("")
        say(f"## {phase}: {len(results)} submissions (load average after: {load_average()})")
        for key, label in (("line", "LINE push"), ("mail", "e-mail")):
            values = [r[key] for r in results]
            p50, p95, worst = (common.percentile(values, q) for q in (50, 95, 100))
            say(f"submit → first {label}: p50 {p50:.3f} s, p95 {p95:.3f} s, max {worst:.3f} s")
            summary.append(
                f"goal p95 ≤ {GOAL_P95_S:.0f} s, submit → first {label} ({phase}): "
                f"{common.verdict(p95 <= GOAL_P95_S)} ({p95:.3f} s)"
            )
        say(f"POST answered: p50 {common.percentile([r['response'] for r in results], 50):.3f} s")
        say(
            "each submission alerted exactly once per supervisor and channel: "
            + str(all(r["pushes"] == SUPERVISORS and r["mails"] == SUPERVISORS for r in results))
        )
        if phase == "busy":
            busy = sum(r["busy"] for r in results)
            say(
                f"submitted while an ordinary 100k multicast was SENDING (before and after): "
                f"{busy}/{len(results)}; ordinary multicasts started: {load.started}"
            )
    say("")
    lines.extend(summary)
    ok = all("PASS" in s for s in summary)
    lines.append(f"overall: {common.verdict(ok)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
