"""Webhook benchmark: signed LINE events against the app and against line-bot-sdk's Flask echo
example, side by side in the same run, on loopback only.

    .venv/bin/python bench/webhook/run.py            # ~2 minutes; see README.md beside this

What runs:
- an in-process LINE sandbox (it issues the reply tokens, and the echo example replies to it);
- N text-message events, one per request, prepared and signed as LINE does (HMAC-SHA256 of the
  raw body with the channel secret, base64 in ``x-line-signature``);
- the app under gunicorn (2 sync workers) with PostgreSQL + Redis when they answer on their
  usual local ports (else SQLite and the embedded SQLite broker): the webhook verifies the
  signature, stores each event and enqueues one Celery task per request (no worker runs: this
  measures acknowledgement, which is what LINE waits for);
- the Flask echo example under gunicorn (2 sync workers) in a throwaway venv, twice: as written
  (reply API called inside the request) and with the reply call skipped (parsing only);
- ``wrk`` with ``signed.lua``: a warm-up, then a fixed-duration run per server.

Bounded: each wrk run lasts ``--duration`` seconds, the whole script stops after
``--max-seconds``, and every process it started is stopped (by its own process group).

``run.py --e2e`` measures processing instead, end to end: a burst of follow events, Celery
workers, replies through the sandbox (``e2e.py``; ``run.py --e2e --help``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV_PY = REPO / ".venv" / "bin" / "python"
SECRET = "bench-channel-secret"  # noqa: S105 - loopback-only bench value
TOKEN = "sandbox-channel-access-token"  # noqa: S105 - the sandbox's public token
REDIS_DEFAULT = "redis://127.0.0.1:6379/14"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

sys.path.insert(0, str(REPO))

from line_sandbox import LineSandbox, text_message_event  # noqa: E402
from line_sandbox.state import synthetic_user_id  # noqa: E402
from line_sandbox.webhook import prepare_events, sign  # noqa: E402

TEXTS = ("ごみの出し方を教えてください", "休日当番医はどこですか", "こんにちは", "受信設定")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def write_events(sandbox: LineSandbox, path: Path, count: int, users: list[str]) -> None:
    """``signature<TAB>body`` lines, one text-message event per body."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            [event] = prepare_events(
                sandbox.state, [text_message_event(users[i % len(users)], TEXTS[i % len(TEXTS)])]
            )
            body = json.dumps(
                {"destination": sandbox.state.bot_user_id, "events": [event]},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            out.write(f"{sign(SECRET, body.encode('utf-8'))}\t{body}\n")


class Procs:
    """Processes this script started, each in its own process group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)


def wrk(args: argparse.Namespace, port: int, path: str, events: Path, duration: int) -> dict:
    env = {
        **os.environ,
        "BENCH_EVENTS": str(events),
        "BENCH_THREADS": str(args.threads),
        "BENCH_PATH": path,
    }
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "signed.lua"),
        f"http://127.0.0.1:{port}{path}",
    ]
    result = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 30, check=True
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["ok_rps"] = (data["requests"] - data["non2xx"]) / (data["duration_us"] / 1e6)
    return data


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except Exception:
        return False


def redis_available(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except Exception:
        return False


def flask_venv(path: Path) -> Path:
    """A throwaway venv with Flask, gunicorn and line-bot-sdk (never the app's venv)."""
    python = path / "bin" / "python"
    if (
        not (path / "bin" / "gunicorn").exists()
        or subprocess.run(
            [str(python), "-c", "import flask, linebot.v3"], capture_output=True, check=False
        ).returncode
    ):
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "flask",
                "gunicorn",
                "line-bot-sdk>=3.14,<4",
            ],
            check=True,
            timeout=300,
        )
    return path


