"""Public pages, no login (policy 5(4) and 7): how to tell the real account from impersonators,
the notices admins publish, and the operating policy with its dates and change history."""

from __future__ import annotations

import datetime as dt
import functools
import io

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from .. import policy
from ..models import PublicNotice
from ..schedule import JST
from ..selectors import policy as policy_selectors

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


def _today() -> dt.date:
    return timezone.now().astimezone(JST).date()


@require_safe
def account(request: HttpRequest) -> HttpResponse:
    current = policy_selectors.policy_current(today=_today())
    return render(
        request,
        "public/account.html",
        {
            "add_friend_url": ADD_FRIEND_URL,
            "departments": DEPARTMENTS,
            "notices": _notices(),
            "effective": policy.wareki(current.effective_on) if current else policy.EFFECTIVE[1],
        },
    )


@require_safe
def policy_page(request: HttpRequest) -> HttpResponse:
    """The version in force today (Japan's date) and every published version (policy 7).
    Before any version exists (a database not yet migrated), the text shipped with the app."""
    today = _today()
    current = policy_selectors.policy_current(today=today)
    if current is None:
        return render(
            request,
            "public/policy.html",
            {
                "title": policy.TITLE,
                "sections": policy.policy_sections(),
                "enacted": policy.ENACTED,
                "amended": None,
                "effective": policy.EFFECTIVE,
                "versions": [],
                "upcoming": [],
                "revisions": policy.REVISIONS,
            },
        )

    def dated(day: dt.date | None) -> tuple[dt.date, str] | None:
        return (day, policy.wareki(day)) if day else None

    versions = [
        {
            "version": v,
            "enacted": dated(v.enacted_on),
            "amended": dated(v.amended_on),
            "effective": dated(v.effective_on),
            "is_current": v.pk == current.pk,
        }
        for v in policy_selectors.policy_versions_published()
    ]
    return render(
        request,
        "public/policy.html",
        {
            "title": current.title,
            "sections": policy.sections_from_text(current.body, title=current.title),
            "enacted": dated(current.enacted_on),
            "amended": dated(current.amended_on),
            "effective": dated(current.effective_on),
            "versions": versions,
            "upcoming": [row for row in versions if row["version"].effective_on > today],
            "revisions": [],
        },
    )


@require_safe
@cache_control(public=True, max_age=86400)
def qr_svg(request: HttpRequest) -> HttpResponse:
    return HttpResponse(add_friend_qr_svg(), content_type="image/svg+xml")
