"""The audit log cannot be changed by the app, and on PostgreSQL not even by raw SQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from broadcasts.models import BroadcastEvent
from broadcasts.services import audit_record


def test_the_model_refuses_updates_and_deletes(db, drafter):
    event = audit_record(verb="test", actor=drafter)
    event.comment = "書き換え"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert BroadcastEvent.objects.get(pk=event.pk).comment == ""


def test_postgresql_rejects_update_and_delete_of_audit_rows(db, drafter):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL (production); SQLite is the embedded demo")
    event = audit_record(verb="test", actor=drafter)
    for sql in (
        "UPDATE broadcasts_broadcastevent SET comment = 'x' WHERE id = %s",
        "DELETE FROM broadcasts_broadcastevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    assert BroadcastEvent.objects.filter(pk=event.pk, comment="").exists()
    with pytest.raises(DatabaseError), transaction.atomic():
        BroadcastEvent.objects.filter(pk=event.pk).update(comment="queryset update")
