"""The embedded broker: Celery's messages in a SQLite file, so that `./dev run` needs no Redis.

kombu's filesystem transport, the embedded broker before this one, writes each message to a
file that another process may read before it is complete; the worker then died with an
"Unrecoverable error: JSONDecodeError" (celery/kombu#1551). Here a message is a row written in
one transaction: a reader sees all of it or none of it.

This is kombu's SQLAlchemy transport (``kombu.transport.sqlalchemy``) with these changes, each
for a process model of several writers on one file (web, two workers, beat):

* every connection runs in WAL mode with a 30 s busy timeout, and none is pooled: a pooled
  SQLite handle must not cross a fork (Celery's prefork pool forks after start-up);
* a consumed message is deleted in the transaction that takes it (kombu marks it invisible and
  keeps it, so the table and every poll over it grow for ever);
* the tables are created under SQLite's write lock, and a queue's row with insert-or-ignore
  (processes starting together on a new file would otherwise race to create them, and the
  loser would die of the error);
* it polls every 0.1 s (kombu: 1 s). A worker whose slots are full, or whose queues were
  empty, looks again only after that interval: at 1 s the filesystem broker started 50 held
  sends over 25 s (bench/README.md), with the dispatcher's task due every second besides.

Like the filesystem transport (and unlike Redis) there is no visibility timeout: a message
taken by a worker that is then killed is lost. Nothing depends on it: the database is the
schedule, and the dispatcher and the webhook sweeper find what such a task left undone.

Celery finds this class through the URL scheme ``sqlite``, registered in ``kashiwa/celery.py``:
``sqlite:////absolute/path/broker.sqlite3``.
"""

from __future__ import annotations

import sqlite3
from json import loads
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import create_engine, text
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

BUSY_TIMEOUT_SECONDS = 30.0
POLLING_INTERVAL_SECONDS = 0.1


def path_of(url: str) -> str:
    """The SQLite file of a broker URL (``sqlite:////var/broker/broker.sqlite3``)."""
    return make_url(url).database or ""


def connect(path: str) -> sqlite3.Connection:
    """A connection as every process of the stack opens it: WAL (readers never wait for the
    writer), a busy timeout (writers wait for each other instead of failing), and NORMAL
    synchronous (a power cut may lose the last messages, never corrupt the file; the
    database, not the broker, is the schedule)."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self) -> Engine:
        path = path_of(self.connection.client.hostname)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            f"sqlite:///{path}", creator=lambda: connect(path), poolclass=NullPool
        )
        with engine.connect() as connection:
            connection.execute(text("BEGIN IMMEDIATE"))
            kombu_sqlalchemy.metadata.create_all(connection)
            connection.commit()
        return engine

    def _get_or_create(self, queue: str) -> Any:
        """The queue's row. kombu looks, then inserts: two processes starting on a new file
        both insert, and the second dies of a UNIQUE violation. Insert-or-ignore instead."""
        query = self.session.query(self.queue_cls).filter(self.queue_cls.name == queue)
        found = query.first()
        if found is None:
            table = self.queue_cls.__table__
            self.session.execute(insert(table).values(name=queue).on_conflict_do_nothing())
            self.session.commit()
            found = query.one()
        return found

    def _get(self, queue: str) -> Any:
        """Take the oldest message of ``queue`` and delete it, in one write transaction."""
        queue_id = self._get_or_create(queue).id
        session = self.session
        try:
            session.execute(text("BEGIN IMMEDIATE"))
            message = (
                session.query(self.message_cls)
                .filter(self.message_cls.queue_id == queue_id)
                .order_by(self.message_cls.id)
                .limit(1)
                .first()
            )
            if message is None:
                session.commit()
                raise Empty()
            payload = message.payload
            session.delete(message)
            session.commit()
        except Empty:
            raise
        except Exception:
            session.rollback()
            raise
        return loads(bytes_to_str(payload))


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL_SECONDS
