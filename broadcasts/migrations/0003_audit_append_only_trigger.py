"""On PostgreSQL, the database itself refuses UPDATE and DELETE on audit rows."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION broadcasts_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'broadcasts_broadcastevent is append-only (audit log)';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER broadcasts_broadcastevent_append_only
    BEFORE UPDATE OR DELETE ON broadcasts_broadcastevent
    FOR EACH ROW EXECUTE FUNCTION broadcasts_audit_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS broadcasts_broadcastevent_append_only ON broadcasts_broadcastevent;
DROP FUNCTION IF EXISTS broadcasts_audit_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0002_seed_categories_and_groups")]

    operations = [migrations.RunPython(forward, backward)]
