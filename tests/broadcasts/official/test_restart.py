"""No duplicate across processes: a new process (a restart) polls the same feed, and two
beats ingest the same message at the same moment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from broadcasts import permissions
from broadcasts.models import Broadcast, OfficialMessage
from broadcasts.services.official import official_message_ingest
from jma_sandbox.server import JmaSandbox
from tests.broadcasts.sending.helpers import jst, make_followers

from .samples import HEAVY_RAIN, QUAKE_5_MINUS, sample

REPO = Path(__file__).resolve().parents[3]
POLL = (
    "import json; from broadcasts.tasks.official import poll_official_feeds; "
    "from broadcasts.models import Broadcast, OfficialFeed; "
    "FORGET and OfficialFeed.objects.update(etag='', last_modified=''); "
    "r = poll_official_feeds(); "
    "r['drafts'] = Broadcast.objects.filter(author__username='official-alerts').count(); "
    "print(json.dumps(r))"
)


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")),
    reason="runs the embedded default in its own data folder, which the SQLite pass runs",
)
def test_a_new_process_polls_the_same_feed_without_duplicates(tmp_path):
    jma = JmaSandbox().start()
    try:
        jma.state.publish(HEAVY_RAIN)
        jma.state.publish(QUAKE_5_MINUS)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="kashiwa.settings.test",
            KASHIWA_DATA_DIR=str(tmp_path),
            JMA_FEED_URLS=",".join(jma.feed_urls()),
        )

        def manage(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, str(REPO / "manage.py"), *args],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            lines = done.stdout.strip().splitlines()
            return lines[-1] if lines else ""

        manage("migrate", "--noinput", "-v0")
        keep = "FORGET = False; " + POLL
        first = json.loads(manage("shell", "--no-imports", "-c", keep))
        assert (first["created"], first["drafts"]) == (2, 2)
        restarted = json.loads(manage("shell", "--no-imports", "-c", keep))
        assert (restarted["created"], restarted["drafts"]) == (0, 2)
        forget = "FORGET = True; " + POLL
        forgot = json.loads(manage("shell", "--no-imports", "-c", forget))
        assert (forgot["created"], forgot["drafts"]) == (0, 2)
    finally:
        jma.stop()


@pytest.mark.django_db(transaction=True)
def test_two_beats_ingesting_the_same_message_at_once_make_one_draft():
    make_followers(["U" + "3" * 32], ["disaster_crime"])
    data = sample(HEAVY_RAIN)
    barrier = threading.Barrier(2)
    results: list[object] = []
    errors: list[BaseException] = []

    def beat() -> None:
        try:
            barrier.wait()
            results.append(
                official_message_ingest(
                    data=data, source=OfficialMessage.Source.FEED, now=jst(2026, 7, 15, 3, 13)
                )
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r.created for r in results) == [False, True]
    assert OfficialMessage.objects.count() == 1
    assert (
        Broadcast.objects.filter(author__username=permissions.SYSTEM_AUTHOR_USERNAME).count() == 1
    )
