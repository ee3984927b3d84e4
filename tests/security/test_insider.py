"""An insider with one account attacks the product's promises through the real URLs and forms:
the second factor (issue 11 finding 1), four eyes (finding 2), admin powers (finding 4),
lockout as denial of service (finding 5) and the session and TOTP details (finding 6).

Each test first tries what the attacker did on the first pass and asserts it fails, then shows
what the honest path still does."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import DatabaseError, IntegrityError, transaction
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts import roles
from broadcasts.models import Broadcast, BroadcastEvent, User
from broadcasts.services import accounts, compute_hash
from tests.broadcasts.test_emergency import emergency_draft
from tests.broadcasts.test_views_compose import compose_data
from tests.fixtures.users import PASSWORD, make_user

S = Broadcast.Status
REQUIRED = ("承認者", "管理者")


def code(device: TOTPDevice, at: float | None = None) -> str:
    kwargs = {"t0": device.t0, "digits": device.digits, "step": device.step}
    if at is not None:
        return f"{totp(device.bin_key, t=int(at), **kwargs):06d}"
    return f"{totp(device.bin_key, **kwargs):06d}"


def enrolled(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="本人のアプリ", confirmed=True)


def password_login(client, user: User, address: str = "10.0.0.1"):
    return client.post(
        reverse("login"),
        {"username": user.username, "password": PASSWORD},
        REMOTE_ADDR=address,
    )


@pytest.fixture
def second_factor_on(settings):
    settings.SECOND_FACTOR_REQUIRED_GROUPS = REQUIRED


# --- finding 1: a password alone never passes the second factor ------------------------------
def test_password_alone_cannot_enrol_a_new_app_over_the_owners(
    client, supervisor, second_factor_on
):
    owners = enrolled(supervisor)
    password_login(client, supervisor)

    # The attacker's path on the first pass: / → verify → setup shows a fresh secret.
    assert client.get("/")["Location"].startswith(reverse("otp_verify"))
    response = client.get(reverse("otp_setup"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("otp_verify"))
    assert not TOTPDevice.objects.filter(user=supervisor, confirmed=False).exists()
    page = client.get(response["Location"])
    assert "認証アプリはすでに登録されています" in page.content.decode()

    # Posting a code to setup with no enrolment in progress does nothing either.
    client.post(reverse("otp_setup"), {"token": "123456"})
    assert list(TOTPDevice.objects.filter(user=supervisor)) == [owners]
    assert client.get("/").status_code == 302  # still not verified

    # The owner's own code still works.
    response = client.post(reverse("otp_verify"), {"token": code(owners), "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_the_service_refuses_enrolment_and_confirmation_without_the_old_app(supervisor):
    owners = enrolled(supervisor)
    with pytest.raises(accounts.AccountActionRefused):
        accounts.totp_device_start(user=supervisor, verified_device=None)
    # A device planted in the table by another path cannot be confirmed either.
    planted = TOTPDevice.objects.create(user=supervisor, name="attacker", confirmed=False)
    with pytest.raises(accounts.AccountActionRefused):
        accounts.totp_device_confirm(
            user=supervisor, device=planted, token=code(planted), verified_device=None
        )
    planted.refresh_from_db()
    assert not planted.confirmed
    assert TOTPDevice.objects.filter(user=supervisor, confirmed=True).get() == owners


def test_a_verified_owner_may_replace_their_app(client, supervisor, second_factor_on):
    owners = enrolled(supervisor)
    password_login(client, supervisor)
    client.post(reverse("otp_verify"), {"token": code(owners), "next": "/"})
    page = client.get(reverse("otp_setup"))
    assert page.status_code == 200
    new = TOTPDevice.objects.get(user=supervisor, confirmed=False)
    response = client.post(reverse("otp_setup"), {"token": code(new), "next": "/"})
    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user=supervisor, confirmed=True)) == [new]
    event = BroadcastEvent.objects.get(verb="second_factor_enrolled", actor=supervisor)
    assert event.data["replaced"] == [owners.pk]


def test_verification_rotates_the_session_key(client, supervisor, second_factor_on):
    owners = enrolled(supervisor)
    password_login(client, supervisor)
    before = client.session.session_key
    client.post(reverse("otp_verify"), {"token": code(owners), "next": "/"})
    assert client.session.session_key != before
    assert client.get("/").status_code == 200


def test_after_a_wrong_code_the_page_names_the_wait(client, supervisor, second_factor_on):
    owners = enrolled(supervisor)
    password_login(client, supervisor)
    wrong = f"{(int(code(owners)) + 1) % 1_000_000:06d}"
    client.post(reverse("otp_verify"), {"token": wrong})
    response = client.post(reverse("otp_verify"), {"token": code(owners)})
    html = response.content.decode()
    assert "コードが正しくありません" not in html
    assert "秒後に" in html and "コードの誤りが続いたため" in html


# --- lost app: reset by another admin ----------------------------------------------------------
def test_an_admin_resets_a_lost_app_with_audit_and_notices(
    client, supervisor, admin_user, django_capture_on_commit_callbacks
):
    supervisor.email = "supervisor@city.kashiwa.example"
    supervisor.save()
    other_admin = make_user("admin2", roles.ADMIN)
    other_admin.email = "admin2@city.kashiwa.example"
    other_admin.save()
    enrolled(supervisor)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        with_commit = client.post(
            reverse("admin:broadcasts_user_changelist"),
            {"action": "reset_second_factor", "_selected_action": [supervisor.pk]},
        )
    assert with_commit.status_code == 302
    assert not TOTPDevice.objects.filter(user=supervisor).exists()
    event = BroadcastEvent.objects.get(verb="second_factor_reset")
    assert event.actor == admin_user and event.data["user"] == "supervisor"
    to = sorted(address for m in mail.outbox for address in m.to)
    assert to == ["admin2@city.kashiwa.example", "supervisor@city.kashiwa.example"]


def test_an_admin_cannot_reset_their_own_app(client, admin_user):
    enrolled(admin_user)
    client.force_login(admin_user)
    client.post(
        reverse("admin:broadcasts_user_changelist"),
        {"action": "reset_second_factor", "_selected_action": [admin_user.pk]},
    )
    assert TOTPDevice.objects.filter(user=admin_user, confirmed=True).exists()
    assert not BroadcastEvent.objects.filter(verb="second_factor_reset").exists()


def test_after_a_reset_the_user_must_enrol_at_the_next_request(
    client, supervisor, admin_user, second_factor_on
):
    owners = enrolled(supervisor)
    password_login(client, supervisor)
    client.post(reverse("otp_verify"), {"token": code(owners), "next": "/"})
    assert client.get("/").status_code == 200
    accounts.second_factor_reset(user=supervisor, actor=admin_user)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("otp_setup"))


# --- finding 2: four eyes over authorship -------------------------------------------------------
def _pending_normal(drafter) -> Broadcast:
    from broadcasts import services
    from broadcasts.models import Category

    broadcast = services.broadcast_create(
        author=drafter,
        title="子育て支援のお知らせ",
        categories=[Category.objects.get(code="childcare_education")],
        messages=[{"type": "text", "text": "こんにちは"}],
    )
    services.broadcast_submit(broadcast=broadcast, actor=drafter)
    return broadcast


def test_a_reviewer_who_rewrote_a_broadcast_cannot_approve_it(client, drafter, reviewer):
    broadcast = _pending_normal(drafter)
    client.force_login(reviewer)
    edit = client.post(
        reverse("broadcasts:edit", args=[broadcast.pk]),
        compose_data([{"kind": "text", "text": "リンクはこちら https://evil.example/"}]),
    )
    assert edit.status_code == 302
    broadcast.refresh_from_db()
    detail = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert 'data-testid="edited-by-me"' in detail
    assert 'data-testid="approve-form"' not in detail

    response = client.post(
        reverse("broadcasts:approve", args=[broadcast.pk]), {"seen_hash": compute_hash(broadcast)}
    )
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW and broadcast.approved_by is None

    # Another reviewer, who wrote nothing, approves as usual.
    second = make_user("reviewer2", roles.REVIEWER)
    client.force_login(second)
    response = client.post(
        reverse("broadcasts:approve", args=[broadcast.pk]), {"seen_hash": compute_hash(broadcast)}
    )
    broadcast.refresh_from_db()
    assert broadcast.status == S.SCHEDULED and broadcast.approved_by == second


def test_the_edit_page_warns_an_editor_who_is_not_the_author(client, drafter, reviewer):
    broadcast = _pending_normal(drafter)
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:edit", args=[broadcast.pk])).content.decode()
    assert 'data-testid="editor-note"' in page


def test_a_supervisor_who_rewrote_an_emergency_cannot_approve_it(
    client, drafter, supervisor, line_sandbox
):
    from tests.broadcasts.sending.helpers import make_followers

    make_followers([f"U{i:032x}" for i in range(5)], ["disaster_crime"])
    broadcast = emergency_draft(drafter)
    client.force_login(supervisor)
    edit = client.post(
        reverse("broadcasts:edit", args=[broadcast.pk]),
        compose_data(
            [{"kind": "text", "text": "【柏市】全員すぐに市役所へ来てください。"}],
            categories=[broadcast.categories.get().pk],
            priority="emergency",
            emergency_reason="河川の氾濫危険水位超過",
        ),
    )
    assert edit.status_code == 302, edit.content.decode()[:2000]
    broadcast.refresh_from_db()
    from django.utils import timezone

    from broadcasts.views.otp import SESSION_KEY

    session = client.session
    session[SESSION_KEY] = timezone.now().isoformat()
    session.save()
    screen = client.get(reverse("broadcasts:emergency_approve", args=[broadcast.pk]))
    assert screen.status_code == 403
    assert "編集したため" in screen.content.decode()
    response = client.post(
        reverse("broadcasts:emergency_approve", args=[broadcast.pk]),
        {"seen_hash": compute_hash(broadcast), "typed_count": "5"},
    )
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert line_sandbox.deliveries() == []


def test_the_database_refuses_an_approval_by_a_contributor(drafter, reviewer):
    broadcast = _pending_normal(drafter)
    from broadcasts.models import BroadcastContributor

    BroadcastContributor.objects.create(
        broadcast=broadcast, user=reviewer, first_contributed_at=broadcast.created_at
    )
    # Past the service: a raw update, as a shell or a future code path could write it.
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        Broadcast.objects.filter(pk=broadcast.pk).update(approved_by=reviewer)
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        Broadcast.objects.filter(pk=broadcast.pk).update(approved_by=drafter)  # the author


def test_an_unchanged_save_does_not_make_an_editor(client, drafter, reviewer):
    broadcast = _pending_normal(drafter)
    client.force_login(reviewer)
    client.post(reverse("broadcasts:edit", args=[broadcast.pk]), compose_data())
    broadcast.refresh_from_db()
    assert not broadcast.contributors.filter(user=reviewer).exists()


# --- finding 4: admin powers --------------------------------------------------------------------
def _change_form(client, user: User) -> dict:
    page = client.get(reverse("admin:broadcasts_user_change", args=[user.pk]))
    assert page.status_code == 200
    return page


def test_an_admin_cannot_make_anyone_superuser_or_grant_raw_permissions(
    client, admin_user, drafter
):
    client.force_login(admin_user)
    page = _change_form(client, drafter).content.decode()
    assert 'name="is_superuser"' not in page
    assert 'name="user_permissions"' not in page
    assert 'name="is_staff"' not in page
    client.post(
        reverse("admin:broadcasts_user_change", args=[drafter.pk]),
        {
            "username": drafter.username,
            "is_active": "on",
            "is_superuser": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name=roles.DRAFTER).pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    drafter.refresh_from_db()
    assert not drafter.is_superuser and not drafter.is_staff


def test_an_admin_cannot_change_their_own_groups_or_flags(client, admin_user):
    client.force_login(admin_user)
    page = _change_form(client, admin_user).content.decode()
    assert 'name="groups"' not in page and 'name="is_active"' not in page
    supervisors = Group.objects.get(name=roles.SUPERVISOR)
    client.post(
        reverse("admin:broadcasts_user_change", args=[admin_user.pk]),
        {"username": admin_user.username, "groups": [supervisors.pk], "last_name": "x"},
    )
    assert not admin_user.groups.filter(pk=supervisors.pk).exists()


def test_group_permissions_cannot_be_changed_in_the_web_ui(client, admin_user):
    client.force_login(admin_user)
    group = Group.objects.get(name=roles.DRAFTER)
    before = set(group.permissions.values_list("pk", flat=True))
    client.post(
        reverse("admin:auth_group_change", args=[group.pk]),
        {"name": group.name, "permissions": list(range(1, 200))},
    )
    assert set(group.permissions.values_list("pk", flat=True)) == before


def test_no_admin_screen_shows_a_totp_secret(client, admin_user, supervisor):
    device = enrolled(supervisor)
    client.force_login(admin_user)
    # A 管理者 does not see the devices at all...
    assert client.get(reverse("admin:otp_totp_totpdevice_changelist")).status_code == 403
    # ...and even a superuser (made on the command line) sees no secret.
    root = User.objects.create_superuser("root", password=PASSWORD)
    client.force_login(root)
    for url in (
        reverse("admin:otp_totp_totpdevice_changelist"),
        reverse("admin:otp_totp_totpdevice_change", args=[device.pk]),
    ):
        html = client.get(url).content.decode()
        assert device.key not in html and device.key.upper() not in html
        assert "otpauth://" not in html
    assert (
        "登録日時" in client.get(reverse("admin:otp_totp_totpdevice_changelist")).content.decode()
    )
    config = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/")
    assert config.status_code in (302, 403, 404)


def test_a_password_set_by_an_admin_must_be_changed_by_its_owner(client, admin_user, supervisor):
    client.force_login(admin_user)
    new = "admin-chosen-password-2026"
    response = client.post(
        reverse("admin:auth_user_password_change", args=[supervisor.pk]),
        {"password1": new, "password2": new},
    )
    assert response.status_code == 302
    supervisor.refresh_from_db()
    assert supervisor.check_password(new) and supervisor.must_change_password
    assert BroadcastEvent.objects.filter(verb="password_set_by_admin", actor=admin_user).exists()

    client.logout()
    client.post(reverse("login"), {"username": "supervisor", "password": new})
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("password_change")
    page = client.get(reverse("password_change")).content.decode()
    assert 'data-testid="must-change-password"' in page
    mine = "my-own-new-password-2026"
    client.post(
        reverse("password_change"),
        {"old_password": new, "new_password1": mine, "new_password2": mine},
    )
    supervisor.refresh_from_db()
    assert not supervisor.must_change_password
    assert client.get("/").status_code == 200


def test_an_admin_cannot_set_their_own_password_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    new = "another-password-2026x"
    response = client.post(
        f"/admin/broadcasts/user/{admin_user.pk}/password/",
        {"password1": new, "password2": new},
    )
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.check_password(PASSWORD)


# --- finding 5: lockout without denial of service -----------------------------------------------
def test_an_attacker_cannot_lock_a_supervisor_out(client, supervisor, settings):
    for _ in range(12):
        client.post(
            reverse("login"),
            {"username": "supervisor", "password": "wrong-guess"},
            REMOTE_ADDR="203.0.113.9",
        )
    # The attacker's address is locked...
    locked = client.post(
        reverse("login"),
        {"username": "supervisor", "password": PASSWORD},
        REMOTE_ADDR="203.0.113.9",
    )
    assert locked.status_code == 429
    # ...the supervisor, from their own phone, is not.
    response = password_login(client, supervisor, address="198.51.100.7")
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_guessing_from_many_addresses_is_slowed_not_locked(client, supervisor, settings):
    settings.LOGIN_THROTTLE_AFTER_FAILURES = 5
    for n in range(6):
        client.post(
            reverse("login"),
            {"username": "supervisor", "password": "wrong"},
            REMOTE_ADDR=f"192.0.2.{n + 1}",
        )
    slowed = client.post(
        reverse("login"),
        {"username": "supervisor", "password": PASSWORD},
        REMOTE_ADDR="198.51.100.7",
    )
    # Either this try is asked to wait (and says how long) or it went through: never locked.
    if slowed.status_code == 200:
        assert "秒後にもう一度" in slowed.content.decode()
        import time_machine

        with time_machine.travel(
            dt.timedelta(seconds=settings.LOGIN_THROTTLE_INTERVAL_SECONDS + 1)
        ):
            slowed = password_login(client, supervisor, address="198.51.100.7")
    assert slowed.status_code == 302


def test_an_admin_unlocks_a_login_with_an_audit_row(client, supervisor, admin_user):
    for _ in range(10):
        client.post(
            reverse("login"),
            {"username": "supervisor", "password": "wrong"},
            REMOTE_ADDR="10.1.1.1",
        )
    assert password_login(client, supervisor, address="10.1.1.1").status_code == 429
    client.force_login(admin_user)
    client.post(
        reverse("admin:broadcasts_user_changelist"),
        {"action": "unlock_login", "_selected_action": [supervisor.pk]},
    )
    assert BroadcastEvent.objects.filter(verb="login_unlocked", actor=admin_user).exists()
    client.logout()
    assert password_login(client, supervisor, address="10.1.1.1").status_code == 302


# --- finding 6: polling never extends the idle session ------------------------------------------
def test_polling_does_not_keep_a_session_alive(client, drafter, settings, time_machine):
    time_machine.move_to(dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC), tick=False)
    client.force_login(drafter)
    assert client.get("/").status_code == 200
    for minute in range(1, 31, 5):
        time_machine.move_to(dt.datetime(2026, 12, 1, 1, minute, tzinfo=dt.UTC), tick=False)
        part = client.get(reverse("broadcasts:dashboard_part", args=["status"]))
        assert part.status_code == 200
    time_machine.move_to(dt.datetime(2026, 12, 1, 1, 31, tzinfo=dt.UTC), tick=False)
    response = client.get(reverse("broadcasts:dashboard_part", args=["status"]))
    assert response.status_code == 302 and reverse("login") in response["Location"]
    login_page = client.get(response["Location"]).content.decode()
    assert "操作がないまま30分が過ぎたため" in login_page


def test_a_person_acting_keeps_the_session(client, drafter, time_machine):
    time_machine.move_to(dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC), tick=False)
    client.force_login(drafter)
    for minute in (20, 40, 60):
        time_machine.move_to(
            dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=minute), tick=False
        )
        assert client.get("/").status_code == 200


def test_flags_change_on_the_command_line_with_an_audit_row(drafter):
    from django.core.management import call_command

    call_command("user_flags", "drafter", "--staff")
    drafter.refresh_from_db()
    assert drafter.is_staff and not drafter.is_superuser
    event = BroadcastEvent.objects.get(verb="user_flags_changed")
    assert event.data["after"] == {"is_staff": True, "is_superuser": False}


@pytest.mark.django_db
def test_a_reviewer_cannot_send_back_an_emergency_by_a_hand_made_request(client):
    """What waits for a 承認者 is theirs to decide, sending back included: a 広報担当's forged
    POST is refused in the service (the button is not shown either)."""
    drafter = make_user("drafter", roles.DRAFTER)
    reviewer = make_user("reviewer", roles.REVIEWER)
    supervisor = make_user("supervisor", roles.SUPERVISOR)
    broadcast = emergency_draft(drafter)  # submitted: waits for a 承認者
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW

    client.force_login(reviewer)
    response = client.post(
        reverse("broadcasts:reject", args=[broadcast.pk]), {"comment": "差し戻します"}
    )
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW
    assert not BroadcastEvent.objects.filter(broadcast=broadcast, verb="reject").exists()

    client.force_login(supervisor)  # the 承認者 may
    response = client.post(
        reverse("broadcasts:reject", args=[broadcast.pk]), {"comment": "文面を確認してください"}
    )
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.REJECTED
