"""Superuser and staff flags, on the server's command line only (never in the web UI).

    manage.py user_flags USERNAME --staff            # may open /admin/ (管理者)
    manage.py user_flags USERNAME --no-staff
    manage.py user_flags USERNAME --superuser        # every permission; keep for emergencies
    manage.py user_flags USERNAME --no-superuser

Each change is an audit row naming the operating-system user who ran the command."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from broadcasts.models import User
from broadcasts.services.audit import audit_record


class Command(BaseCommand):
    help = "職員の管理画面アクセス（is_staff）とスーパーユーザー権限を設定します（監査記録あり）。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        staff = parser.add_mutually_exclusive_group()
        staff.add_argument("--staff", dest="staff", action="store_true", default=None)
        staff.add_argument("--no-staff", dest="staff", action="store_false")
        superuser = parser.add_mutually_exclusive_group()
        superuser.add_argument("--superuser", dest="superuser", action="store_true", default=None)
        superuser.add_argument("--no-superuser", dest="superuser", action="store_false")

    @transaction.atomic
    def handle(
        self, *args: Any, username: str, staff: bool | None, superuser: bool | None, **options: Any
    ) -> None:
        user = User.objects.select_for_update().filter(username=username).first()
        if user is None:
            raise CommandError(f"職員 {username!r} が見つかりません。")
        before = {"is_staff": user.is_staff, "is_superuser": user.is_superuser}
        if staff is not None:
            user.is_staff = staff
        if superuser is not None:
            user.is_superuser = superuser
            user.is_staff = user.is_staff or superuser
        after = {"is_staff": user.is_staff, "is_superuser": user.is_superuser}
        if after == before:
            self.stdout.write(f"{username}: 変更はありません {after}")
            return
        user.save(update_fields=["is_staff", "is_superuser"])
        audit_record(
            verb="user_flags_changed",
            actor=None,
            comment="コマンドラインで権限フラグを変更しました。",
            data={"user": username, "before": before, "after": after, "os_user": getpass.getuser()},
        )
        self.stdout.write(self.style.SUCCESS(f"{username}: {before} → {after}"))
