"""Audit rows for authentication events (issue: security). Signals only record; they never
change a broadcast's state."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

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
