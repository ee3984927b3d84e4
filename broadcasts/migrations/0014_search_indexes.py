"""Search at scale (issue 18), PostgreSQL only; nothing on SQLite.

* Trigram (pg_trgm) GIN indexes on what the list's and the history's text search read:
  ``icontains`` is ``UPPER(col::text) LIKE UPPER('%q%')``, which a B-tree cannot serve; a
  trigram index on the same ``UPPER(…)`` expression can (for three characters and more).
* The delivery rows' recipient lists (~18 KB of JSON per chunk of 500) are compressed with
  lz4 instead of pglz: a 100,000-recipient send writes 200 of them before its first request.
"""

from django.db import migrations

INDEXES = [
    ("broadcast_title_trgm", "broadcasts_broadcast", 'UPPER("title"::text)'),
    ("broadcast_messages_trgm", "broadcasts_broadcast", 'UPPER("messages"::text)'),
    ("broadcastevent_comment_trgm", "broadcasts_broadcastevent", 'UPPER("comment"::text)'),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, expression in INDEXES:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" '
            f"USING gin (({expression}) gin_trgm_ops)"
        )
    # lz4 needs a server built with it (Debian's and the official images are); else keep pglz.
    schema_editor.execute(
        """
        DO $$ BEGIN
            ALTER TABLE "broadcasts_delivery" ALTER COLUMN "recipients" SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
        END $$
        """
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _expression in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
    schema_editor.execute(
        'ALTER TABLE "broadcasts_delivery" ALTER COLUMN "recipients" SET COMPRESSION pglz'
    )


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0013_quota_reservation")]

    operations = [migrations.RunPython(forwards, backwards)]
