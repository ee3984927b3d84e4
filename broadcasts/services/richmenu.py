"""Rich menus (policy 4(2)): check a definition, publish it through the API, switch between
the ordinary and the disaster menu. Every change is audited.

LINE rich menus cannot be edited once created: publishing again creates a new one, makes it
the default if its predecessor was, and deletes the predecessor."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import permissions
from ..content import Problem
from ..images import image_info
from ..line import gateway as line_gateway
from ..line.errors import LineError
from ..models import AllowedDomain, RichMenu, User
from .audit import audit_record
from .errors import BroadcastInvalid, BroadcastPermissionDenied

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 1024 * 1024
MAX_AREAS = 20
SIZES = {"2500x1686": (2500, 1686), "2500x843": (2500, 843)}


def _host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in allowed)


def _check_action(action: Any, where: str, allowed: list[str] | None = None) -> list[Problem]:
    if not isinstance(action, dict):
        return [Problem(where, "アクションの形式が不正です。")]
    problems = []
    label = str(action.get("label", ""))
    if not label.strip():
        problems.append(Problem(where, "タップ領域の名前（label）を入力してください。"))
    elif len(label) > 20:
        problems.append(Problem(where, "タップ領域の名前は20文字以内にしてください。"))
    kind = action.get("type")
    if kind == "uri":
        uri = str(action.get("uri", ""))
        parsed = urlparse(uri)
        if parsed.scheme not in ("https", "tel") or (
            parsed.scheme == "https" and not parsed.netloc
        ):
            problems.append(Problem(where, "リンク先は https:// で始まる URL にしてください。"))
        elif len(uri) > 1000:
            problems.append(Problem(where, "リンク先の URL は1000文字以内にしてください。"))
        elif (
            parsed.scheme == "https"
            and allowed is not None
            and not _host_allowed(parsed.hostname or "", allowed)
        ):
            problems.append(
                Problem(
                    where,
                    f"リンク先のドメイン（{parsed.hostname}）がリンク許可ドメインにありません。"
                    "市のページか、管理画面の「リンク許可ドメイン」に登録したドメインにしてください。",
                )
            )
    elif kind == "postback":
        data = str(action.get("data", ""))
        if not data or len(data) > 300:
            problems.append(Problem(where, "postback の data は1〜300文字にしてください。"))
    elif kind == "message":
        if not str(action.get("text", "")).strip():
            problems.append(Problem(where, "送信するテキストを入力してください。"))
    else:
        problems.append(Problem(where, "アクションは uri / postback / message のいずれかです。"))
    return problems


def rich_menu_check(menu: RichMenu, *, require_image: bool = True) -> list[Problem]:
    """Every reason LINE would refuse this menu, in Japanese."""
    problems: list[Problem] = []
    if menu.size not in SIZES:
        return [Problem("size", "サイズは 2500×1686 か 2500×843 です。")]
    width, height = SIZES[menu.size]
    if not menu.name.strip() or len(menu.name) > 300:
        problems.append(Problem("name", "名前は1〜300文字にしてください。"))
    if not menu.chat_bar_text.strip() or len(menu.chat_bar_text) > 14:
        problems.append(Problem("chat_bar_text", "メニューバーの文言は1〜14文字にしてください。"))
    # Policy 4(2): the menu leads to the city's services; links only to allowed domains.
    allowed = [d.lower().strip(".") for d in AllowedDomain.objects.values_list("domain", flat=True)]
    areas = menu.areas
    if not isinstance(areas, list) or not 1 <= len(areas) <= MAX_AREAS:
        problems.append(Problem("areas", f"タップ領域は1〜{MAX_AREAS}個にしてください。"))
        areas = []
    for index, area in enumerate(areas):
        where = f"areas[{index}]"
        bounds = area.get("bounds") if isinstance(area, dict) else None
        try:
            x, y, w, h = (int(bounds[k]) for k in ("x", "y", "width", "height"))  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            problems.append(
                Problem(where, "bounds に x, y, width, height を整数で指定してください。")
            )
            continue
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            problems.append(
                Problem(where, f"タップ領域が画像（{width}×{height}）の外に出ています。")
            )
        problems += _check_action(area.get("action"), f"{where}.action", allowed)
    if require_image:
        problems += _check_image(bytes(menu.image or b""), menu.size)
    return problems


def _check_image(data: bytes, size: str) -> list[Problem]:
    if not data:
        return [Problem("image", "画像をアップロードしてください。")]
    if len(data) > MAX_IMAGE_BYTES:
        return [Problem("image", "画像は1MB以下にしてください。")]
    info = image_info(data)
    if info is None:
        return [Problem("image", "画像は PNG か JPEG にしてください。")]
    if (info.width, info.height) != SIZES[size]:
        w, h = SIZES[size]
        return [
            Problem(
                "image",
                f"画像の大きさが {info.width}×{info.height} です。{w}×{h} の画像にしてください。",
            )
        ]
    return []


def rich_menu_definition(menu: RichMenu) -> dict[str, Any]:
    """The menu as LINE's RichMenuRequest JSON."""
    width, height = SIZES[menu.size]
    return {
        "size": {"width": width, "height": height},
        "selected": False,
        "name": menu.name,
        "chatBarText": menu.chat_bar_text,
        "areas": menu.areas,
    }


def _require_admin(actor: User) -> None:
    if not permissions.can_administer(actor):
        raise BroadcastPermissionDenied("リッチメニューを操作する権限がありません。")


