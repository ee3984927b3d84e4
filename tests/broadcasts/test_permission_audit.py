"""Changes to who may do what leave audit rows naming the admin who made them."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.urls import reverse

from broadcasts import roles
from broadcasts.models import BroadcastEvent, User


def test_admin_adding_a_user_to_the_supervisors_is_audited(client, admin_user, drafter):
    client.force_login(admin_user)
    supervisors = Group.objects.get(name=roles.SUPERVISOR)
    url = reverse("admin:broadcasts_user_change", args=[drafter.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list)}
    data.update(
        {
            "username": drafter.username,
            "groups": [g.pk for g in drafter.groups.all()] + [supervisors.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "09:00:00",
            "is_active": "on",
            "division": drafter.division_id,
        }
    )
    data.pop("password", None)
    data.pop("last_login", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert drafter.groups.filter(name=roles.SUPERVISOR).exists()
    event = BroadcastEvent.objects.filter(verb="permission_changed").latest("id")
    assert event.actor == admin_user
    assert roles.SUPERVISOR in str(event.data)


def test_flags_and_group_permissions_changes_are_audited(db, drafter):
    drafter.is_staff = True
    drafter.save()
    event = BroadcastEvent.objects.filter(verb="permission_changed").latest("id")
    assert event.data["before"]["is_staff"] is False
    assert event.data["after"]["is_staff"] is True
    group = Group.objects.get(name=roles.DRAFTER)
    group.permissions.clear()
    event = BroadcastEvent.objects.filter(verb="permission_changed").latest("id")
    assert event.data["group"] == roles.DRAFTER
    assert event.data["action"] == "post_clear"


def test_saving_a_user_without_changing_flags_adds_no_row(db, drafter):
    before = BroadcastEvent.objects.count()
    drafter.first_name = "花子"
    drafter.save()
    assert BroadcastEvent.objects.count() == before
    assert User.objects.get(pk=drafter.pk).first_name == "花子"
