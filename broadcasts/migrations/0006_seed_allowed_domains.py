"""Seed the link allowlist with the city's own domains (admins may add more)."""

from django.db import migrations

from broadcasts.seed import CITY_DOMAINS, seed_allowed_domains


def seed(apps, schema_editor):
    seed_allowed_domains(apps)


def unseed(apps, schema_editor):
    AllowedDomain = apps.get_model("broadcasts", "AllowedDomain")
    AllowedDomain.objects.filter(domain__in=[d for d, _ in CITY_DOMAINS]).delete()


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0005_message_templates_allowed_domains")]

    operations = [migrations.RunPython(seed, unseed)]
