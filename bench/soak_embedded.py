"""Soak: the embedded stack for N minutes with sends and webhook events throughout. Does any
process die? (issue 12, finding 2: the filesystem broker killed the worker about 60 s after
`./dev run`, and runstack then stopped everything.)

What runs is what `./dev run` starts — `manage.py migrate`, `seed_demo`, then `manage.py
runstack`: web (runserver), worker (queue default, prefork -c 2), emergency (queue emergency,
-c 1), beat and the LINE sandbox — with the embedded defaults (SQLite database, SQLite broker,
SQLite cache; no DATABASE_URL or REDIS_URL), in a data directory of its own and on free
loopback ports. The send window is widened to the whole day and today opened with a
CalendarOverride if it is closed, so that ordinary sends go at any hour.

During the window, from this process:
- an ordinary send (to one category's subscribers) every ``--send-every`` s and an emergency
  every ``--emergency-every`` s, each created, submitted and approved through the services
  as staff do (the approval enqueues; the dispatcher and the workers do the rest);
- ``--events-per-second`` webhook events (a follow and a text message per new citizen), signed
  and delivered to the web process by the sandbox's webhook sender, in one request a second.

Afterwards (new load stops; sends and events get ``--drain`` s to finish) it prints, each
with its goal: sends completed / expected, webhook events stored and processed / delivered,
process deaths and restarts (runstack's console), fatal broker errors in the logs, whether
運用状況, read by another process, sees the dispatcher's heartbeat, and /healthz.

    .venv/bin/python bench/soak_embedded.py                 # 10 minutes (~11 with set-up)
    .venv/bin/python bench/soak_embedded.py --minutes 1

Bounded: the load stops after --minutes, the drain after --drain s, and runstack (and with it
every child) is stopped by SIGTERM, then SIGKILL to its process group. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

# What runstack prints (kashiwa/supervisor.py).
STARTED = re.compile(r"起動しました: (\w+) \(pid (\d+)\)")
DIED = "が終了しました"
RESTARTED = "を再起動しました"
FATAL = re.compile(r"Unrecoverable error|CRITICAL|JSONDecodeError")
CATEGORY = "events"
# The environment a developer's shell may have that must not reach the embedded stack.
NOT_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "KASHIWA_BROKER_DIR",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "LINE_CHANNEL_SECRET",
    "LINE_API_BASE_URL",
    "LINE_DATA_API_BASE_URL",
    "DJANGO_SETTINGS_MODULE",
)


class EmbeddedStack:
    """``manage.py runstack`` with the embedded defaults, in ``run``, on free ports."""

    def __init__(self, run: Path, *, followers: int, **extra_env: str) -> None:
        self.run = run
        self.followers = followers
        self.web_port = common.free_port()
        self.sandbox_port = common.free_port()
        self.jma_sandbox_port = common.free_port()
        env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        self.env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "kashiwa.settings.dev",
            "KASHIWA_DATA_DIR": str(run / "data"),
            "LINE_SANDBOX_PORT": str(self.sandbox_port),
            "JMA_SANDBOX_PORT": str(self.jma_sandbox_port),
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.console = run / "runstack.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=common.REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, timeout: float = 120) -> float:
        """Start runstack; returns the seconds until web, broker and sandbox answered."""
        started = time.monotonic()
        with self.console.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "runstack",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.web_port),
                    "--followers",
                    str(self.followers),
                ],
                cwd=common.REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"runstack exited ({self.proc.returncode}):\n{self.tail()}")
            if self.healthz()[0] == 200 and len(self.started()) >= 5:
                return time.monotonic() - started
            time.sleep(0.5)
        raise SystemExit(f"the stack did not come up in {timeout} s:\n{self.tail()}")

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """/healthz from loopback (the checks are shown to loopback callers)."""
        try:
            with urllib.request.urlopen(f"{self.web_url}/healthz", timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def lines(self) -> list[str]:
        return self.console.read_text(errors="replace").splitlines()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.lines()[-n:])

    def started(self) -> dict[str, int]:
        """The first pid of each child, from runstack's console."""
        found: dict[str, int] = {}
        for line in self.lines():
            match = STARTED.search(line)
            if match and match[1] not in found:
                found[match[1]] = int(match[2])
        return found

    def deaths(self) -> list[str]:
        return [line for line in self.lines() if DIED in line]

    def restarts(self) -> list[str]:
        return [line for line in self.lines() if RESTARTED in line]

    def fatal_lines(self) -> list[str]:
        return [line for line in self.lines() if FATAL.search(line)]

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def post_json(url: str, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


@dataclass
class Load:
    sends: dict[int, tuple[str, float]] = field(default_factory=dict)  # id → (priority, t)
    events_delivered: list[str] = field(default_factory=list)  # webhookEventIds answered 200
    events_refused: int = 0
    delivery_errors: list[str] = field(default_factory=list)


def approve_send(n: int, *, emergency: bool, users: dict[str, Any]) -> int:
    from django.utils import timezone

    from broadcasts import selectors, services
    from broadcasts.models import Broadcast, Category

    priority = Broadcast.Priority.EMERGENCY if emergency else Broadcast.Priority.NORMAL
    code = "disaster_crime" if emergency else CATEGORY
    broadcast = services.broadcast_create(
        author=users["drafter"],
        title=f"soak-{n} {'緊急' if emergency else 'お知らせ'}",
        categories=list(Category.objects.filter(code=code)),
        messages=[{"type": "text", "text": f"【柏市】耐久試験の配信 {n}"}],
        audience=Broadcast.Audience.SUBSCRIBERS,
        priority=priority,
        emergency_reason="耐久試験（緊急配信の経路）" if emergency else "",
    )
    services.broadcast_submit(broadcast=broadcast, actor=users["drafter"])
    confirmation = None
    if emergency:
        count = selectors.recipient_count(
            broadcast.audience, list(broadcast.categories.values_list("id", flat=True))
        )
        confirmation = services.EmergencyConfirmation(
            typed_count=str(count), second_factor_verified_at=timezone.now()
        )
    approver = users["supervisor" if emergency else "reviewer"]
    services.broadcast_approve(broadcast=broadcast, actor=approver, emergency=confirmation)
    return broadcast.pk


def deliver_events(stack: EmbeddedStack, citizens: list[str], load: Load) -> None:
    """A follow and a text message per citizen, in one signed request from the sandbox."""
    from line_sandbox import follow_event, text_message_event

    events = []
    for user_id in citizens:
        events += [follow_event(user_id), text_message_event(user_id, "休日当番医はどこですか")]
    try:
        answer = post_json(f"{stack.sandbox_url}/sandbox/api/webhook", {"events": events})
    except (OSError, ValueError) as exc:
        load.delivery_errors.append(f"{type(exc).__name__}: {exc}")
        return
    ids = [e["webhookEventId"] for e in answer["payload"]["events"]]
    if answer["status"] == 200:
        load.events_delivered += ids
    else:
        load.events_refused += len(ids)
        load.delivery_errors.append(f"webhook answered {answer['status']}: {answer['body'][:200]}")


def run_load(stack: EmbeddedStack, args: argparse.Namespace, users: dict[str, Any]) -> Load:
    from line_sandbox import synthetic_user_id

    load = Load()
    started = time.monotonic()
    end = started + args.minutes * 60
    next_send, next_emergency, next_events = started, started + 5, started
    per_request = max(round(args.events_per_second / 2), 1)  # citizens; 2 events each
    citizen = 0
    while (now := time.monotonic()) < end:
        if now >= next_send:
            n = len(load.sends) + 1
            load.sends[approve_send(n, emergency=False, users=users)] = ("normal", now - started)
            next_send += args.send_every
        if now >= next_emergency:
            n = len(load.sends) + 1
            load.sends[approve_send(n, emergency=True, users=users)] = ("emergency", now - started)
            next_emergency += args.emergency_every
        if now >= next_events:
            ids = [synthetic_user_id(700_000 + citizen + i) for i in range(per_request)]
            citizen += per_request
            deliver_events(stack, ids, load)
            next_events += 1.0
        time.sleep(max(min(next_send, next_emergency, next_events) - time.monotonic(), 0))
    return load


@dataclass
class Outcome:
    sends: dict[str, int]
    send_seconds: dict[str, list[float]]
    stored: int
    processed: int
    event_seconds: list[float]


def outcome(load: Load) -> Outcome:
    from broadcasts.models import Broadcast, WebhookEvent

    statuses: dict[str, int] = {}
    send_seconds: dict[str, list[float]] = {"normal": [], "emergency": []}
    for b in Broadcast.objects.filter(pk__in=load.sends):
        statuses[b.status] = statuses.get(b.status, 0) + 1
        if b.status == Broadcast.Status.SENT and b.sent_at and b.approved_at:
            send_seconds[b.priority].append((b.sent_at - b.approved_at).total_seconds())
    events = WebhookEvent.objects.filter(webhook_event_id__in=load.events_delivered)
    done = events.filter(processed_at__isnull=False)
    return Outcome(
        sends=statuses,
        send_seconds=send_seconds,
        stored=events.count(),
        processed=done.count(),
        event_seconds=[
            (e.processed_at - e.received_at).total_seconds()
            for e in done.only("processed_at", "received_at")
        ],
    )


def drain(load: Load, seconds: float) -> tuple[Outcome, float]:
    """Wait until every send is SENT and every delivered event processed (or ``seconds``)."""
    from broadcasts.models import Broadcast

    started = time.monotonic()
    while True:
        result = outcome(load)
        sent = result.sends.get(Broadcast.Status.SENT, 0)
        finished = sent == len(load.sends) and result.processed == len(load.events_delivered)
        if finished or time.monotonic() - started > seconds:
            return result, time.monotonic() - started
        time.sleep(1)


def describe_setup() -> str:
    import celery
    import kombu
    import sqlalchemy

    return (
        f"SQLite {sqlite3.sqlite_version} (database, broker, cache); Celery {celery.__version__}, "
        f"kombu {kombu.__version__}, SQLAlchemy {sqlalchemy.__version__}; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for member in common.descendants(pid):
            total += common.proc_status_kb(member, "VmRSS") or 0
    return total / 1024


def seconds_summary(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {common.percentile(values, 50):.1f} s, p95 {common.percentile(values, 95):.1f} s, "
        f"max {max(values):.1f} s"
    )


def broker_rows(stack: EmbeddedStack) -> int:
    path = Path(stack.env["KASHIWA_DATA_DIR"]) / "broker" / "broker.sqlite3"
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        return db.execute("SELECT count(*) FROM kombu_message").fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10, help="length of the load (default 10)")
    p.add_argument("--send-every", type=float, default=20, help="seconds between ordinary sends")
    p.add_argument("--emergency-every", type=float, default=60, help="seconds between emergencies")
    p.add_argument("--events-per-second", type=float, default=2, help="webhook events per second")
    p.add_argument("--followers", type=int, default=200, help="seed_demo/sandbox followers")
    p.add_argument("--drain", type=float, default=120, help="seconds to let work finish")
    p.add_argument("--run-dir", type=Path, default=common.OUT / "soak_embedded-run")
    args = p.parse_args(argv)

    import shutil

    shutil.rmtree(args.run_dir, ignore_errors=True)
    args.run_dir.mkdir(parents=True)
    window = {"SEND_WINDOW_START": "00:00", "SEND_WINDOW_END": "23:59"}
    stack = EmbeddedStack(args.run_dir, followers=args.followers, **window)
    setup_started = time.monotonic()
    stack.manage("migrate", "--noinput")
    stack.manage("seed_demo", "--followers", str(args.followers))
    for name in NOT_INHERITED:
        os.environ.pop(name, None)
    common.configure(stack.env)  # this process: the same settings, database, broker, cache

    from django.utils import timezone

    from broadcasts import ops
    from broadcasts.models import Broadcast, User

    today = timezone.localdate()
    opened = common.open_today_if_closed(today)
    common.open_today_if_closed(today + dt.timedelta(days=1))  # a run across midnight
    users = {
        u.username: u
        for u in User.objects.filter(username__in=["drafter", "reviewer", "supervisor"])
    }
    try:
        up = stack.start()
        setup = time.monotonic() - setup_started
        pids = stack.started()
        load_before = os.getloadavg()[0]
        memory_before = rss_mb(list(pids.values()))
        load = run_load(stack, args, users)
        result, drained = drain(load, args.drain)
        memory = rss_mb(list(pids.values()))
        load_after = os.getloadavg()[0]
        heartbeat = ops.ops_status()
        health_status, health = stack.healthz()
        first_pids = {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
    finally:
        code = stack.stop()
    last_run = (
        f"{timezone.localtime(heartbeat.dispatcher_last_run):%H:%M:%S}"
        if heartbeat.dispatcher_last_run
        else "never"
    )

    expected = len(load.sends)
    sent = result.sends.get(Broadcast.Status.SENT, 0)
    deaths, restarts, fatal = stack.deaths(), stack.restarts(), stack.fatal_lines()
    normal = sum(1 for kind, _ in load.sends.values() if kind == "normal")
    checks = health.get("checks", {})
    goals = [
        (f"sends completed {sent} / {expected} expected", sent == expected and expected > 0),
        (
            f"webhook events stored {result.stored} / {len(load.events_delivered)} delivered",
            result.stored == len(load.events_delivered) and not load.events_refused,
        ),
        (
            f"webhook events processed {result.processed} / {result.stored} stored",
            result.processed == result.stored,
        ),
        (f"process deaths {len(deaths)} (restarts {len(restarts)})", not deaths),
        (f"fatal broker errors in the logs: {len(fatal)}", not fatal),
        (
            f"運用状況 (read by another process) sees the dispatcher: last run {last_run}",
            not heartbeat.dispatcher_late,
        ),
        (
            f"/healthz {health_status} ("
            + ", ".join(f"{k} {'ok' if v['ok'] else 'FAIL'}" for k, v in checks.items())
            + ")",
            health_status == 200,
        ),
    ]
    print(f"soak of the embedded stack — {describe_setup()}")
    print(
        f"process shape: runstack → web (runserver), worker (-Q default, prefork -c 2), "
        f"emergency (-Q emergency, -c 1), beat, sandbox; pids {pids}"
    )
    print(
        f"load: {args.minutes:g} min; {normal} ordinary sends (every {args.send_every:g} s) + "
        f"{expected - normal} emergency (every {args.emergency_every:g} s); "
        f"{len(load.events_delivered) + load.events_refused} webhook events "
        f"({args.events_per_second:g}/s); today: {opened}"
    )
    print(
        f"set-up {setup:.0f} s (stack up in {up:.0f} s); drained in {drained:.0f} s; "
        f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after"
    )
    print(f"send statuses: {result.sends}")
    print(
        f"approval → sent: ordinary {seconds_summary(result.send_seconds['normal'])}; "
        f"emergency {seconds_summary(result.send_seconds['emergency'])}"
    )
    print(f"webhook event received → processed: {seconds_summary(result.event_seconds)}")
    print(
        f"RSS of the stack (children and their pools) {memory_before:.0f} MB after start-up, "
        f"{memory:.0f} MB at the end; broker messages left {broker_rows(stack)}; children "
        f"still on their first pid: {len(first_pids)} / {len(pids)}; runstack exit code "
        f"after SIGTERM: {code}"
    )
    for line in load.delivery_errors[:5]:
        print(f"  webhook delivery problem: {line}")
    for line in (deaths + fatal)[:10]:
        print(f"  {line}")
    for what, ok in goals:
        print(f"goal: {what}: {common.verdict(ok)}")
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
