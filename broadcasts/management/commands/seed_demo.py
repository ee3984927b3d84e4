"""Demo data for the embedded default: one user per role, followers matching the LINE
sandbox's synthetic followers, and a few broadcasts in different states. Idempotent.

Passwords are generated on first run, kept in var/demo-credentials.json and printed; so are
the TOTP secrets of the 承認者 and 管理者, who must enter a code after logging in."""

from __future__ import annotations

import base64
import json
import random
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts import roles, services
from broadcasts.models import Broadcast, Category, Division, Follower, User
from broadcasts.services.audiences import followers_bits_rebuild
from line_sandbox.state import synthetic_user_id

DEMO_USERS = (
    ("drafter", roles.DRAFTER, "子ども政策課", "柏", "花子"),
    ("reviewer", roles.REVIEWER, "広報広聴課", "手賀", "太郎"),
    ("supervisor", roles.SUPERVISOR, "広報広聴課", "沼南", "一郎"),
    ("admin", roles.ADMIN, "DX推進課", "豊四季", "管理"),
)


class Command(BaseCommand):
    help = "デモ用の職員・友だち・配信を作成します（何度実行しても同じ結果）"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--followers", type=int, default=200)
        parser.add_argument("--staff", type=int, default=3)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.LINE_USES_SANDBOX:
            # With real channel credentials `./dev run` still starts: demo users and synthetic
            # followers must never be created next to real citizens.
            self.stdout.write(
                "実際の LINE に接続しているため、デモデータは作成しません。"
                "職員は `manage.py createsuperuser` と管理画面で登録してください。"
            )
            return
        credentials_file = settings.DATA_DIR / "demo-credentials.json"
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        credentials: dict[str, str] = {}
        if credentials_file.exists():
            credentials = json.loads(credentials_file.read_text(encoding="utf-8"))
        with transaction.atomic():
            users = self._users(credentials)
            devices = self._totp_devices(users)
            self._followers(options["followers"], options["staff"])
            self._broadcasts(users)
        credentials_file.write_text(json.dumps(credentials, indent=2), encoding="utf-8")
        credentials_file.chmod(0o600)
        self.stdout.write("\nデモ用ログイン（ユーザー名 / パスワード / 役割）:")
        for username, role, *_ in DEMO_USERS:
            self.stdout.write(f"  {username:<11} {credentials[username]}  {role}")
            device = devices.get(username)
            if device is not None:
                secret = base64.b32encode(device.bin_key).decode()
                self.stdout.write(f"    二要素認証（TOTP）の鍵: {secret}")
                self.stdout.write(f"    認証アプリ登録用 URL: {device.config_url}")
        self.stdout.write("")

    def _users(self, credentials: dict[str, str]) -> dict[str, User]:
        users = {}
        for username, role, division, last, first in DEMO_USERS:
            div, _ = Division.objects.get_or_create(name=division)
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"last_name": last, "first_name": first, "division": div},
            )
            if created or username not in credentials:
                credentials[username] = secrets.token_urlsafe(12)
                user.set_password(credentials[username])
            user.is_staff = role == roles.ADMIN
            # Approval alerts go by e-mail too: the embedded default prints them on the console.
            user.email = user.email or f"{username}@example.com"
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            users[username] = user
        return users

    def _totp_devices(self, users: dict[str, User]) -> dict[str, TOTPDevice]:
        """A confirmed authenticator for each user whose role requires the second factor
        (承認者, 管理者), created once and kept: add its key to an authenticator app."""
        devices = {}
        for username, role, *_ in DEMO_USERS:
            if role not in (roles.SUPERVISOR, roles.ADMIN):
                continue
            user = users[username]
            device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
            if device is None:
                device = TOTPDevice.objects.create(user=user, name="認証アプリ", confirmed=True)
            devices[username] = device
        return devices

    def _followers(self, count: int, staff: int) -> None:
        rng = random.Random(20260401)  # noqa: S311 - demo data, not security
        categories = list(Category.objects.all())
        existing = set(Follower.objects.values_list("line_user_id", flat=True))
        for index in range(count):
            user_id = synthetic_user_id(index)
            if user_id in existing:
                continue
            follower = Follower.objects.create(
                line_user_id=user_id, is_staff_test_recipient=index < staff
            )
            follower.categories.set(rng.sample(categories, k=rng.randint(1, 4)))
            self._demo_choices(follower, rng)
        followers_bits_rebuild()  # the demo's choices, written in bulk, onto the follower rows

    def _demo_choices(self, follower: Follower, rng: random.Random) -> None:
        """Demo only: some followers chose a sample area, an age group or a language in
        受信設定 (issue 16), so the targeting screen's counts show something."""
        from broadcasts.models import (
            AgeGroup,
            Area,
            FollowerAgeGroup,
            FollowerArea,
            FollowerLanguage,
            Language,
        )

        areas, ages = list(Area.objects.filter(is_sample=True)), list(AgeGroup.objects.all())
        languages = list(Language.objects.exclude(code="ja"))
        if areas and rng.random() < 0.7:
            FollowerArea.objects.create(follower=follower, area=rng.choice(areas))
        if ages and rng.random() < 0.4:
            FollowerAgeGroup.objects.create(follower=follower, age_group=rng.choice(ages))
        if languages and rng.random() < 0.3:
            FollowerLanguage.objects.create(follower=follower, language=rng.choice(languages))

    def _broadcasts(self, users: dict[str, User]) -> None:
        if Broadcast.objects.exists():
            return
        cat = {c.code: c for c in Category.objects.all()}
        services.broadcast_create(
            author=users["drafter"],
            title="乳幼児健診の日程変更（下書き）",
            categories=[cat["childcare_education"], cat["health_welfare"]],
            messages=[{"type": "text", "text": "12月の乳幼児健診の日程が変更になりました。"}],
            audience=Broadcast.Audience.SUBSCRIBERS,
        )
        pending = services.broadcast_create(
            author=users["drafter"],
            title="広報かしわ 12月1日号",
            categories=[cat["koho_kashiwa"]],
            messages=[
                {"type": "text", "text": "広報かしわ12月1日号を発行しました。"},
                {
                    "type": "template",
                    "altText": "広報かしわ 12月1日号",
                    "template": {
                        "type": "buttons",
                        "title": "広報かしわ",
                        "text": "12月1日号はホームページでも読めます。",
                        "actions": [
                            {
                                "type": "uri",
                                "label": "ホームページ",
                                "uri": "https://www.city.kashiwa.lg.jp/",
                            }
                        ],
                    },
                },
            ],
        )
        services.broadcast_submit(broadcast=pending, actor=users["drafter"])
