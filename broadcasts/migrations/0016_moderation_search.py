"""The moderation inbox's text search at scale (bench/moderation), PostgreSQL only; nothing on
SQLite (as 0014_search_indexes).

The inbox searches the text, the note and the LINE user ID. A term with cased letters is an
``icontains`` (``UPPER(col::text) LIKE UPPER('%q%')``), a term without (Japanese, digits) a
plain ``contains`` (``selectors.moderation.text_contains``), so each column gets a trigram
(pg_trgm) GIN index on both expressions. Besides serving a rare term (a bitmap scan instead of
reading every message), the index on ``UPPER(…)`` makes ANALYZE keep statistics of that
expression: without them the planner guessed 25 rows for a term 18,810 messages hold, and sorted
them all rather than walking the inbox's index until a page was full.
"""

from django.db import migrations

INDEXES = [
    ("citizenmessage_text_trgm", "broadcasts_citizenmessage", '"text"'),
    ("citizenmessage_text_upper_trgm", "broadcasts_citizenmessage", 'UPPER("text"::text)'),
    ("citizenmessage_note_trgm", "broadcasts_citizenmessage", '"note"'),
    ("citizenmessage_note_upper_trgm", "broadcasts_citizenmessage", 'UPPER("note"::text)'),
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


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _expression in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0015_merge_session3")]

    operations = [migrations.RunPython(forwards, backwards)]
