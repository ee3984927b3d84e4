"""``flush`` for the test suite: empties every table, the append-only audit log included.

Every transactional test (``transaction=True``, ``live_server``) ends with Django's ``flush``:
TRUNCATE on PostgreSQL, DELETE on SQLite. Both are refused on the audit table by its triggers
(migrations 0003 and 0011), which have no escape hatch. This command, installed only by the
test settings, lifts the audit table's triggers inside one transaction around Django's own
flush and puts them back before that transaction commits: no other connection ever sees the
table unguarded, and a flush that fails rolls the triggers back into place.

Production never installs this app, so there ``manage.py flush`` stops at the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

AUDIT_TABLE = "broadcasts_broadcastevent"


def _lift_sqlite(connection: BaseDatabaseWrapper) -> Callable[[], None]:
    """SQLite cannot disable a trigger: drop them and keep their SQL to create them again."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
            [AUDIT_TABLE],
        )
        triggers = cursor.fetchall()
        for name, _sql in triggers:
            cursor.execute(f"DROP TRIGGER {connection.ops.quote_name(name)}")

    def restore() -> None:
        with connection.cursor() as cursor:
            for _name, sql in triggers:
                cursor.execute(sql)

    return restore


def _lift_postgresql(connection: BaseDatabaseWrapper) -> Callable[[], None]:
    quote = connection.ops.quote_name
    table = quote(AUDIT_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s)"
            " AND NOT tgisinternal AND tgenabled <> 'D'",
            [AUDIT_TABLE],
        )
        names = [name for (name,) in cursor.fetchall()]
        for name in names:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {quote(name)}")

    def restore() -> None:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {quote(name)}")

    return restore


LIFTERS = {"sqlite": _lift_sqlite, "postgresql": _lift_postgresql}


class Command(flush.Command):
    help = flush.Command.help + " (Tests: the audit log too; its triggers are restored.)"

    def handle(self, **options: Any) -> None:
        database = options["database"]
        connection = connections[database]
        lift = LIFTERS.get(connection.vendor)
        if lift is None or AUDIT_TABLE not in connection.introspection.table_names():
            return super().handle(**options)
        with transaction.atomic(using=database):
            restore = lift(connection)
            super().handle(**options)
            restore()
        return None
