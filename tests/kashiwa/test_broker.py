"""The embedded broker (kashiwa/broker.py): Celery's messages in a SQLite file.

Real processes: several publishers and consumers on one file, as web, two workers and beat
are. Whatever the mode of the suite, these use a broker file of their own."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from kombu import Connection

from kashiwa.broker import path_of

REPO = Path(__file__).resolve().parents[2]

# One process: publish N messages (numbered from `start`) or consume until `idle` seconds pass
# without one, printing the JSON bodies it took.
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from queue import Empty
    import kashiwa.celery  # registers the sqlite:// transport
    from kombu import Connection

    url, role, start, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with Connection(url) as conn:
        queue = conn.SimpleQueue("default")
        if role == "publish":
            for n in range(start, start + count):
                queue.put({"n": n, "padding": "x" * 2000})
        else:
            taken, last = [], time.monotonic()
            while time.monotonic() - last < 3:
                try:
                    message = queue.get(timeout=0.2)
                except Empty:
                    continue
                taken.append(message.payload["n"])
                message.ack()
                last = time.monotonic()
            print(json.dumps(taken))
        queue.close()
    """
)


def run(url: str, role: str, start: int = 0, count: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, url, role, str(start), str(count)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_messages_from_concurrent_publishers_are_each_taken_once_and_whole(tmp_path):
    """The filesystem broker's failure: a consumer read a message file still being written
    (JSONDecodeError, the worker died). Here 3 publishers and 2 consumers share one new file;
    every message arrives whole, exactly once, and none is left behind."""
    url = f"sqlite:///{tmp_path / 'broker' / 'broker.sqlite3'}"
    consumers = [run(url, "consume") for _ in range(2)]
    publishers = [run(url, "publish", start=i * 300, count=300) for i in range(3)]
    for p in publishers:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    taken: Counter[int] = Counter()
    for c in consumers:
        out, err = c.communicate(timeout=120)
        assert c.returncode == 0, err
        taken.update(json.loads(out))
    assert set(taken) == set(range(900))
    assert set(taken.values()) == {1}, "a message was delivered twice"
    with sqlite3.connect(path_of(url)) as db:
        # consumed messages are deleted, not kept (kombu's transport keeps them for ever)
        assert db.execute("SELECT count(*) FROM kombu_message").fetchone() == (0,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_messages_come_out_in_order_and_the_queue_counts_them(tmp_path):
    import kashiwa.celery  # noqa: F401 - registers the transport

    url = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
    with Connection(url) as conn:
        queue = conn.SimpleQueue("emergency")
        for n in range(5):
            queue.put({"n": n})
        assert conn.default_channel.queue_declare(queue="emergency", passive=True)[1] == 5
        assert [queue.get(timeout=1).payload["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
        assert conn.default_channel.queue_declare(queue="emergency", passive=True)[1] == 0
        queue.close()
