"""Seed the eleven policy categories (policy 4(1)) and the four staff groups (DESIGN.md §2).

Used by the data migration (with historical models) and by tests that flush the database."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions

from .roles import CATEGORIES, GROUP_PERMISSIONS

# The link allowlist starts with the city's own domains (admins may add more).
CITY_DOMAINS = (
    ("city.kashiwa.lg.jp", "柏市公式ホームページ"),
    ("www.city.kashiwa.lg.jp", "柏市公式ホームページ"),
    ("kashiwa.lg.jp", "柏市（地方公共団体ドメイン）"),
)


def seed_categories_and_groups(apps: Any) -> None:
    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        had_models = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = had_models

    Category = apps.get_model("broadcasts", "Category")
    for order, (code, label, color, emergency) in enumerate(CATEGORIES, start=1):
        Category.objects.update_or_create(
            code=code,
            defaults={
                "label": label,
                "sort_order": order,
                "color": color,
                "is_emergency_default": emergency,
            },
        )

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


def seed_allowed_domains(apps: Any) -> None:
    AllowedDomain = apps.get_model("broadcasts", "AllowedDomain")
    for domain, note in CITY_DOMAINS:
        AllowedDomain.objects.get_or_create(domain=domain, defaults={"note": note})


def seed_all(apps: Any) -> None:
    """Everything the data migrations seed, for tests whose database is flushed between
    tests (transactional and live-server tests)."""
    from .audience_defaults import seed_audiences
    from .citizen_defaults import seed_citizen_side

    seed_categories_and_groups(apps)
    seed_allowed_domains(apps)
    seed_citizen_side(apps)
    seed_audiences(apps)
