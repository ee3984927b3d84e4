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
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            # A model added by a later migration has no permission yet: that migration
            # seeds the groups again (e.g. 0014 for the official-information models).
            if found is not None:
                wanted.append(found)
        # add, never set: other migrations grant rights of their own (the citizen side's, the
        # moderation inbox's), and a later re-seed must not take them away.
        group.permissions.add(*wanted)


def seed_allowed_domains(apps: Any) -> None:
    AllowedDomain = apps.get_model("broadcasts", "AllowedDomain")
    for domain, note in CITY_DOMAINS:
        AllowedDomain.objects.get_or_create(domain=domain, defaults={"note": note})


ADMIN_OFFICIAL_PERMISSIONS = (
    "view_officialrule",
    "add_officialrule",
    "change_officialrule",
    "delete_officialrule",
    "view_officialmessage",
    "view_officialfeed",
)


def seed_official(apps: Any) -> None:
    """Official information (issue 15): the system author of drafts made from it (inactive,
    no usable password: it can never log in) and Kashiwa's default rules, each audited."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.management import create_permissions

    from .official.defaults import DEFAULT_RULES, rule_fields
    from .permissions import SYSTEM_AUTHOR_USERNAME
    from .roles import ADMIN

    # 管理者 (DX推進課) edits the rules and reads what was received: make sure the new
    # models' permissions exist, then add them to the group.
    app_config = apps.get_app_config("broadcasts")
    had_models = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = had_models
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=ADMIN).first()
    if group is not None:
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="broadcasts", codename__in=ADMIN_OFFICIAL_PERMISSIONS
            )
        )

    User = apps.get_model("broadcasts", "User")
    Category = apps.get_model("broadcasts", "Category")
    OfficialRule = apps.get_model("broadcasts", "OfficialRule")
    BroadcastEvent = apps.get_model("broadcasts", "BroadcastEvent")
    User.objects.get_or_create(
        username=SYSTEM_AUTHOR_USERNAME,
        defaults={
            "is_active": False,
            "password": make_password(None),
            "last_name": "自動起案（防災情報）",
        },
    )
    if OfficialRule.objects.exists():
        return
    for spec in DEFAULT_RULES:
        code = str(spec["category"])
        rule = OfficialRule.objects.create(
            category=Category.objects.get(code=code), **rule_fields(spec)
        )
        BroadcastEvent.objects.create(
            verb="official_rule_created",
            comment=f"初期設定: 防災情報の起案規則「{rule.name}」",
            data={
                "rule": rule.pk,
                "before": None,
                "after": {**rule_fields(spec), "category": code},
            },
        )


def seed_all(apps: Any) -> None:
    """Everything the data migrations seed, for tests whose database is flushed between
    tests (transactional and live-server tests)."""
    from .audience_defaults import seed_audiences
    from .citizen_defaults import seed_citizen_side
    from .policy.prohibited import seed_moderation_policy

    seed_categories_and_groups(apps)
    seed_allowed_domains(apps)
    seed_citizen_side(apps)
    seed_official(apps)
    seed_moderation_policy(apps)
    seed_audiences(apps)
