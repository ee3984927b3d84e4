"""Public pages, no login (policy 5(4) and 7): how to tell the real account from impersonators,
the notices admins publish, and the operating policy with its dates and change history."""

from __future__ import annotations

import functools
import io

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from .. import policy
from ..models import PublicNotice

ADD_FRIEND_URL = "https://line.me/R/ti/p/@kashiwa_shi"
DEPARTMENTS = (
    ("公式アカウント全般", "柏市企画部DX推進課（情報政策担当課）"),
    ("情報発信", "柏市広報部広報広聴課（広報担当課）"),
)


@functools.cache
def add_friend_qr_svg() -> bytes:
    """The add-friend QR code as SVG, generated here (no third-party image service)."""
    import segno

    qr = segno.make(ADD_FRIEND_URL, error="m", micro=False)
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=6,
        border=4,
        title=f"{settings.ACCOUNT_NAME} の友だち追加 QR コード",
        desc=ADD_FRIEND_URL,
        xmldecl=False,
    )
    return out.getvalue()


def _notices() -> list[PublicNotice]:
    return list(PublicNotice.objects.filter(is_published=True).order_by("-published_at", "-id"))


@require_safe
def account(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "public/account.html",
        {
            "add_friend_url": ADD_FRIEND_URL,
            "departments": DEPARTMENTS,
            "notices": _notices(),
            "effective": policy.EFFECTIVE[1],
        },
    )


@require_safe
def policy_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "public/policy.html",
        {
            "title": policy.TITLE,
            "sections": policy.policy_sections(),
            "enacted": policy.ENACTED,
            "effective": policy.EFFECTIVE,
            "revisions": policy.REVISIONS,
        },
    )


@require_safe
@cache_control(public=True, max_age=86400)
def qr_svg(request: HttpRequest) -> HttpResponse:
    return HttpResponse(add_friend_qr_svg(), content_type="image/svg+xml")