@transaction.atomic
def rich_menu_set_image(*, menu: RichMenu, image: bytes, actor: User) -> RichMenu:
    """Attach a PNG/JPEG (2500×1686 or 2500×843, ≤ 1 MB). Publishing again sends it to LINE."""
    _require_admin(actor)
    problems = _check_image(image, menu.size)
    if problems:
        raise BroadcastInvalid(problems)
    info = image_info(image)
    assert info is not None  # noqa: S101 - _check_image guarantees it
    menu.image = image
    menu.image_content_type = info.content_type
    menu.save(update_fields=["image", "image_content_type", "updated_at"])
    audit_record(
        verb="rich_menu_image_set",
        actor=actor,
        data={"id": menu.pk, "bytes": len(image), "content_type": info.content_type},
    )
    return menu


def _active_kind() -> str:
    current = RichMenu.objects.filter(is_line_default=True).values_list("kind", flat=True).first()
    return current or RichMenu.Kind.DEFAULT


def rich_menu_publish(*, menu: RichMenu, actor: User, now: dt.datetime | None = None) -> RichMenu:
    """Create the menu on LINE and upload its image. If this kind is the one in use (the
    ordinary menu, unless disaster mode is on), it becomes everyone's default at once.

    Raises ``BroadcastInvalid`` or the gateway's ``LineError`` (shown to the admin)."""
    _require_admin(actor)
    return _publish(menu=menu, actor=actor, now=now)


def _publish(*, menu: RichMenu, actor: User, now: dt.datetime | None = None) -> RichMenu:
    menu = RichMenu.objects.get(pk=menu.pk)
    problems = rich_menu_check(menu)
    if problems:
        raise BroadcastInvalid(problems)
    gateway = line_gateway.get_gateway()
    new_id = gateway.create_rich_menu(definition=rich_menu_definition(menu))
    try:
        gateway.upload_rich_menu_image(
            rich_menu_id=new_id,
            image=bytes(menu.image),
            content_type=menu.image_content_type or image_info(bytes(menu.image)).content_type,  # type: ignore[union-attr]
            data_host=settings.LINE_DATA_API_BASE_URL,
        )
        make_default = menu.kind == _active_kind()
        if make_default:
            gateway.set_default_rich_menu(rich_menu_id=new_id)
    except LineError:
        _delete_quietly(new_id)
        raise
    old_id = menu.line_rich_menu_id
    with transaction.atomic():
        if make_default:
            RichMenu.objects.exclude(pk=menu.pk).update(is_line_default=False)
        menu.line_rich_menu_id = new_id
        menu.published_at = now or timezone.now()
        menu.is_line_default = make_default or menu.is_line_default
        menu.save(
            update_fields=["line_rich_menu_id", "published_at", "is_line_default", "updated_at"]
        )
        audit_record(
            verb="rich_menu_published",
            actor=actor,
            data={
                "id": menu.pk,
                "kind": menu.kind,
                "line_rich_menu_id": new_id,
                "replaced": old_id,
                "default": make_default,
                "definition": rich_menu_definition(menu),
            },
        )
    if old_id:
        _delete_quietly(old_id)
    return menu


def rich_menu_switch(*, kind: str, actor: User) -> RichMenu:
    """Make the ordinary or the disaster menu everyone's default (publishing it first if it
    has never been published).

    Admins (DX推進課) and supervisors may switch: in a disaster at night the supervisor who
    approves the emergency send must not have to find an admin to change the menu."""
    if not (
        permissions.can_administer(actor)
        or actor.has_perm("broadcasts.approve_emergency_broadcast")
    ):
        raise BroadcastPermissionDenied("リッチメニューを切り替える権限がありません。")
    menu = RichMenu.objects.filter(kind=kind).order_by("-published_at", "-id").first()
    if menu is None:
        raise BroadcastInvalid(
            [Problem("kind", "切り替え先のリッチメニューが登録されていません。")]
        )
    if not menu.line_rich_menu_id:
        menu = _publish(menu=menu, actor=actor)
        if menu.is_line_default:
            return menu
    previous = RichMenu.objects.filter(is_line_default=True).first()
    line_gateway.get_gateway().set_default_rich_menu(rich_menu_id=menu.line_rich_menu_id)
    with transaction.atomic():
        RichMenu.objects.exclude(pk=menu.pk).update(is_line_default=False)
        RichMenu.objects.filter(pk=menu.pk).update(is_line_default=True)
        audit_record(
            verb="rich_menu_switched",
            actor=actor,
            data={
                "from": previous.kind if previous else None,
                "to": kind,
                "line_rich_menu_id": menu.line_rich_menu_id,
            },
        )
    menu.is_line_default = True
    return menu


def _delete_quietly(rich_menu_id: str) -> None:
    try:
        line_gateway.get_gateway().delete_rich_menu(rich_menu_id=rich_menu_id)
    except LineError as exc:
        logger.warning("could not delete rich menu %s on LINE: %s", rich_menu_id, exc)


@transaction.atomic
def rich_menu_save(*, menu: RichMenu, actor: User, image: bytes | None = None) -> RichMenu:
    """Save a definition edited by an admin (and a new image, if given). Not yet on LINE:
    publishing sends it."""
    _require_admin(actor)
    if image is not None:
        problems = _check_image(image, menu.size)
        if problems:
            raise BroadcastInvalid(problems)
        menu.image = image
        menu.image_content_type = image_info(image).content_type  # type: ignore[union-attr]
    problems = rich_menu_check(menu, require_image=False)
    if problems:
        raise BroadcastInvalid(problems)
    created = menu.pk is None
    menu.save()
    audit_record(
        verb="rich_menu_created" if created else "rich_menu_changed",
        actor=actor,
        data={
            "id": menu.pk,
            "kind": menu.kind,
            "definition": rich_menu_definition(menu),
            "new_image": image is not None,
        },
    )
    return menu
