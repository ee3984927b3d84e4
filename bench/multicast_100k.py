"""(b) + (c): one ordinary broadcast to 100,000 subscribers — 200 multicast chunks of 500 —
against the LINE sandbox with 20 ms latency per call.

Prints: time to create the 200 Delivery rows (``_prepare``), the send's total time, the
multicast request rate (most requests in any sliding 1-second window, from the sandbox's own
request log), whether every recipient got exactly one copy, and the sending process's peak
memory (``VmHWM`` from /proc, plus ``VmRSS`` sampled every 10 ms by this process).

The send runs in a separate process, as in production: by default a plain Python child that
calls ``broadcast_send`` (``--runner child``), or a real Celery worker (prefork, one pool
process) fed by the dispatcher (``--runner celery``). The sandbox runs in this process.

    .venv/bin/python bench/multicast_100k.py
    .venv/bin/python bench/multicast_100k.py --runner celery
    .venv/bin/python bench/multicast_100k.py \
        --database-url postgresql://postgres@127.0.0.1:5432/bench_kashiwa \
        --redis-url redis://127.0.0.1:6379/13
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

CATEGORY = "childcare_education"
GOALS = {"total_seconds": 2.0, "peak_per_second": 200, "rss_mb": 250}


# --- the child: one send, timed ---------------------------------------------------------
def child(broadcast_id: int) -> None:
    """Runs in the sending process. Prints one JSON line."""
    import faulthandler
    import signal

    import django

    faulthandler.register(signal.SIGUSR1)  # the parent asks for stacks if we hang
    django.setup()
    from broadcasts.line.gateway import get_gateway
    from broadcasts.services.sending import send as sending

    get_gateway()  # the SDK client exists in a warm worker before any task
    rss_before = common.proc_status_kb(os.getpid(), "VmRSS")
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    with (
        mock.patch.object(sending, "_prepare", timed("prepare", sending._prepare)),
        mock.patch.object(
            sending, "_create_deliveries", timed("create_deliveries", sending._create_deliveries)
        ),
        mock.patch.object(
            sending, "_record_accepted", timed("record_accepted", sending._record_accepted)
        ),
        mock.patch.object(sending, "_call", timed("call", sending._call)),
        mock.patch.object(
            sending.RateLimiter, "acquire", timed("ratelimit_wait", sending.RateLimiter.acquire)
        ),
    ):
        started = time.perf_counter()
        started_at = time.time()
        cpu_before = time.process_time()
        outcome = sending.broadcast_send(broadcast_id=broadcast_id)
        total = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    print(
        json.dumps(
            {
                "outcome": outcome.status,
                "detail": outcome.detail,
                "started_at": started_at,
                "total": total,
                "cpu": cpu,
                **timings,
                "rss_before_kb": rss_before,
                "hwm_kb": common.proc_status_kb(os.getpid(), "VmHWM"),
            }
        ),
        flush=True,
    )


# --- the parent ---------------------------------------------------------------------------
def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--runner", choices=("child", "celery"), default="child")
    p.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="MULTICAST_CONCURRENCY for the sender (default: the settings' value)",
    )
    p.add_argument("--repeat", type=int, default=3, help="rounds (a new broadcast each)")
    p.add_argument("--timeout", type=float, default=120, help="give up on a round after this")
    p.add_argument("--child", type=int, default=0, help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        child(args.child)
        return

    run_bench(args)


def run_bench(args: Any) -> None:
    name = f"multicast_{args.runner}"
    db = common.BenchDatabase(name, args.database_url, keep=args.keep)
    db.create()
    run = common.run_dir(name)
    sandbox = common.start_sandbox()
    extra = {"SEND_WINDOW_START": "00:00", "SEND_WINDOW_END": "23:59"}
    if args.concurrency:
        extra["MULTICAST_CONCURRENCY"] = str(args.concurrency)
    env = common.bench_env(
        db=db, sandbox_url=sandbox.url, run=run, redis_url=args.redis_url, **extra
    )
    common.configure(env)
    procs = common.Processes(run, env)
    try:
        report = measure(args, db, sandbox, procs, run)
    finally:
        procs.stop_all()
        sandbox.stop()
        db.drop()
    print(report)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def measure(
    args: Any, db: common.BenchDatabase, sandbox: Any, procs: common.Processes, run: Path
) -> str:
    from django.conf import settings
    from django.utils import timezone

    from line_sandbox import synthetic_user_id

    lines: list[str] = []
    say = lines.append
    migrate_s = common.migrate()
    now_jst = timezone.now().astimezone(common.JST)
    if now_jst.time() >= dt.time(23, 50):
        raise SystemExit("too close to midnight JST for the bench's send window; retry later")
    day = common.open_today_if_closed(now_jst.date())
    staff = common.make_staff()

    ids = [synthetic_user_id(1_000_000 + i) for i in range(args.recipients)]
    with common.timed() as t_followers:
        common.make_followers(ids, CATEGORY, analyze=not args.no_analyze)

    say(f"# multicast_100k — runner={args.runner}, {args.repeat} round(s)")
    say(f"setup: {common.describe_setup(db, args.redis_url)}")
    say(
        f"settings: MULTICAST_CONCURRENCY={settings.MULTICAST_CONCURRENCY}, "
        f"MULTICAST_MAX_PER_SECOND={settings.MULTICAST_MAX_PER_SECOND}, "
        f"latency {args.latency_ms} ms per multicast; "
        f"today (JST) is {day}"
    )
    say(
        f"prep (not measured): migrate {migrate_s:.1f} s, {args.recipients:,} followers "
        f"inserted in {t_followers[0]:.1f} s"
    )
    worker = None
    if args.runner == "celery":
        worker = procs.celery(
            "worker",
            "worker",
            "-Q",
            "default",
            "-c",
            "1",
            "-n",
            f"bench-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
        )
        common.wait_for(lambda: "ready." in procs.log("worker"), 60, "the Celery worker")
        time.sleep(1.0)  # let the pool process settle before the baseline
    rounds = []
    for n in range(1, args.repeat + 1):
        sandbox.state.reset()
        sandbox.state.add_followers(user_ids=ids)
        sandbox.state.set_fault(
            common.MULTICAST, mode="latency", latency_ms=args.latency_ms, count=None
        )
        figures = one_round(args, n, staff, ids, sandbox, procs, worker)
        rounds.append(figures)
        say("")
        say(f"## round {n} (load average before: {figures['load']})")
        lines.extend(figures["lines"])

    def med(key: str) -> float:
        return common.percentile([r[key] for r in rounds], 50)

    total, peak, hwm = (
        med("total"),
        max(r["peak"] for r in rounds),
        max(r["hwm_mb"] for r in rounds),
    )
    once = all(r["exactly_once"] for r in rounds)
    best = min(r["total"] for r in rounds)
    say("")
    say(f"## summary over {len(rounds)} round(s)")
    if args.runner == "child":
        say(
            f"_create_deliveries (100k recipients → 200 rows): median {med('create'):.2f} s; "
            f"_prepare median {med('prepare'):.2f} s"
        )
    say(
        f"total: median {total:.2f} s, best {best:.2f} s, "
        f"all {[round(r['total'], 2) for r in rounds]}"
    )
    if args.runner == "child":
        say(
            f"sending-process CPU: median {med('cpu'):.2f} s; sandbox CPU median "
            f"{med('parent_cpu'):.2f} s"
        )
    say(
        f"goal (b) total ≤ {GOALS['total_seconds']} s (median): "
        f"{common.verdict(total <= GOALS['total_seconds'])} ({total:.2f} s; best {best:.2f} s)"
    )
    say(
        f"goal (b) ≤ {GOALS['peak_per_second']} req/s in any 1 s (worst round): "
        f"{common.verdict(peak <= GOALS['peak_per_second'])} ({peak})"
    )
    say(f"goal (b) exactly one copy each (every round): {common.verdict(once)}")
    say(
        f"goal (c) peak RSS ≤ {GOALS['rss_mb']} MB (worst round): "
        f"{common.verdict(hwm <= GOALS['rss_mb'])} ({hwm:.0f} MB)"
    )
    return "\n".join(lines)


def one_round(
    args: Any,
    n: int,
    staff: tuple[Any, Any],
    ids: list[str],
    sandbox: Any,
    procs: common.Processes,
    worker: subprocess.Popen[bytes] | None,
) -> dict[str, Any]:
    from broadcasts.models import Broadcast, Delivery
    from broadcasts.services.sending import dispatch as sending

    lines: list[str] = []
    say = lines.append
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    broadcast = common.approved_broadcast(
        author=staff[0],
        approver=staff[1],
        title=f"ベンチ 10万人 #{n}",
        text=f"【柏市】子育て支援センターからのお知らせです。#{n}",
        category=CATEGORY,
    )
    samples: list[tuple[float, int]] = []
    result: dict[str, Any] = {}
    if worker is None:
        with mock.patch.object(sending, "enqueue_send"):
            claimed = sending.broadcasts_dispatch_due().claimed
        if claimed != [broadcast.pk]:
            raise SystemExit(f"the dispatcher claimed {claimed}, expected [{broadcast.pk}]")
        result = run_child(broadcast.pk, procs, samples, args.timeout)
        hwm_kb = result["hwm_kb"]
        total = result["total"]
        outcome = result["outcome"]
        rss_before = result["rss_before_kb"]
        hwm_how = "VmHWM of the sending process"
    else:
        rss_before = sum(
            common.proc_status_kb(p, "VmRSS") or 0 for p in common.descendants(worker.pid)[1:]
        )
        started = time.perf_counter()
        sending.broadcasts_dispatch_due()  # enqueues on commit, as beat would
        hwm: dict[int, int] = {}

        def done() -> bool:
            for pid in common.descendants(worker.pid):
                kb = common.proc_status_kb(pid, "VmRSS")
                if kb:
                    samples.append((time.perf_counter(), kb))
                hwm[pid] = max(hwm.get(pid, 0), common.proc_status_kb(pid, "VmHWM") or 0)
            return Broadcast.objects.filter(
                pk=broadcast.pk, status__in=["sent", "failed", "needs_attention"]
            ).exists()

        common.wait_for(done, args.timeout, "the send\n" + procs.log("worker"), step=0.02)
        total = time.perf_counter() - started
        broadcast.refresh_from_db()
        outcome = broadcast.status
        # The task runs in the pool process (a child of the worker's main process).
        pool = [pid for pid in hwm if pid != worker.pid]
        hwm_kb = max((hwm[pid] for pid in pool), default=hwm.get(worker.pid, 0))
        hwm_how = (
            "VmHWM of the worker's pool process; main process "
            f"{hwm.get(worker.pid, 0) / 1024:.0f} MB"
        )

    # --- what LINE saw ---------------------------------------------------------------------
    log = [r for r in sandbox.state.requests() if r.path == common.MULTICAST]
    arrivals = [r.time.timestamp() - r.duration_ms / 1000 for r in log]
    answers = [r.time.timestamp() for r in log]
    statuses = Counter(r.status for r in log)
    server_ms = sorted(r.duration_ms for r in log)
    span = (max(answers) - min(arrivals)) if log else float("nan")
    peak_arrival = common.sliding_window_max(arrivals)
    peak_answer = common.sliding_window_max(answers)
    counts: Counter[str] = Counter()
    for d in sandbox.state.deliveries(endpoint=common.MULTICAST):
        counts.update(d.recipients)
    exactly_once = set(counts) == set(ids) and set(counts.values()) == {1}
    twice = sum(1 for c in counts.values() if c > 1)
    missing = len(set(ids) - set(counts))
    accepted = Delivery.objects.filter(broadcast=broadcast, status="accepted").count()

    say(
        f"outcome: {outcome}; deliveries accepted {accepted}; multicast requests "
        f"{len(log)} ({dict(statuses)})"
    )
    if worker is None:
        say(
            f"_prepare (lease, checks, {accepted} Delivery rows): {result.get('prepare', 0):.2f} s,"
            f" of which _create_deliveries {result.get('create_deliveries', 0):.2f} s"
        )
        say(
            "sender main thread: recording replies {:.2f} s, rate limiter {:.2f} s; the calls "
            "(summed over threads) {:.2f} s".format(
                result.get("record_accepted", 0),
                result.get("ratelimit_wait", 0),
                result.get("call", 0),
            )
        )
        say(
            f"CPU: sending process {result.get('cpu', 0):.2f} s; this process (the sandbox) "
            f"{result.get('parent_cpu', 0):.2f} s during the send"
        )
        say(f"broadcast_send total (prepare + quota check + 200 calls + finish): {total:.2f} s")
    else:
        say(f"dispatch → SENT seen in the database (includes queueing): {total:.2f} s")
    say(
        f"first multicast arrival → last answer (sandbox log): {span:.2f} s; sandbox time per "
        f"multicast p50 {common.percentile(server_ms, 50):.0f} ms, "
        f"max {max(server_ms, default=0):.0f} ms"
    )
    say(
        f"peak multicast requests in any sliding 1 s window: {peak_arrival} by arrival, "
        f"{peak_answer} by answer time"
    )
    say(
        f"every recipient exactly once: {exactly_once} (recipients {len(counts):,}, "
        f"missing {missing}, received twice {twice})"
    )
    peak_sampled = max((kb for _, kb in samples), default=0)
    say(
        f"memory: before the send {rss_before / 1024:.0f} MB RSS; peak {hwm_kb / 1024:.0f} MB "
        f"({hwm_how}); highest 10 ms RSS sample {peak_sampled / 1024:.0f} MB"
    )
    return {
        "lines": lines,
        "load": load,
        "total": total,
        "prepare": result.get("prepare", float("nan")),
        "create": result.get("create_deliveries", float("nan")),
        "cpu": result.get("cpu", float("nan")),
        "parent_cpu": result.get("parent_cpu", float("nan")),
        "peak": peak_arrival,
        "exactly_once": exactly_once,
        "hwm_mb": hwm_kb / 1024,
    }


def run_child(
    broadcast_id: int, procs: common.Processes, samples: list[tuple[float, int]], timeout: float
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(broadcast_id)]
    if os.environ.get("BENCH_PROFILE_CMD"):  # e.g. "py-spy record -o out.svg --threads --"
        cmd = [*os.environ["BENCH_PROFILE_CMD"].split(), *cmd]
    proc = subprocess.Popen(
        cmd,
        cwd=common.REPO,
        env=procs.env,
        stdout=subprocess.PIPE,
        stderr=(procs.logs / "child.log").open("ab"),
    )
    cpu_before = time.process_time()
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        kb = common.proc_status_kb(proc.pid, "VmRSS")
        if kb:
            samples.append((time.perf_counter(), kb))
        time.sleep(0.01)
    if proc.poll() is None:
        import signal

        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        proc.kill()
        proc.wait(timeout=10)
        raise SystemExit(f"the send did not finish in {timeout}s\n{procs.log('child')}")
    out = proc.stdout.read().decode() if proc.stdout else ""
    parent_cpu = time.process_time() - cpu_before
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return {**json.loads(line), "parent_cpu": parent_cpu}
    raise SystemExit(f"the sending process printed no result\n{out}\n{procs.log('child')}")


if __name__ == "__main__":
    main()
