"""Shared plumbing for the bench scripts: a throwaway database, Django configured from the
environment, an in-process LINE sandbox, staff, followers, approved broadcasts, and the small
statistics the scripts print.

Import order matters: ``configure()`` sets the environment *before* ``django.setup()``, because
settings are read from the environment once, at import (``kashiwa/settings/env.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
JST = ZoneInfo("Asia/Tokyo")
MULTICAST = "/v2/bot/message/multicast"
SANDBOX_TOKEN = "sandbox-channel-access-token"  # noqa: S105 - the sandbox's public token

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# --- command line -------------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--database-url",
        default="",
        help="postgresql://user@host:5432/bench_<name> (created and dropped by the script; the "
        "name must start with 'bench'); default: a throwaway SQLite file under bench/out/",
    )
    p.add_argument(
        "--redis-url",
        default="",
        help="Redis for the Celery broker and the cache (the rate limiter's counters), e.g. "
        "redis://127.0.0.1:6379/13; default: the embedded SQLite broker and cache",
    )
    p.add_argument("--keep", action="store_true", help="keep the database and logs afterwards")
    p.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: do not ANALYZE after loading followers (the state right after a bulk "
        "load, before autovacuum has run)",
    )
    return p


# --- the database -------------------------------------------------------------------------
@dataclass
class BenchDatabase:
    """A database of the bench's own: a fresh SQLite file, or a PostgreSQL database created
    for this run and dropped afterwards."""

    name: str
    url: str = ""
    keep: bool = False
    vendor: str = field(init=False, default="sqlite")

    def __post_init__(self) -> None:
        if not self.url:
            self.path = OUT / f"{self.name}.sqlite3"
            self.url = f"sqlite:///{self.path}"
            return
        parsed = urlparse(self.url)
        if parsed.scheme not in ("postgres", "postgresql"):
            raise SystemExit(f"--database-url must be postgresql://…, not {parsed.scheme}://")
        dbname = parsed.path.lstrip("/")
        if not dbname.startswith("bench"):
            raise SystemExit(
                f"refusing to create and drop database {dbname!r}: its name must start with "
                "'bench' (e.g. postgresql://postgres@127.0.0.1:5432/bench_kashiwa)"
            )
        self.vendor = "postgresql"
        self.dbname = dbname
        self.admin_url = urlunparse(parsed._replace(path="/postgres"))

    def create(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        if self.vendor == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        self._admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.dbname}"')

    def drop(self) -> None:
        if self.keep:
            return
        if self.vendor == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        from django.db import connections

        connections.close_all()
        self._admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)


# --- Django -------------------------------------------------------------------------------
def run_dir(name: str) -> Path:
    """Logs, broker folder and beat schedule of one run; emptied first."""
    path = OUT / f"{name}-run"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def bench_env(
    *, db: BenchDatabase, sandbox_url: str, run: Path, redis_url: str = "", **extra: str
) -> dict[str, str]:
    """The environment the bench process and its children share."""
    env = {
        "DJANGO_SETTINGS_MODULE": "kashiwa.settings.test",
        "DATABASE_URL": db.url,
        "KASHIWA_DATA_DIR": str(run / "data"),
        "KASHIWA_BROKER_DIR": str(run / "broker"),
        "LINE_API_BASE_URL": sandbox_url,
        "LINE_CHANNEL_ACCESS_TOKEN": SANDBOX_TOKEN,
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["CELERY_BROKER_URL"] = redis_url
    return env


def configure(env: dict[str, str]) -> None:
    os.environ.update(env)
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        if name not in env:
            os.environ.pop(name, None)
    import django

    django.setup()


def migrate() -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return time.perf_counter() - started


def start_sandbox() -> Any:
    """A sandbox on a free loopback port, warmed up: its first validation loads and compiles
    the OpenAPI document (~1.5 s), which a long-running sandbox has long done. Unwarmed,
    the first request on each of the sender's connections waits for that (the loaders are
    cached but not locked, so concurrent first requests each do it)."""
    from line_sandbox import LineSandbox, synthetic_user_id, validation

    for endpoint in ("multicast", "broadcast"):
        body: dict[str, Any] = {"messages": [{"type": "text", "text": "warm-up"}]}
        if endpoint == "multicast":
            body["to"] = [synthetic_user_id(0)]
        schema = validation.request_schema(f"/v2/bot/message/{endpoint}")
        assert schema is not None
        validation.validate_body(schema, body, endpoint=endpoint)
    return LineSandbox("127.0.0.1", 0, token=SANDBOX_TOKEN).start()


def describe_setup(db: BenchDatabase, redis_url: str) -> str:
    from django.db import connection

    version = ""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
            version = "SQLite " + cursor.fetchone()[0]
        else:
            cursor.execute("show server_version")
            version = "PostgreSQL " + cursor.fetchone()[0]
    broker = f"Redis ({redis_url})" if redis_url else "embedded SQLite broker and cache"
    return f"{version}; {broker}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"


# --- data ---------------------------------------------------------------------------------
def make_staff() -> tuple[Any, Any]:
    """A drafter and a supervisor (different people: four eyes)."""
    from django.contrib.auth.models import Group

    from broadcasts import roles
    from broadcasts.models import Division, User

    def user(username: str, role: str, division: str) -> User:
        div, _ = Division.objects.get_or_create(name=division)
        u = User.objects.create_user(username=username, password=None, division=div)
        u.groups.add(Group.objects.get(name=role))
        return u

    return (
        user("bench-drafter", roles.DRAFTER, "子ども政策課"),
        user("bench-supervisor", roles.SUPERVISOR, "広報広聴課"),
    )


def make_followers(
    user_ids: Sequence[str], category: str, batch: int = 5000, analyze: bool = True
) -> None:
    """Followers subscribed to one category, in bulk; then ``ANALYZE`` on PostgreSQL, as
    autovacuum would do shortly after such a load (without statistics the planner takes the
    tables for ~500 rows, and the recipient cursor's nested loop over 100,000 × 100,000 rows
    does not finish: see README)."""
    from django.db import connection, transaction

    from broadcasts.models import Category, Follower

    cat = Category.objects.get(code=category)
    through = Follower.categories.through
    if connection.vendor == "postgresql":
        _copy_followers(user_ids, cat.pk, 1 << cat.bit)
        user_ids = []  # done
    for start in range(0, len(user_ids), batch):
        with transaction.atomic():
            followers = Follower.objects.bulk_create(
                [
                    Follower(line_user_id=uid, category_bits=1 << cat.bit)
                    for uid in user_ids[start : start + batch]
                ]
            )
            if followers[0].pk is None:  # backends that do not return ids
                followers = list(
                    Follower.objects.filter(line_user_id__in=user_ids[start : start + batch])
                )
            through.objects.bulk_create(
                [through(follower_id=f.pk, category_id=cat.pk) for f in followers]
            )
    if analyze and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Follower._meta.db_table}, {through._meta.db_table}")


def _copy_followers(user_ids: Sequence[str], category_id: int, category_bits: int) -> None:
    """PostgreSQL: COPY the followers (ids from the table's identity) and subscribe them with
    one INSERT … SELECT: a million in ~20 s instead of minutes."""
    from django.db import connection, transaction
    from django.db.models import JSONField

    from broadcasts.models import Follower

    fields = [f for f in Follower._meta.concrete_fields if not f.primary_key]
    defaults = {f.attname: f.get_default() for f in fields}
    json_fields = {f.attname for f in fields if isinstance(f, JSONField)}
    columns = ", ".join(f'"{f.column}"' for f in fields)
    table = Follower._meta.db_table
    through = Follower.categories.through._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')  # noqa: S608 - ours
        before = cursor.fetchone()[0]
        from psycopg.types.json import Jsonb

        with cursor.cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for user_id in user_ids:
                row = []
                for f in fields:
                    value = user_id if f.attname == "line_user_id" else defaults[f.attname]
                    if f.attname == "category_bits":  # the row's copy of its subscription
                        value = category_bits
                    if f.attname in json_fields and value is not None:
                        value = Jsonb(value)
                    row.append(value)
                copy.write_row(row)
        cursor.execute(
            f'INSERT INTO "{through}" (follower_id, category_id) '  # noqa: S608 - ours
            f'SELECT id, %s FROM "{table}" WHERE id > %s',
            [category_id, before],
        )


def approved_broadcast(
    *, author: Any, approver: Any, text: str, title: str, category: str, now: Any = None
) -> Any:
    """An ordinary broadcast to a category's subscribers, through the services as staff do."""
    from broadcasts import services
    from broadcasts.models import Broadcast, Category

    broadcast = services.broadcast_create(
        author=author,
        title=title,
        categories=list(Category.objects.filter(code=category)),
        messages=[{"type": "text", "text": text}],
        audience=Broadcast.Audience.SUBSCRIBERS,
        priority=Broadcast.Priority.NORMAL,
    )
    services.broadcast_submit(broadcast=broadcast, actor=author)
    return services.broadcast_approve(broadcast=broadcast, actor=approver, now=now)


def open_today_if_closed(today: dt.date) -> str:
    """A CalendarOverride that opens ``today`` (JST) if it is a closed day; returns why."""
    from broadcasts import selectors
    from broadcasts.models import CalendarOverride

    noon = dt.datetime.combine(today, dt.time(12), tzinfo=ZoneInfo("Asia/Tokyo"))
    calendar = selectors.calendar_load(now=noon)
    reason = calendar.closed_reason(today)
    if reason is None:
        return "an opening day"
    CalendarOverride.objects.update_or_create(
        date=today, defaults={"is_open": True, "reason": "ベンチマーク用の臨時開庁"}
    )
    return f"closed ({reason}); opened by a CalendarOverride"


# --- processes ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes in their own sessions, logged to files, always stopped on exit."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = {**os.environ, **env}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def celery(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-m", "celery", "-A", "kashiwa", *args])

    def stop_all(self) -> None:
        import signal

        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


# --- memory -------------------------------------------------------------------------------
def proc_status_kb(pid: int, key: str) -> int | None:
    """``VmRSS``/``VmHWM`` of a process in kB, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """The process and all its children, grandchildren, … (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo and len(found) < 256:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with (
                    contextlib.suppress(OSError),
                    open(f"/proc/{current}/task/{task}/children") as f,
                ):
                    todo += [int(c) for c in f.read().split()]
    return found


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds each process has used so far (gone ones are left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def cpu_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle/iowait)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (e.g. the PostgreSQL backends)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == name:
                    found.append(int(entry))
    return found


# --- statistics ---------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def sliding_window_max(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any window ``[t, t + window)`` (two pointers over sorted times)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def tightest_span(times: Sequence[float], count: int) -> float:
    """The shortest time in which ``count`` of the events happened (``inf`` if fewer): with
    ``count`` = limit + 1, how far from breaking "limit in any 1 s" the closest ones came."""
    return tightest_window(times, count)[1]


def tightest_window(times: Sequence[float], count: int) -> tuple[float, float]:
    """(when it began, how long it lasted): the shortest time holding ``count`` events."""
    ordered = sorted(times)
    spans = [
        (ordered[i + count - 1] - ordered[i], ordered[i]) for i in range(len(ordered) - count + 1)
    ]
    span, start = min(spans, default=(float("inf"), float("nan")))
    return start, span


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


# --- what LINE saw: the full sandbox or the lean stand-in -----------------------------------
@dataclass
class LineView:
    """One send as the LINE stand-in saw it."""

    arrivals: list[float]  # wall-clock arrival of each multicast request
    answers: list[float]
    statuses: dict[int, int]
    server_ms: list[float]
    counts: dict[str, int]  # recipient → copies accepted
    # (when, how late) the stand-in's own event loop woke ≥ 20 ms late (lean stand-in only)
    stalls: list[tuple[float, float]] = field(default_factory=list)

    def exactly_once(self, ids: Sequence[str]) -> tuple[bool, int, int]:
        """(every ID exactly once, IDs missing, IDs received more than once)."""
        twice = sum(1 for c in self.counts.values() if c > 1)
        missing = len(set(ids) - set(self.counts))
        extra = len(set(self.counts) - set(ids))
        return (missing == 0 and twice == 0 and extra == 0), missing, twice


class SandboxLine:
    """The full LINE sandbox, in this process (it validates every request against LINE's
    OpenAPI document and keeps followers, inboxes and deliveries)."""

    name = "full sandbox (in the bench process)"

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.url = sandbox.url

    def prepare(self, ids: Sequence[str], latency_ms: float) -> None:
        self.sandbox.state.reset()
        self.sandbox.state.add_followers(user_ids=list(ids))
        self.sandbox.state.set_fault(MULTICAST, mode="latency", latency_ms=latency_ms, count=None)

    def cpu(self) -> float:
        return time.process_time()  # the sandbox's threads are this process

    def view(self) -> LineView:
        from collections import Counter

        log = [r for r in self.sandbox.state.requests() if r.path == MULTICAST]
        counts: Counter[str] = Counter()
        for d in self.sandbox.state.deliveries(endpoint=MULTICAST):
            counts.update(d.recipients)
        return LineView(
            arrivals=[r.time.timestamp() - r.duration_ms / 1000 for r in log],
            answers=[r.time.timestamp() for r in log],
            statuses=dict(Counter(r.status for r in log)),
            server_ms=sorted(r.duration_ms for r in log),
            counts=dict(counts),
        )

    def stop(self) -> None:
        self.sandbox.stop()


class LeanLine:
    """The lean stand-in (``bench/lean_line.py``), a process of its own: LINE's status codes
    and headers after the latency, retry keys checked, nothing else."""

    name = "lean stand-in (bench/lean_line.py, own process)"

    def __init__(self, latency_ms: float = 20, log: Path | None = None) -> None:
        from bench.lean_line import LeanLine as Process

        self.process = Process(latency_ms, log)
        self.url = self.process.url

    def prepare(self, ids: Sequence[str], latency_ms: float) -> None:
        self.process.reset(latency_ms)

    def cpu(self) -> float:
        return self.process.cpu()

    def view(self) -> LineView:
        from collections import Counter

        data = self.process.log()
        log = [e for e in data["log"] if e[2] == MULTICAST]
        return LineView(
            arrivals=[e[0] for e in log],
            answers=[e[1] for e in log],
            statuses=dict(Counter(e[3] for e in log)),
            server_ms=sorted((e[1] - e[0]) * 1000 for e in log),
            counts=self.process.recipients(),
            stalls=[(when, late) for when, late in data.get("stalls", [])],
        )

    def stop(self) -> None:
        self.process.stop()
