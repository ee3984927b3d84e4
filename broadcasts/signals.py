"""Audit rows for authentication events (issue: security). Signals only record; they never
change a broadcast's state."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.dispatch import receiver

from .models import User
from .services.audit import audit_record


def _ip(request: Any) -> str:
    return (request.META.get("REMOTE_ADDR", "") if request is not None else "")[:45]


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(verb="login", actor=user, data={"ip": _ip(request)})


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(verb="logout", actor=user, data={"ip": _ip(request)})


@receiver(user_login_failed)
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    # Never the password: django already masks it, and we keep only the username.
    from .services.accounts import login_failure_record

    login_failure_record(username=str(credentials.get("username", "")))
    audit_record(
        verb="login_failed",
        actor=None,
        data={"username": str(credentials.get("username", ""))[:150], "ip": _ip(request)},
    )


@receiver(user_locked_out)
def _locked_out(sender: Any, request: Any, username: str | None = None, **kwargs: Any) -> None:
    audit_record(
        verb="login_locked_out",
        actor=None,
        comment="パスワードの連続誤りによりログインを制限しました。",
        data={"username": str(username or "")[:150], "ip": _ip(request)},
    )


# --- permission changes (users' groups and flags, groups' permissions) ----------------------
def _current_actor() -> Any:
    """The signed-in admin making the change, when it happens in a request (admin screens)."""
    from .middleware import current_user

    return current_user()


@receiver(m2m_changed, sender=User.groups.through)
def _user_groups_changed(
    sender: Any, instance: Any, action: str, pk_set: set[int] | None, reverse: bool, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    names = sorted(Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    if reverse:  # group.user_set changed
        users = list(User.objects.filter(pk__in=pk_set or []).values_list("username", flat=True))
        data = {"group": instance.name, "users": users, "action": action}
    else:
        data = {"user": instance.username, "groups": names, "action": action}
    audit_record(verb="permission_changed", actor=_current_actor(), data=data)


@receiver(m2m_changed, sender=Group.permissions.through)
def _group_permissions_changed(
    sender: Any, instance: Any, action: str, pk_set: set[int] | None, reverse: bool, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear") or reverse:
        return
    codenames = sorted(
        Permission.objects.filter(pk__in=pk_set or []).values_list("codename", flat=True)
    )
    audit_record(
        verb="permission_changed",
        actor=_current_actor(),
        data={"group": instance.name, "permissions": codenames, "action": action},
    )


_FLAGS = ("is_active", "is_staff", "is_superuser")


@receiver(pre_save, sender=User)
def _remember_user_flags(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.pk:
        instance._kashiwa_flags_before = User.objects.filter(pk=instance.pk).values(*_FLAGS).first()


@receiver(post_save, sender=User)
def _user_flags_changed(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    after = {flag: getattr(instance, flag) for flag in _FLAGS}
    before = getattr(instance, "_kashiwa_flags_before", None)
    if created or (before is not None and before != after):
        audit_record(
            verb="user_created" if created else "permission_changed",
            actor=_current_actor(),
            data={"user": instance.username, "before": before, "after": after},
        )
