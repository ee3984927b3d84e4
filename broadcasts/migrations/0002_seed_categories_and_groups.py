"""Seed the eleven policy categories (policy 4(1)) and the four staff groups (DESIGN.md §2)."""

from django.db import migrations

from broadcasts.seed import seed_categories_and_groups


def seed(apps, schema_editor):
    seed_categories_and_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("broadcasts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
