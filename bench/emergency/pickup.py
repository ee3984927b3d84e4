"""Emergency task pickup: publish → the task running in the idle emergency worker.

The emergency worker of the Procfile (``celery worker -Q emergency -c 2``) on Redis, alone: no
web, no other load. Each round starts a fresh worker and measures its *first* emergency
task (an approval that comes right after a deploy or a restart), then ``--tasks`` more at
random gaps of 0.05–1.5 s (an idle worker between emergencies). The task is the real
``send_emergency_broadcast`` for a broadcast id no row has: it starts, finds nothing and
logs its timing line (``enqueued=…`` from the publisher's header, ``started=…`` in the pool
process), which is what this reads. ``approval_to_line.py`` measures click → LINE after two
warm-up approvals, so it does not see the first task's pickup; this does.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import common
from bench.emergency.approval_to_line import TIMING  # the emergency task's timing line

GOAL_MS = 100


def pickups(log: str) -> list[float]:
    """Publish → started (ms) of every task for broadcast 0, in the order they ran."""
    return [
        (float(m["started"]) - float(m["enqueued"])) * 1000
        for m in TIMING.finditer(log)
        if m["pk"] == "0"
    ]


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="fresh workers, one first task each")
    p.add_argument("--tasks", type=int, default=60, help="idle tasks per round after the first")
    args = p.parse_args()
    if not args.redis_url:
        raise SystemExit("--redis-url is needed: the production broker is Redis")
    db = common.BenchDatabase("pickup", args.database_url, keep=args.keep)
    db.create()
    run = common.run_dir("pickup")
    env = common.bench_env(
        db=db, sandbox_url="http://127.0.0.1:9", run=run, redis_url=args.redis_url,
        LOG_LEVEL="INFO",
    )  # fmt: skip
    common.configure(env)
    import django

    django.setup()
    common.migrate()
    from broadcasts.services.scheduling import enqueue_send

    setup = common.describe_setup(db, args.redis_url)
    first: list[float] = []
    idle: list[float] = []
    for n in range(args.rounds):
        procs = common.Processes(run, env)
        name = f"worker-{n}"
        try:
            procs.start(
                name,
                [
                    sys.executable, "-m", "celery", "-A", "kashiwa", "worker", "-Q", "emergency",
                    "-c", "2", "-n", f"bench-pickup-{os.getpid()}-{n}@%h", "--without-mingle",
                    "--without-gossip", "-l", "INFO",
                ],
            )  # fmt: skip
            common.wait_for(lambda p=procs, w=name: "ready." in p.log(w), 60, "the worker")
            time.sleep(2.0)  # pool processes up and warmed (kashiwa/celery.py)
            for _ in range(args.tasks + 1):
                enqueue_send(0, emergency=True)
                time.sleep(random.uniform(0.05, 1.5))
            common.wait_for(
                lambda p=procs, w=name, k=args.tasks + 1: len(pickups(p.log(w, tail=10**7))) >= k,
                30,
                "the tasks",
            )
            seen = pickups(procs.log(name, tail=10**7))
            first.append(seen[0])
            idle += seen[1:]
        finally:
            procs.stop_all()
    db.drop()

    print("# emergency pickup — publish → task running, idle emergency worker (-c 2), Redis")
    print(f"setup: {setup}")
    print(
        f"first task of each round ({args.rounds} fresh workers; the first round's is also this "
        "process's first publish): " + ", ".join(f"{ms:.0f}" for ms in first) + " ms"
    )
    print(
        f"the {len(idle)} tasks after it: p50 {common.percentile(idle, 50):.1f} ms, p95 "
        f"{common.percentile(idle, 95):.1f} ms, p99 {common.percentile(idle, 99):.1f} ms, max "
        f"{max(idle):.1f} ms"
    )
    print(
        f"goal: first task of each round ≤ {GOAL_MS} ms: "
        f"{common.verdict(max(first) <= GOAL_MS)} (worst {max(first):.0f} ms)"
    )
    print(
        f"goal: idle tasks p99 ≤ {GOAL_MS} ms: "
        f"{common.verdict(common.percentile(idle, 99) <= GOAL_MS)} "
        f"({common.percentile(idle, 99):.1f} ms)"
    )


if __name__ == "__main__":
    main()
