"""Seed the link allowlist with the city's own domains (admins may add more)."""

from django.db import migrations

CITY_DOMAINS = (
    ("city.kashiwa.lg.jp", "柏市公式ホームページ"),
    ("www.city.kashiwa.lg.jp", "柏市公式ホームページ"),
    ("kashiwa.lg.jp", "柏市（地方公共団体ドメイン）"),
)


def seed(apps, schema_editor):
    AllowedDomain = apps.get_model("broadcasts", "AllowedDomain")
    for domain, note in CITY_DOMAINS:
        AllowedDomain.objects.get_or_create(domain=domain, defaults={"note": note})


def unseed(apps, schema_editor):
    AllowedDomain = apps.get_model("broadcasts", "AllowedDomain")
    AllowedDomain.objects.filter(domain__in=[d for d, _ in CITY_DOMAINS]).delete()


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0005_message_templates_allowed_domains")]

    operations = [migrations.RunPython(seed, unseed)]
