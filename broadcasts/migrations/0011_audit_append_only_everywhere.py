"""The audit log is append-only in the database itself, on SQLite as on PostgreSQL.

0003 made PostgreSQL refuse UPDATE and DELETE of audit rows with a row-level trigger. Two gaps
remained: SQLite (the embedded demo and the single-machine install) had no trigger at all, and
on PostgreSQL ``TRUNCATE`` does not fire row-level triggers, so one statement could still empty
the log. This migration closes both:

* SQLite: BEFORE UPDATE and BEFORE DELETE triggers that ``RAISE(ABORT, ...)``.
* PostgreSQL: a statement-level BEFORE TRUNCATE trigger calling 0003's function (which only
  raises). ``TRUNCATE ... CASCADE`` from a table the log refers to fires it too.

There is no escape hatch in the database: no session setting, no flag table. Only the table's
owner can get round the triggers (``DROP TRIGGER``, ``ALTER TABLE ... DISABLE TRIGGER``), and
that role could drop the table anyway; the triggers guard against the application, the shell,
the admin and a mistaken ``manage.py flush``, not against the owner.

Until now the PostgreSQL trigger coexisted with the test suite only because Django's ``flush``
(run after every transactional test) uses TRUNCATE there, which row triggers ignore; on SQLite
``flush`` uses DELETE. With these triggers both would fail, so the *test settings* install a
``flush`` command (``tests/dbflush``) that lifts the audit table's triggers inside the flush's
own transaction and restores them before it commits. Production has no such command.

SQLite keeps triggers only as long as the table: a later migration that makes Django rebuild
``broadcasts_broadcastevent`` on SQLite (most ALTERs do) drops them silently and must create
them again. ``tests/broadcasts/test_audit_integrity.py`` checks that they exist after every
migration has run.
"""

from django.db import migrations

MESSAGE = "broadcasts_broadcastevent is append-only (audit log)"

SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER broadcasts_broadcastevent_no_update
    BEFORE UPDATE ON broadcasts_broadcastevent
    BEGIN
        SELECT RAISE(ABORT, '{MESSAGE}');
    END
    """,
    f"""
    CREATE TRIGGER broadcasts_broadcastevent_no_delete
    BEFORE DELETE ON broadcasts_broadcastevent
    BEGIN
        SELECT RAISE(ABORT, '{MESSAGE}');
    END
    """,
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS broadcasts_broadcastevent_no_update",
    "DROP TRIGGER IF EXISTS broadcasts_broadcastevent_no_delete",
]

# broadcasts_audit_append_only() comes from 0003: it raises, whatever the trigger's level.
POSTGRESQL_FORWARD = [
    """
    CREATE TRIGGER broadcasts_broadcastevent_no_truncate
        BEFORE TRUNCATE ON broadcasts_broadcastevent
        FOR EACH STATEMENT EXECUTE FUNCTION broadcasts_audit_append_only()
    """
]
POSTGRESQL_BACKWARD = [
    "DROP TRIGGER IF EXISTS broadcasts_broadcastevent_no_truncate ON broadcasts_broadcastevent"
]


def _run(schema_editor, statements_by_vendor):
    for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


def forward(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_FORWARD, "postgresql": POSTGRESQL_FORWARD})


def backward(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRESQL_BACKWARD})


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0010_broadcast_list_indexes")]

    operations = [migrations.RunPython(forward, backward)]
