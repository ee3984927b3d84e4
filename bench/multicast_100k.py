"""(b) + (c): one ordinary broadcast to 100,000 subscribers — 200 multicast chunks of 500 —
against a LINE stand-in with 20 ms latency per call: the lean stand-in (``bench/lean_line.py``,
its own process: LINE's answers and headers, retry keys checked, nothing else), so that the
figure says what our code costs, and the full sandbox (in this process), which spends about as
much CPU per request as the sender does.

Prints: where the time goes (``_prepare`` and the delivery rows, first request → last answer,
recording), the send's total time, the multicast request rate (most requests in any sliding
1-second window, from the stand-in's own request log), whether every recipient got exactly one
copy, and the sending process's peak memory (``VmHWM`` from /proc, plus ``VmRSS`` sampled every
10 ms by this process). Goals and PASS/FAIL last.

The send runs in a separate process, as in production: by default a plain Python child that
calls ``broadcast_send`` (``--runner child``), or a real Celery worker (prefork, one pool
process) fed by the dispatcher (``--runner celery``).

    .venv/bin/python bench/multicast_100k.py                  # lean and full sandbox
    .venv/bin/python bench/multicast_100k.py --line lean --runner celery
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
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

CATEGORY = "childcare_education"
# The send's total time: against the lean stand-in (what our code costs) and against the full
# sandbox (which spends about as much CPU per request as the sender, on the same cores).
GOALS = {
    "total_seconds": {"lean": 1.3, "sandbox": 2.0},
    "peak_per_second": 200,
    "rss_mb": 250,
}
# 1,000,000 recipients (2,000 multicasts; LINE's 200/s makes 10 s the floor): ≤ 11 s.
GOALS_1M = {"lean": 11.0, "sandbox": 11.0}


# --- the child: one send, timed ---------------------------------------------------------
def child(broadcast_id: int) -> None:
    """Runs in the sending process. Prints one JSON line."""
    import faulthandler
    import signal

    import django

    faulthandler.register(signal.SIGUSR1)  # the parent asks for stacks if we hang
    django.setup()
    from broadcasts.line.gateway import get_gateway
    from broadcasts.line.ratelimit import warm_up
    from broadcasts.services.sending import build as blocks
    from broadcasts.services.sending import send as sending

    get_gateway()  # a warm worker has its SDK client and its rate limiter's connection
    warm_up()  # (kashiwa/celery.py makes them as a pool process starts)
    # …and its database connection and calendar: the dispatcher runs in the same pool
    # processes every second.
    from django.db import connection
    from django.utils import timezone

    from broadcasts import selectors

    connection.ensure_connection()
    selectors.calendar_load(now=timezone.now()).in_window(timezone.now())  # holidays built
    # …and it has rehearsed a send's statements (kashiwa/celery.py, sending/warm.py).
    from broadcasts.services.sending.warm import sender_warm_up

    sender_warm_up(now=timezone.now())
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

    block_seconds: list[float] = []  # each block of rows (build.py), the first in _prepare

    def timed_block(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return build_block(*args, **kwargs)
        finally:
            block_seconds.append(time.perf_counter() - started)

    build_block = blocks.deliveries_build_block
    grants: list[float] = []  # when each request's rate-limit wait ended (this clock)
    import gc

    pauses: list[tuple[int, float]] = []  # (generation, seconds) of each collection
    gc_started: list[float] = []

    def gc_note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            pauses.append((info["generation"], time.perf_counter() - gc_started[0]))

    gc.callbacks.append(gc_note)
    acquire = timed("ratelimit_wait", sending.RateLimiter.acquire)

    def acquire_and_note(*args: Any, **kwargs: Any) -> Any:
        try:
            return acquire(*args, **kwargs)
        finally:
            grants.append(time.time())

    with (
        mock.patch.object(blocks, "deliveries_build_block", timed_block),
        mock.patch.object(
            blocks.DeliveryBuilder,
            "wait_beyond",
            timed("builder_wait", blocks.DeliveryBuilder.wait_beyond),
        ),
        mock.patch.object(sending, "_prepare", timed("prepare", sending._prepare)),
        mock.patch.object(
            sending, "_create_deliveries", timed("create_deliveries", sending._create_deliveries)
        ),
        mock.patch.object(
            sending, "_record_accepted", timed("record_accepted", sending._record_accepted)
        ),
        mock.patch.object(sending, "_call", timed("call", sending._call)),
        mock.patch.object(
            sending, "_reserve_quota", timed("reserve_quota", sending._reserve_quota)
        ),
        mock.patch.object(sending.RateLimiter, "acquire", acquire_and_note),
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
                "first_block": block_seconds[0] if block_seconds else 0.0,
                "builder": sum(block_seconds[1:]),
                "blocks": len(block_seconds),
                "rss_before_kb": rss_before,
                "hwm_kb": common.proc_status_kb(os.getpid(), "VmHWM"),
                "grants": grants,
                "gc": pauses,
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
        "--line",
        choices=("both", "lean", "sandbox"),
        default="both",
        help="LINE stand-in: the lean one (bench/lean_line.py), the full sandbox, or both",
    )
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
    lines: dict[str, Any] = {}
    if args.line in ("both", "lean"):
        lines["lean"] = common.LeanLine(args.latency_ms, run / "lean_line.log")
    if args.line in ("both", "sandbox"):
        lines["sandbox"] = common.SandboxLine(common.start_sandbox())
    first = next(iter(lines.values()))
    extra = {"SEND_WINDOW_START": "00:00", "SEND_WINDOW_END": "23:59"}
    if args.concurrency:
        extra["MULTICAST_CONCURRENCY"] = str(args.concurrency)
    env = common.bench_env(db=db, sandbox_url=first.url, run=run, redis_url=args.redis_url, **extra)
    common.configure(env)
    procs = common.Processes(run, env)
    try:
        report = measure(args, db, lines, procs, run)
    finally:
        procs.stop_all()
        for line in lines.values():
            line.stop()
        db.drop()
    print(report)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def measure(
    args: Any, db: common.BenchDatabase, lines_: dict[str, Any], procs: common.Processes, run: Path
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
    summaries: list[str] = []
    goals: list[str] = []
    once_all = True
    peak_all = 0
    hwm_all = 0.0
    for kind, line in lines_.items():
        say("")
        say(f"# LINE stand-in: {line.name}")
        worker = None
        if args.runner == "celery":
            worker = start_worker(procs, kind, line.url)
        rounds = []
        for n in range(1, args.repeat + 1):
            line.prepare(ids, args.latency_ms)
            figures = one_round(args, f"{kind}-{n}", staff, ids, line, procs, worker)
            rounds.append(figures)
            say("")
            say(f"## {kind} round {n} (load average before: {figures['load']})")
            lines.extend(figures["lines"])
        if worker is not None:
            procs.stop_all()

        def med(key: str, rounds: list[dict[str, Any]] = rounds) -> float:
            return common.percentile([r[key] for r in rounds], 50)

        total = med("total")
        best = min(r["total"] for r in rounds)
        once_all = once_all and all(r["exactly_once"] for r in rounds)
        peak_all = max(peak_all, *(r["peak"] for r in rounds))
        hwm_all = max(hwm_all, *(r["hwm_mb"] for r in rounds))
        summaries.append(f"## summary, {kind}: {len(rounds)} round(s)")
        if args.runner == "child":
            summaries.append(
                f"  _prepare median {med('prepare'):.2f} s, of which building the "
                f"delivery rows before the first request (all of them, or the first block) "
                f"{med('create'):.2f} s"
            )
            summaries.append(
                f"  sending (first request → last answer) median {med('sending'):.2f} s; "
                f"finish median {med('finish'):.2f} s"
            )
            summaries.append(
                f"  CPU: sending process median {med('cpu'):.2f} s; LINE stand-in median "
                f"{med('line_cpu'):.2f} s"
            )
        summaries.append(
            f"  total: median {total:.2f} s, best {best:.2f} s, "
            f"all {[round(r['total'], 2) for r in rounds]}"
        )
        goal = (GOALS_1M if args.recipients >= 1_000_000 else GOALS["total_seconds"])[kind]
        goals.append(
            f"goal (b) total ≤ {goal} s against the {kind} stand-in (median of {len(rounds)}): "
            f"{common.verdict(total <= goal)} ({total:.2f} s; best {best:.2f} s)"
        )
    say("")
    lines.extend(summaries)
    say("")
    lines.extend(goals)
    say(
        f"goal (b) ≤ {GOALS['peak_per_second']} req/s in any 1 s (worst round): "
        f"{common.verdict(peak_all <= GOALS['peak_per_second'])} ({peak_all})"
    )
    say(f"goal (b) exactly one copy each (every round): {common.verdict(once_all)}")
    say(
        f"goal (c) peak RSS ≤ {GOALS['rss_mb']} MB (worst round): "
        f"{common.verdict(hwm_all <= GOALS['rss_mb'])} ({hwm_all:.0f} MB)"
    )
    return "\n".join(lines)


def start_worker(procs: common.Processes, kind: str, url: str) -> subprocess.Popen[bytes]:
    """A Celery worker (prefork, one pool process) talking to this LINE stand-in."""
    procs.env["LINE_API_BASE_URL"] = url
    worker = procs.celery(
        f"worker-{kind}",
        "worker",
        "-Q",
        "default",
        "-c",
        "1",
        "-n",
        f"bench-{kind}-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
        "-l",
        "INFO",
    )
    common.wait_for(lambda: "ready." in procs.log(f"worker-{kind}"), 60, "the Celery worker")
    time.sleep(1.0)  # let the pool process settle before the baseline
    return worker


def one_round(
    args: Any,
    n: str,
    staff: tuple[Any, Any],
    ids: list[str],
    line: Any,
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
    line_cpu = line.cpu()
    if worker is None:
        with mock.patch.object(sending, "enqueue_send"):
            claimed = sending.broadcasts_dispatch_due().claimed
        if claimed != [broadcast.pk]:
            raise SystemExit(f"the dispatcher claimed {claimed}, expected [{broadcast.pk}]")
        result = run_child(broadcast.pk, procs, samples, args.timeout, line.url)
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
    line_cpu = line.cpu() - line_cpu

    # --- what LINE saw ---------------------------------------------------------------------
    seen = line.view()
    span = (max(seen.answers) - min(seen.arrivals)) if seen.arrivals else float("nan")
    peak_arrival = common.sliding_window_max(seen.arrivals)
    peak_answer = common.sliding_window_max(seen.answers)
    exactly_once, missing, twice = seen.exactly_once(ids)
    accepted = Delivery.objects.filter(broadcast=broadcast, status="accepted").count()
    sending_s = (max(seen.answers) - min(seen.arrivals)) if seen.arrivals else float("nan")
    first_request = min(seen.arrivals) if seen.arrivals else float("nan")

    say(
        f"outcome: {outcome}; deliveries accepted {accepted}; multicast requests "
        f"{len(seen.arrivals)} ({seen.statuses})"
    )
    if worker is None:
        say(
            f"_prepare (lease, checks, {accepted} Delivery rows): {result.get('prepare', 0):.2f} s,"
            f" of which _create_deliveries {result.get('create_deliveries', 0):.2f} s, "
            f"first block of rows {result.get('first_block', 0):.2f} s"
        )
        say(
            f"builder thread (rows ahead of the senders, overlapping the requests): "
            f"{max(result.get('blocks', 0) - 1, 0)} more block(s), {result.get('builder', 0):.2f} s;"
            f" the senders waited for it {result.get('builder_wait', 0):.2f} s"
        )
        say(
            f"quota check and reservation {result.get('reserve_quota', 0):.2f} s; first "
            f"window of deliveries loaded, threads started and so on: the rest"
        )
        say(
            "start → first request {:.2f} s (prepare, quota check); first request → last "
            "answer {:.2f} s; last answer → end {:.2f} s (recording, finish)".format(
                first_request - result["started_at"],
                sending_s,
                result["started_at"] + total - max(seen.answers, default=float("nan")),
            )
        )
        say(
            "sender: recording replies {:.2f} s (main thread), rate limiter {:.2f} s and the "
            "calls {:.2f} s (summed over the sending threads)".format(
                result.get("record_accepted", 0),
                result.get("ratelimit_wait", 0),
                result.get("call", 0),
            )
        )
        say(
            f"CPU: sending process {result.get('cpu', 0):.2f} s; LINE stand-in "
            f"{line_cpu:.2f} s during the send"
        )
        say(f"broadcast_send total (prepare, quota check, the requests, finish): {total:.2f} s")
    else:
        say(f"dispatch → SENT seen in the database (includes queueing): {total:.2f} s")
    say(
        f"first multicast arrival → last answer (stand-in's log): {span:.2f} s; stand-in time "
        f"per multicast p50 {common.percentile(seen.server_ms, 50):.0f} ms, "
        f"max {max(seen.server_ms, default=0):.0f} ms"
    )
    from broadcasts.line.ratelimit import WINDOW_MARGIN_SECONDS

    limit = GOALS["peak_per_second"]
    closest_at, closest = common.tightest_window(seen.arrivals, limit + 1)
    say(
        f"peak multicast requests in any sliding 1 s window: {peak_arrival} by arrival, "
        f"{peak_answer} by answer time; "
        + (
            f"the closest {limit + 1} arrivals spanned {closest:.3f} s (the limiter grants "
            f"{limit + 1} at least {1 + WINDOW_MARGIN_SECONDS:.2f} s apart; over 1 s is within "
            "LINE's limit)"
            if len(seen.arrivals) > limit
            else f"{len(seen.arrivals)} requests in all"
        )
    )
    if len(result.get("grants", [])) > limit:
        say(
            f"  the closest {limit + 1} of the limiter's grants (in the sending process) "
            f"spanned {common.tightest_span(result['grants'], limit + 1):.3f} s"
        )
        if result.get("gc"):
            full = [p for g, p in result["gc"] if g == 2]
            say(
                f"  the sender's garbage collections during the send: {len(result['gc'])}, "
                f"longest {max(p for _g, p in result['gc']) * 1000:.1f} ms; full ones "
                f"{len(full)}" + (f", longest {max(full) * 1000:.1f} ms" if full else "")
            )
        if seen.stalls:
            near = [late for when, late in seen.stalls if abs(when - closest_at) < 0.2]
            say(
                f"  the stand-in's own event loop woke ≥ 20 ms late {len(seen.stalls)} times "
                f"(max {max(late for _w, late in seen.stalls) * 1000:.0f} ms); within 0.2 s "
                f"of the closest {limit + 1} arrivals' first: "
                + (f"{max(near) * 1000:.0f} ms late" if near else "none")
            )
        if len(result["grants"]) == len(seen.arrivals):  # the n-th grant, the n-th arrival
            delays = [
                (a - g) * 1000
                for g, a in zip(sorted(result["grants"]), sorted(seen.arrivals), strict=True)
            ]
            say(
                f"  grant → arrival at the stand-in (n-th with n-th): p50 "
                f"{common.percentile(delays, 50):.1f} ms, p99 {common.percentile(delays, 99):.1f}"
                f" ms, max {max(delays):.1f} ms; over 20 ms: {sum(d > 20 for d in delays)}"
            )
    say(
        f"every recipient exactly once: {exactly_once} (recipients {len(seen.counts):,}, "
        f"missing {missing}, received twice {twice})"
    )
    peak_sampled = max((kb for _, kb in samples), default=0)
    say(
        f"memory: before the send {rss_before / 1024:.0f} MB RSS; peak {hwm_kb / 1024:.0f} MB "
        f"({hwm_how}); highest 10 ms RSS sample {peak_sampled / 1024:.0f} MB"
    )
    last_answer = max(seen.answers, default=float("nan"))
    return {
        "lines": lines,
        "load": load,
        "total": total,
        "prepare": result.get("prepare", float("nan")),
        "create": result.get("create_deliveries", 0) + result.get("first_block", 0),
        "sending": sending_s,
        "finish": result.get("started_at", float("nan")) + total - last_answer,
        "cpu": result.get("cpu", float("nan")),
        "line_cpu": line_cpu,
        "peak": peak_arrival,
        "exactly_once": exactly_once,
        "hwm_mb": hwm_kb / 1024,
    }


def run_child(
    broadcast_id: int,
    procs: common.Processes,
    samples: list[tuple[float, int]],
    timeout: float,
    line_url: str,
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(broadcast_id)]
    if os.environ.get("BENCH_PROFILE_CMD"):  # e.g. "py-spy record -o out.svg --threads --"
        cmd = [*os.environ["BENCH_PROFILE_CMD"].split(), *cmd]
    proc = subprocess.Popen(
        cmd,
        cwd=common.REPO,
        env={**procs.env, "LINE_API_BASE_URL": line_url},
        stdout=subprocess.PIPE,
        stderr=(procs.logs / "child.log").open("ab"),
    )
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
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"the sending process printed no result\n{out}\n{procs.log('child')}")


if __name__ == "__main__":
    main()
