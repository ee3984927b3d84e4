"""Rich menu screen for admins: preview each menu (image with its tap areas drawn over it),
publish it to LINE, switch between the ordinary and the disaster menu. Definitions (areas,
image) are edited in the Django admin."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST, require_safe

from ..line.errors import LineError
from ..models import RichMenu
from ..permissions import BroadcastPermissionDenied, can_administer
from ..services import richmenu as richmenu_services
from ..services.errors import BroadcastInvalid


def _require_admin(request: HttpRequest) -> None:
    if not can_administer(request.user):
        raise BroadcastPermissionDenied("リッチメニューを操作できるのは管理者だけです。")


def _areas(menu: RichMenu) -> list[dict[str, Any]]:
    """Each tap area as percentages of the image, for the CSS overlay."""
    width, height = menu.width, menu.height
    areas = []
    for index, area in enumerate(menu.areas if isinstance(menu.areas, list) else []):
        try:
            b = area["bounds"]
            action = area.get("action") or {}
            areas.append(
                {
                    "number": index + 1,
                    "left": round(100 * int(b["x"]) / width, 3),
                    "top": round(100 * int(b["y"]) / height, 3),
                    "width": round(100 * int(b["width"]) / width, 3),
                    "height": round(100 * int(b["height"]) / height, 3),
                    "label": action.get("label", ""),
                    "type": action.get("type", ""),
                    "target": action.get("uri") or action.get("data") or action.get("text", ""),
                }
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
    return areas


@require_safe
def richmenu_list(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    menus = list(RichMenu.objects.defer("image").order_by("kind", "id"))
    rows = [
        {
            "menu": m,
            "areas": _areas(m),
            "problems": richmenu_services.rich_menu_check(m, require_image=False),
        }
        for m in menus
    ]
    active = next((m for m in menus if m.is_line_default), None)
    return render(request, "broadcasts/richmenu.html", {"rows": rows, "active": active})


@require_safe
def richmenu_image(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    menu = get_object_or_404(RichMenu, pk=pk)
    if not menu.image:
        return HttpResponse(status=404)
    return HttpResponse(bytes(menu.image), content_type=menu.image_content_type or "image/png")


@require_POST
def richmenu_publish(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    menu = get_object_or_404(RichMenu, pk=pk)
    try:
        menu = richmenu_services.rich_menu_publish(menu=menu, actor=request.user)
    except BroadcastInvalid as exc:
        messages.error(request, "公開できません: " + " / ".join(p.message for p in exc.problems))
    except LineError as exc:
        messages.error(request, "LINE への公開に失敗しました: " + exc.describe())
    else:
        note = (
            "（利用者のメニューに反映しました）"
            if menu.is_line_default
            else "（切り替えるまで表示されません）"
        )
        messages.success(request, f"「{menu.name}」を LINE に公開しました{note}。")
    return redirect("broadcasts:richmenu_list")


@require_POST
def richmenu_switch(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    kind = request.POST.get("kind", "")
    if kind not in RichMenu.Kind.values:
        messages.error(request, gettext("切り替え先が正しくありません。"))
        return redirect("broadcasts:richmenu_list")
    try:
        menu = richmenu_services.rich_menu_switch(kind=kind, actor=request.user)
    except BroadcastInvalid as exc:
        messages.error(
            request, "切り替えできません: " + " / ".join(p.message for p in exc.problems)
        )
    except LineError as exc:
        messages.error(request, "LINE での切り替えに失敗しました: " + exc.describe())
    else:
        messages.success(
            request, gettext("利用者のメニューを「%(n)s」に切り替えました。") % {"n": menu.name}
        )
    return redirect("broadcasts:richmenu_list")
