"""Is the configured channel the account the policy names (policy 3: 「柏市役所」,
@kashiwa_shi)? Asked of LINE's bot info through the gateway, remembered for a few minutes so
that 運用状況 and /healthz do not call LINE on every view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from .errors import LineError
from .gateway import get_gateway

CACHE_KEY = "line:account-identity"
CACHE_SECONDS = 300
FAILURE_CACHE_SECONDS = 60


@dataclass(frozen=True)
class AccountIdentity:
    """What LINE says the channel is, against what the policy names."""

    expected_name: str
    expected_id: str
    display_name: str = ""
    basic_id: str = ""
    #: LINE could not be asked (the check is then unknown, not failed)
    error: str = ""

    @property
    def checked(self) -> bool:
        return not self.error

    @property
    def matches(self) -> bool:
        return (
            self.checked
            and self.display_name == self.expected_name
            and self.basic_id == self.expected_id
        )

    @property
    def problem(self) -> str:
        """A sentence for staff, or "" when all is well."""
        if not self.checked:
            return f"LINE にアカウント情報を問い合わせられませんでした（{self.error}）。"
        if self.matches:
            return ""
        return (
            f"設定されているチャネルは「{self.display_name}」{self.basic_id} です。"
            f"運用ポリシー3のアカウント「{self.expected_name}」{self.expected_id} ではありません。"
            "チャネルアクセストークンの設定を確認してください。"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.matches,
            "display_name": self.display_name,
            "basic_id": self.basic_id,
            "expected_name": self.expected_name,
            "expected_id": self.expected_id,
            "error": self.error,
        }


def account_identity(*, use_cache: bool = True) -> AccountIdentity:
    """LINE's bot info for the configured channel, compared with the policy's account."""
    if use_cache:
        cached = cache.get(CACHE_KEY)
        if isinstance(cached, dict):
            return AccountIdentity(**cached)
    expected = {"expected_name": settings.ACCOUNT_NAME, "expected_id": settings.ACCOUNT_ID}
    try:
        info = get_gateway().bot_info()
    except LineError as exc:
        # Remembered for a minute: a slow or unreachable LINE must not slow every view.
        failed = AccountIdentity(**expected, error=exc.describe())
        cache.set(
            CACHE_KEY,
            {**expected, "display_name": "", "basic_id": "", "error": failed.error},
            FAILURE_CACHE_SECONDS,
        )
        return failed
    identity = AccountIdentity(
        **expected,
        display_name=str(info.get("displayName") or ""),
        basic_id=str(info.get("basicId") or ""),
    )
    cache.set(
        CACHE_KEY,
        {
            **expected,
            "display_name": identity.display_name,
            "basic_id": identity.basic_id,
            "error": "",
        },
        CACHE_SECONDS,
    )
    return identity
