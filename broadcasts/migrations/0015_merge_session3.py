"""Joins the migrations the features of session 3 were built on in parallel (each depends on
0013 and touches its own models): out-of-hours sends and staff alerts (issue 13), official
information (15), audiences and language versions (16), moderation and policy versions (17),
search indexes (18).

On SQLite a migration that makes Django rebuild a table drops that table's triggers, and the
order in which parallel migrations run is not fixed. So this last one puts back, on SQLite,
both guarantees the database itself holds: the audit log is append-only (0011) and a
contributor cannot approve (0012). Dropping first makes it idempotent. PostgreSQL alters
tables in place and keeps its triggers. ``test_audit_integrity`` and ``test_insider`` check
that both triggers exist after every migration has run.
"""

import importlib

from django.db import migrations


def sqlite_triggers_again(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    m0011 = importlib.import_module("broadcasts.migrations.0011_audit_append_only_everywhere")
    m0012 = importlib.import_module("broadcasts.migrations.0012_four_eyes_contributors")
    for sql in [*m0011.SQLITE_BACKWARD, *m0011.SQLITE_FORWARD]:
        schema_editor.execute(sql)
    schema_editor.execute(m0012.SQLITE_BACKWARD)
    schema_editor.execute(m0012.SQLITE_FORWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("broadcasts", "0014_out_of_hours"),
        ("broadcasts", "0014_notifications"),
        ("broadcasts", "0014_official_alerts"),
        ("broadcasts", "0014_moderation_policy"),
        ("broadcasts", "0014_audiences"),
        ("broadcasts", "0014_search_indexes"),
    ]

    operations = [migrations.RunPython(sqlite_triggers_again, migrations.RunPython.noop)]
