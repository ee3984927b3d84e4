"""Four eyes over authorship: everyone who wrote part of a broadcast is recorded, and the
database refuses an approval by any of them (a trigger on both SQLite and PostgreSQL, so that
the shell, the admin or a future code path cannot write one either). Existing broadcasts get
their author and every editor found in the audit log."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


SQLITE_FORWARD = """
CREATE TRIGGER broadcasts_broadcast_four_eyes
BEFORE UPDATE OF approved_by_id ON broadcasts_broadcast
FOR EACH ROW
WHEN NEW.approved_by_id IS NOT NULL
 AND NEW.approved_by_id IS NOT OLD.approved_by_id
 AND EXISTS (SELECT 1 FROM broadcasts_broadcastcontributor c
             WHERE c.broadcast_id = NEW.id AND c.user_id = NEW.approved_by_id)
BEGIN
    SELECT RAISE(ABORT, 'four eyes: the approver wrote part of this broadcast');
END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS broadcasts_broadcast_four_eyes;"

POSTGRESQL_FORWARD = """
CREATE OR REPLACE FUNCTION broadcasts_four_eyes() RETURNS trigger AS $$
BEGIN
    IF NEW.approved_by_id IS NOT NULL
       AND NEW.approved_by_id IS DISTINCT FROM OLD.approved_by_id
       AND EXISTS (SELECT 1 FROM broadcasts_broadcastcontributor c
                   WHERE c.broadcast_id = NEW.id AND c.user_id = NEW.approved_by_id) THEN
        RAISE EXCEPTION USING
            MESSAGE = 'four eyes: the approver wrote part of broadcast ' || NEW.id,
            ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER broadcasts_broadcast_four_eyes
    BEFORE UPDATE ON broadcasts_broadcast
    FOR EACH ROW EXECUTE FUNCTION broadcasts_four_eyes();
"""
POSTGRESQL_BACKWARD = """
DROP TRIGGER IF EXISTS broadcasts_broadcast_four_eyes ON broadcasts_broadcast;
DROP FUNCTION IF EXISTS broadcasts_four_eyes();
"""


def backfill(apps, schema_editor):
    Broadcast = apps.get_model("broadcasts", "Broadcast")
    BroadcastEvent = apps.get_model("broadcasts", "BroadcastEvent")
    BroadcastContributor = apps.get_model("broadcasts", "BroadcastContributor")
    rows = {}
    for pk, author_id, created_at in Broadcast.objects.values_list("pk", "author_id", "created_at"):
        rows[(pk, author_id)] = created_at
    edits = BroadcastEvent.objects.filter(verb="edit", broadcast__isnull=False, actor__isnull=False)
    for broadcast_id, actor_id, created_at, data in edits.values_list(
        "broadcast_id", "actor_id", "created_at", "data"
    ).order_by("created_at"):
        if (data or {}).get("changed"):
            rows.setdefault((broadcast_id, actor_id), created_at)
    BroadcastContributor.objects.bulk_create(
        [
            BroadcastContributor(broadcast_id=b, user_id=u, first_contributed_at=at)
            for (b, u), at in rows.items()
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )


def trigger_forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)
    elif vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_FORWARD)


def trigger_backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)
    elif vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_BACKWARD)


class Migration(migrations.Migration):

    dependencies = [
        ('broadcasts', '0011_audit_append_only_everywhere'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='must_change_password',
            field=models.BooleanField(default=False, verbose_name='次回ログイン時にパスワード変更'),
        ),
        migrations.CreateModel(
            name='BroadcastContributor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first_contributed_at', models.DateTimeField(verbose_name='初回の編集日時')),
                ('broadcast', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='contributors', to='broadcasts.broadcast')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='contributions', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': '配信の執筆者',
                'verbose_name_plural': '配信の執筆者',
                'constraints': [models.UniqueConstraint(fields=('broadcast', 'user'), name='broadcast_contributor_unique')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(trigger_forward, trigger_backward),
    ]
