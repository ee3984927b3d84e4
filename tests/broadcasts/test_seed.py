from django.contrib.auth.models import Group

from broadcasts import roles
from broadcasts.models import Category


def test_eleven_policy_categories_are_seeded(db):
    labels = list(Category.objects.values_list("label", flat=True))
    assert labels == [label for _code, label, _c, _e in roles.CATEGORIES]
    assert len(labels) == 11
    assert Category.objects.get(code="emergency").is_emergency_default


def test_groups_hold_the_permissions_of_design_section_2(db):
    drafter = Group.objects.get(name=roles.DRAFTER)
    supervisor = Group.objects.get(name=roles.SUPERVISOR)
    drafter_perms = set(drafter.permissions.values_list("codename", flat=True))
    assert "review_broadcast" not in drafter_perms
    assert "add_broadcast" in drafter_perms
    assert "approve_emergency_broadcast" in set(
        supervisor.permissions.values_list("codename", flat=True)
    )
    admin_perms = set(
        Group.objects.get(name=roles.ADMIN).permissions.values_list("codename", flat=True)
    )
    assert "add_broadcast" not in admin_perms
    assert "change_calendaroverride" in admin_perms