def main() -> int:
    if sys.argv[1:2] in (["--e2e"], ["--post-child"]):
        # End to end (events posted, processed by workers, replies through the sandbox):
        # e2e.py beside this file.
        import e2e

        if sys.argv[1] == "--post-child":
            return e2e.post_child(sys.argv[2:])
        return e2e.main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=40_000, help="signed events in the measured set")
    p.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (both apps)")
    p.add_argument("--database", choices=("auto", "postgres", "sqlite"), default="auto")
    p.add_argument("--redis-url", default=REDIS_DEFAULT, help="broker (its db is flushed)")
    p.add_argument("--flask-venv", default=str(Path(tempfile.gettempdir()) / "kashiwa-bench-flask"))
    p.add_argument("--max-seconds", type=int, default=600, help="hard stop for the whole run")
    p.add_argument("--out", default=str(REPO / "bench" / "out"))
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2

    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("bench deadline")))
    signal.alarm(args.max_seconds)
    work = Path(tempfile.mkdtemp(prefix="kashiwa-bench-webhook-"))
    procs = Procs()
    sandbox = LineSandbox("127.0.0.1", 0, token=TOKEN, channel_secret=SECRET).start()
    created_db = ""
    use_pg = args.database == "postgres" or (args.database == "auto" and pg_available())
    use_redis = redis_available(args.redis_url)
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "uname": " ".join(os.uname()),
            "loadavg_at_start": os.getloadavg(),
        },
        "settings": {k: v for k, v in vars(args).items() if k != "flask_venv"},
        "database": "postgresql" if use_pg else "sqlite",
        "broker": "redis" if use_redis else "sqlite",
        "runs": {},
    }
    try:
        users = [synthetic_user_id(50_000 + i) for i in range(1000)]
        sandbox.state.add_followers(user_ids=users)
        files = {name: work / f"{name}.txt" for name in ("warm_app", "warm_echo", "warm_parse")}
        for path in files.values():
            write_events(sandbox, path, 4000, users)
        measured = work / "events.txt"
        write_events(sandbox, measured, args.events, users)
        print(f"prepared {args.events} signed events in {work}", flush=True)

        # --- the app ---------------------------------------------------------------------
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kashiwa.settings.dev",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "127.0.0.1",
            "KASHIWA_DATA_DIR": str(work / "data"),
            "LINE_CHANNEL_SECRET": SECRET,
            "LINE_API_BASE_URL": sandbox.url,
            "LINE_DATA_API_BASE_URL": sandbox.url,
        }
        for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "LINE_CHANNEL_ACCESS_TOKEN"):
            env.pop(key, None)
        if use_pg:
            import psycopg

            created_db = f"bench_webhook_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {created_db}")
            env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + created_db
        if use_redis:
            env["REDIS_URL"] = args.redis_url
            import redis

            redis.Redis.from_url(args.redis_url).flushdb()
        subprocess.run(
            [str(VENV_PY), "manage.py", "migrate", "-v", "0"], env=env, cwd=REPO, check=True
        )
        port = free_port()
        app = procs.start(
            [
                str(REPO / ".venv" / "bin" / "gunicorn"),
                "kashiwa.wsgi:application",
                "-w",
                str(args.workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            env,
            work / "app.log",
        )
        wait_port(port)
        wrk(args, port, "/line/webhook/", files["warm_app"], args.warmup)
        results["runs"]["app"] = wrk(args, port, "/line/webhook/", measured, args.duration)
        procs.stop(app)
        results["runs"]["app"]["stored_events"] = _count_rows(env)
        print("app:", _summary(results["runs"]["app"]), flush=True)

        # --- line-bot-sdk's Flask echo example ---------------------------------------------
        venv = flask_venv(Path(args.flask_venv))
        for name, reply, warm in (
            ("echo_example", "1", files["warm_echo"]),
            ("echo_example_no_reply", "0", files["warm_parse"]),
        ):
            port = free_port()
            flask_env = {
                **os.environ,
                "LINE_CHANNEL_SECRET": SECRET,
                "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                "LINE_API_HOST": sandbox.url,
                "BENCH_FLASK_REPLY": reply,
            }
            echo = procs.start(
                [
                    str(venv / "bin" / "gunicorn"),
                    "flask_echo:app",
                    "--chdir",
                    str(HERE),
                    "-w",
                    str(args.workers),
                    "-b",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                ],
                flask_env,
                work / f"{name}.log",
            )
            wait_port(port)
            wrk(args, port, "/callback", warm, args.warmup)
            results["runs"][name] = wrk(args, port, "/callback", measured, args.duration)
            procs.stop(echo)
            print(f"{name}:", _summary(results["runs"][name]), flush=True)
        replies = len(sandbox.state.deliveries(endpoint="reply"))
        results["runs"]["echo_example"]["sandbox_replies_total"] = replies

        app_rps = results["runs"]["app"]["ok_rps"]
        results["ratio_vs_echo_example"] = app_rps / max(
            results["runs"]["echo_example"]["ok_rps"], 1e-9
        )
        results["ratio_vs_echo_no_reply"] = app_rps / max(
            results["runs"]["echo_example_no_reply"]["ok_rps"], 1e-9
        )
        run = results["runs"]["app"]
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        results["goal_met"] = bool(
            run["ok_rps"] >= 1000 and run["p99_ms"] <= 100 and results["ratio_vs_echo_example"] >= 2
        )
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        (out / f"webhook-{stamp}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(_table(results))
        print(f"results: {out / f'webhook-{stamp}.json'}")
        verdict = "PASS" if results["goal_met"] else "FAIL"
        print(
            "goal: acknowledgement ≥ 1,000 events/s, p99 ≤ 100 ms, ≥ 2× line-bot-sdk's Flask "
            f"echo example: {verdict} ({run['ok_rps']:,.0f} events/s, p99 {run['p99_ms']:.1f} ms, "
            f"{results['ratio_vs_echo_example']:.1f}×)"
        )
        return 0 if results["goal_met"] else 1
    finally:
        signal.alarm(0)
        procs.stop_all()
        sandbox.stop()
        if created_db:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {created_db} WITH (FORCE)")
        if use_redis:
            import redis

            redis.Redis.from_url(args.redis_url).flushdb()
        shutil.rmtree(work, ignore_errors=True)


def _count_rows(env: dict[str, str]) -> int:
    out = subprocess.run(
        [
            str(VENV_PY),
            "manage.py",
            "shell",
            "-c",
            "from broadcasts.models import WebhookEvent; print(WebhookEvent.objects.count())",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def _summary(run: dict) -> str:
    return (
        f"{run['ok_rps']:,.0f} events/s acknowledged, p50 {run['p50_ms']:.1f} ms, "
        f"p99 {run['p99_ms']:.1f} ms, non-2xx {run['non2xx']}, errors "
        f"{run['connect_errors'] + run['read_errors'] + run['timeouts']}"
    )


def _table(results: dict) -> str:
    rows = [
        "| server | events/s acknowledged (2xx) | p50 ms | p90 ms | p99 ms | max ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "app": "this app (Django, gunicorn 2 sync workers)",
        "echo_example": "line-bot-sdk Flask echo example (replies inline)",
        "echo_example_no_reply": "same Flask example, reply call skipped",
    }
    for key, label in names.items():
        r = results["runs"][key]
        rows.append(
            f"| {label} | {r['ok_rps']:,.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['non2xx']} |"
        )
    rows.append("")
    rows.append(
        f"app / echo example: {results['ratio_vs_echo_example']:.1f}×; app / echo without "
        f"reply: {results['ratio_vs_echo_no_reply']:.1f}×; goal met: {results['goal_met']} "
        f"({results['database']} + {results['broker']}; load average at start "
        f"{results['machine']['loadavg_at_start'][0]:.2f} on {results['machine']['cpus']} CPUs)"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
