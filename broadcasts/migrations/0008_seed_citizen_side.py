"""Seed the greeting, the default reply, a few keyword rules and the two rich menus, and give
the 管理者 group the permissions on the new models."""

from django.db import migrations

from broadcasts.citizen_defaults import seed_citizen_side


def seed(apps, schema_editor):
    seed_citizen_side(apps)


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0007_citizen_side"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
