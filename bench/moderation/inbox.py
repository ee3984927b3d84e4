"""Issue 17 bench: the moderation inbox with 100,000 kept citizen messages in PostgreSQL, and
the cost that keeping and rule-checking adds to each message event.

Creates a database of its own (name must start with ``bench``), migrates it (which seeds the
clause-6 items and rules), loads the messages (5 % flagged) with bulk inserts, ANALYZEs, then

* requests the inbox through Django's test client as a 広報担当 (the whole view: middleware,
  queries, masking, template) — default order, the flagged filter, a Japanese text search and
  its page 2, a mixed-case Latin search, page 20 —
  and prints p50/p95/max server time and the queries per request;
* calls ``citizen_message_receive`` (what the webhook processor calls for each message
  event: keep, run every active rule, check the citizen's stop) for new messages, 50 to a
  transaction as the processor applies a batch, and prints the time per message.

Process shape: one Python process (the benchmark, Django in-process, no web server) talking
to PostgreSQL on localhost. Drops the database afterwards unless ``--keep``.

    .venv/bin/python bench/moderation/inbox.py
    .venv/bin/python bench/moderation/inbox.py --messages 20000 --requests 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GOAL_PAGE_P95_MS = 150.0  # the dashboard's goal (bench/dashboard)
GOAL_RECEIVE_MS = 10.0  # per message event, against a reply token's 60 s and ~3 round trips


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_moderation"
    )
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=50, help="timed requests per page")
    p.add_argument("--receives", type=int, default=500, help="timed citizen_message_receive")
    p.add_argument("--keep", action="store_true")
    return p.parse_args()


def admin_conninfo(url: str) -> tuple[str, str]:
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.startswith("bench"):
        raise SystemExit(f"refusing to create/drop {name!r}: the name must start with 'bench'")
    return urlunparse(parsed._replace(path="/postgres")), name


def recreate_database(url: str) -> None:
    import psycopg

    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    admin, name = admin_conninfo(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TEXTS = (
    "ごみの収集日を教えてください",
    "粗大ごみの出し方は？ 電話 090-1234-5678",
    "子育て支援センターの開館時間は何時ですか",
    "休日当番医はどこですか",
    "市役所の駐車場について",
)
FLAGGED = ("副業で稼げる！ https://spam.example.com/", "市長は無能、税金泥棒")


def load(count: int) -> None:
    from django.db import connection

    from broadcasts.models import CitizenMessage, ProhibitedItem

    rng = random.Random(17)
    items = {i.number: i for i in ProhibitedItem.objects.all()}
    start = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    batch = []
    for n in range(count):
        flagged = rng.random() < 0.05
        text = rng.choice(FLAGGED if flagged else TEXTS)
        batch.append(
            CitizenMessage(
                webhook_event_id=f"bench-{n}",
                line_user_id=f"U{n % 20000:032x}",
                text=text,
                received_at=start + dt.timedelta(seconds=26 * n),
                item=items[5] if flagged else None,
                flagged=flagged,
                flag_source="rule" if flagged else "",
                rule_hits=[{"rule": "bench", "item": 5, "match": "稼げる"}] if flagged else [],
            )
        )
        if len(batch) == 5000:
            CitizenMessage.objects.bulk_create(batch)
            batch = []
    CitizenMessage.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def measure_pages(requests: int) -> list[tuple[str, float, float, float, int]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from broadcasts import roles
    from broadcasts.models import Division, User

    user = User.objects.create_user(username="bench-reviewer", password="x" * 20)
    user.division, _ = Division.objects.get_or_create(name="広報広聴課")
    user.save()
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name=roles.REVIEWER))
    client = Client()
    client.force_login(user)
    pages = [
        ("inbox", "/moderation/"),
        ("flagged", "/moderation/?state=flagged"),
        ("search", "/moderation/?q=%E5%BD%93%E7%95%AA%E5%8C%BB"),  # 当番医: 18,810 of 100,000
        ("search Aa", "/moderation/?q=Spam.Example"),  # case ignored: 2.5 % of the messages
        ("search p2", "/moderation/?q=%E5%BD%93%E7%95%AA%E5%8C%BB&page=2"),
        ("page 20", "/moderation/?page=20"),
    ]
    results = []
    for name, path in pages:
        client.get(path)  # warm
        times = []
        for _ in range(requests):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        p95 = statistics.quantiles(times, n=20)[-1]
        results.append((name, statistics.median(times), p95, max(times), len(queries)))
    return results


def measure_receive(count: int, batch: int = 50) -> float:
    """Per message event, in transactions of ``batch`` events as the webhook processor
    applies a claimed batch (services/citizens/events.py)."""
    from django.db import transaction

    from broadcasts.services import moderation

    at = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    started = time.perf_counter()
    for first in range(0, count, batch):
        with transaction.atomic():
            for n in range(first, min(first + batch, count)):
                moderation.citizen_message_receive(
                    webhook_event_id=f"bench-new-{n}",
                    line_user_id=f"U{n:032x}",
                    message_type="text",
                    text=TEXTS[n % len(TEXTS)] if n % 10 else FLAGGED[0],
                    at=at,
                )
    return (time.perf_counter() - started) * 1000 / count


def main() -> None:
    args = parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["KASHIWA_DATA_DIR"] = tempfile.mkdtemp(prefix="kw-bench-moderation-")
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.test")
    recreate_database(args.database_url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = ["*"]
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        load(args.messages)
        print(f"loaded {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
        pages = measure_pages(args.requests)
        receive_ms = measure_receive(args.receives)
    finally:
        if not args.keep:
            drop_database(args.database_url)

    print("process shape: 1 Python process (Django in-process, test client) + PostgreSQL")
    print(f"{'page':10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    for name, p50, p95, worst, queries in pages:
        print(f"{name:10} {p50:8.1f} {p95:8.1f} {worst:8.1f} {queries:8d}")
    worst_p95 = max(p95 for _, _, p95, _, _ in pages)
    page_ok = worst_p95 <= GOAL_PAGE_P95_MS
    receive_ok = receive_ms <= GOAL_RECEIVE_MS
    print(
        f"inbox p95 (worst page) {worst_p95:.1f} ms, goal <= {GOAL_PAGE_P95_MS:.0f} ms: "
        f"{'PASS' if page_ok else 'FAIL'}"
    )
    print(
        f"citizen_message_receive {receive_ms:.2f} ms per message event, goal <= "
        f"{GOAL_RECEIVE_MS:.0f} ms: {'PASS' if receive_ok else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
