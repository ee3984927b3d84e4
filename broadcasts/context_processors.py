from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def account(request: HttpRequest) -> dict[str, object]:
    return {
        "ACCOUNT_NAME": settings.ACCOUNT_NAME,
        "ACCOUNT_ID": settings.ACCOUNT_ID,
        "LINE_USES_SANDBOX": settings.LINE_USES_SANDBOX,
        "SANDBOX_URL": settings.SANDBOX_URL if settings.LINE_USES_SANDBOX else "",
    }
