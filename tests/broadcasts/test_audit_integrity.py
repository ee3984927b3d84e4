"""The audit log cannot be changed by the app, nor by raw SQL: triggers on SQLite and on
PostgreSQL refuse UPDATE and DELETE of audit rows, and TRUNCATE on PostgreSQL."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.core.management.commands.flush import Command as DjangoFlush
from django.db import DatabaseError, connection, transaction

from broadcasts.models import Broadcast, BroadcastEvent
from broadcasts.services import audit_record
from tests.factories import BroadcastFactory
from tests.fixtures.users import make_user

TABLE = "broadcasts_broadcastevent"
TRIGGERS = {
    "sqlite": {"broadcasts_broadcastevent_no_update", "broadcasts_broadcastevent_no_delete"},
    "postgresql": {
        "broadcasts_broadcastevent_append_only",
        "broadcasts_broadcastevent_no_truncate",
    },
}


def audit_triggers() -> set[str]:
    """The enabled triggers on the audit table."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE]
            )
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s)"
                " AND NOT tgisinternal AND tgenabled <> 'D'",
                [TABLE],
            )
        return {name for (name,) in cursor.fetchall()}


def refused(sql: str, params: list | None = None) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def test_the_model_refuses_updates_and_deletes(db, drafter):
    event = audit_record(verb="test", actor=drafter)
    event.comment = "書き換え"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert BroadcastEvent.objects.get(pk=event.pk).comment == ""


def test_the_triggers_survive_every_migration(db):
    """SQLite drops a table's triggers when Django rebuilds the table for an ALTER: a later
    migration on the audit table must create them again, or this fails."""
    assert audit_triggers() >= TRIGGERS[connection.vendor]


def test_the_database_rejects_update_and_delete_of_audit_rows(db, drafter):
    event = audit_record(verb="test", actor=drafter)
    refused(f"UPDATE {TABLE} SET comment = 'x' WHERE id = %s", [event.pk])  # noqa: S608
    refused(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])  # noqa: S608
    refused(f"DELETE FROM {TABLE}")  # noqa: S608
    assert BroadcastEvent.objects.filter(pk=event.pk, comment="").exists()


def test_querysets_cannot_bypass_the_model(db, drafter):
    """``QuerySet.update()`` and ``.delete()`` never call the model's save()/delete()."""
    event = audit_record(verb="test", actor=drafter)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        BroadcastEvent.objects.filter(pk=event.pk).update(comment="queryset update")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        BroadcastEvent.objects.filter(pk=event.pk).delete()
    assert BroadcastEvent.objects.filter(pk=event.pk, comment="").exists()


def test_postgresql_rejects_truncate(db, drafter):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (its DELETE without WHERE is refused above)")
    broadcast = BroadcastFactory(author=drafter)
    event = audit_record(verb="test", actor=drafter, broadcast=broadcast)
    with connection.cursor() as cursor:
        # Run the deferred foreign-key checks of this test's inserts now: PostgreSQL refuses
        # to truncate a table with pending trigger events before asking our trigger.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    refused(f"TRUNCATE {TABLE}")
    # Truncating what the log refers to would cascade into it.
    refused("TRUNCATE broadcasts_broadcast CASCADE")
    assert BroadcastEvent.objects.filter(pk=event.pk).exists()
    assert Broadcast.objects.filter(pk=broadcast.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_djangos_flush_stops_at_the_audit_log(drafter):
    """What `manage.py flush` does in production: refused, and nothing is emptied."""
    event = audit_record(verb="test", actor=drafter)
    with pytest.raises(CommandError):
        call_command(DjangoFlush(), interactive=False, verbosity=0)
    assert BroadcastEvent.objects.filter(pk=event.pk).exists()
    assert type(drafter).objects.filter(pk=drafter.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_test_suites_flush_empties_the_log_and_restores_the_triggers(drafter):
    """tests/dbflush: every transactional test ends with this flush."""
    audit_record(verb="test", actor=drafter)
    call_command("flush", interactive=False, verbosity=0)
    assert not BroadcastEvent.objects.exists()
    assert audit_triggers() >= TRIGGERS[connection.vendor]
    event = audit_record(verb="test", actor=make_user("again", None))
    refused(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])  # noqa: S608
