"""Admin-edited rules that turn official information into drafts: every change audited."""

from __future__ import annotations

from django.db import transaction

from ...models import Category, OfficialRule, User
from ...official.defaults import DEFAULT_RULES, rule_fields
from ..audit import audit_record


def _rule_snapshot(rule: OfficialRule) -> dict[str, object]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "area_codes": rule.area_codes,
        "names": rule.names,
        "min_intensity": rule.min_intensity,
        "priority": rule.priority,
        "category": rule.category.code if rule.category_id else "",
        "audience": rule.audience,
        "template": rule.template,
        "enabled": rule.enabled,
        "sort_order": rule.sort_order,
    }


@transaction.atomic
def official_rule_save(*, rule: OfficialRule, actor: User | None) -> OfficialRule:
    """Create or change a rule (admin screen), with an audit row of before and after."""
    before = None
    if rule.pk is not None:
        previous = OfficialRule.objects.select_for_update().filter(pk=rule.pk).first()
        before = _rule_snapshot(previous) if previous else None
    rule.save()
    after = _rule_snapshot(rule)
    audit_record(
        verb="official_rule_changed" if before else "official_rule_created",
        actor=actor,
        comment=f"防災情報の起案規則「{rule.name}」を{'変更' if before else '作成'}しました",
        data={"rule": rule.pk, "before": before, "after": after},
    )
    return rule


@transaction.atomic
def official_rule_delete(*, rule: OfficialRule, actor: User | None) -> None:
    snapshot = _rule_snapshot(rule)
    pk = rule.pk
    rule.delete()
    audit_record(
        verb="official_rule_deleted",
        actor=actor,
        comment=f"防災情報の起案規則「{snapshot['name']}」を削除しました",
        data={"rule": pk, "before": snapshot},
    )


@transaction.atomic
def official_rules_seed_defaults(*, actor: User | None = None) -> list[OfficialRule]:
    """Kashiwa's default rules (what migration 0014 seeds), for a database that has none."""
    created = []
    for spec in DEFAULT_RULES:
        category = Category.objects.get(code=str(spec["category"]))
        created.append(
            official_rule_save(
                rule=OfficialRule(category=category, **rule_fields(spec)), actor=actor
            )
        )
    return created
