"""Rich menus: checks, publish through the gateway to the sandbox, switch to disaster mode,
the preview screen and the admin form."""

from __future__ import annotations

import struct

import pytest
from django.urls import reverse

from broadcasts.images import image_info, png_panels
from broadcasts.models import BroadcastEvent, RichMenu
from broadcasts.services import richmenu
from broadcasts.services.errors import BroadcastInvalid, BroadcastPermissionDenied

pytestmark = pytest.mark.django_db


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG: SOI, an APP0 segment, SOF0 with the size."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def test_image_info_reads_png_and_jpeg_headers():
    assert image_info(png_panels(2500, 843, [(0, 0, 0)])).width == 2500
    info = image_info(jpeg_header(2500, 1686))
    assert (info.content_type, info.width, info.height) == ("image/jpeg", 2500, 1686)
    assert image_info(b"GIF89a....") is None


def test_seeded_menus_are_valid():
    kinds = {m.kind: m for m in RichMenu.objects.all()}
    assert set(kinds) == {"default", "disaster"}
    for menu in kinds.values():
        assert richmenu.rich_menu_check(menu) == []
    labels = [a["action"]["label"] for a in kinds["default"].areas]
    assert labels == ["各種申請", "各種予約", "市ホームページ", "受信設定"]
    assert kinds["default"].areas[3]["action"]["data"] == "action=show_subscriptions"


def test_checks_catch_bad_images_and_areas(admin_user):
    menu = RichMenu.objects.get(kind="default")
    for image, message in (
        (png_panels(2500, 1686, [(1, 2, 3)]), "2500×843 の画像"),
        (b"not an image", "PNG か JPEG"),
        (b"\x89PNG" + b"0" * (1024 * 1024 + 1), "1MB"),
    ):
        with pytest.raises(BroadcastInvalid) as exc:
            richmenu.rich_menu_set_image(menu=menu, image=image, actor=admin_user)
        assert message in str(exc.value)
    menu.areas = [{"bounds": {"x": 2000, "y": 0, "width": 625, "height": 843}, "action": {}}]
    messages = " ".join(p.message for p in richmenu.rich_menu_check(menu))
    assert "外に出ています" in messages and "アクションは" in messages


def test_publish_creates_uploads_and_sets_default(line_sandbox, admin_user):
    menu = RichMenu.objects.get(kind="default")
    richmenu.rich_menu_publish(menu=menu, actor=admin_user)
    menu.refresh_from_db()
    assert menu.line_rich_menu_id and menu.published_at and menu.is_line_default
    state = line_sandbox.state
    assert state.default_rich_menu() == menu.line_rich_menu_id
    on_line = state.rich_menu(menu.line_rich_menu_id)
    assert on_line["chatBarText"] == "メニュー"
    assert [a["action"]["label"] for a in on_line["areas"]][-1] == "受信設定"
    assert state.rich_menu_image(menu.line_rich_menu_id) == ("image/png", bytes(menu.image))

    # publishing again replaces the menu on LINE and deletes the old one
    first_id = menu.line_rich_menu_id
    richmenu.rich_menu_publish(menu=menu, actor=admin_user)
    menu.refresh_from_db()
    assert menu.line_rich_menu_id != first_id
    assert state.rich_menu(first_id) is None
    assert state.default_rich_menu() == menu.line_rich_menu_id
    assert BroadcastEvent.objects.filter(verb="rich_menu_published").count() == 2


def test_switch_to_disaster_and_back(line_sandbox, admin_user):
    ordinary = RichMenu.objects.get(kind="default")
    richmenu.rich_menu_publish(menu=ordinary, actor=admin_user)
    disaster = richmenu.rich_menu_switch(kind="disaster", actor=admin_user)
    assert line_sandbox.state.default_rich_menu() == disaster.line_rich_menu_id
    assert list(RichMenu.objects.filter(is_line_default=True)) == [disaster]
    # while in disaster mode, republishing the ordinary menu does not take over
    richmenu.rich_menu_publish(menu=ordinary, actor=admin_user)
    assert line_sandbox.state.default_rich_menu() == disaster.line_rich_menu_id
    back = richmenu.rich_menu_switch(kind="default", actor=admin_user)
    ordinary.refresh_from_db()
    assert (
        line_sandbox.state.default_rich_menu()
        == back.line_rich_menu_id
        == ordinary.line_rich_menu_id
    )
    switched = BroadcastEvent.objects.filter(verb="rich_menu_switched").order_by("id")
    assert [(e.data["from"], e.data["to"]) for e in switched] == [
        ("default", "disaster"),
        ("disaster", "default"),
    ]


def test_line_error_is_translated_and_nothing_recorded(line_sandbox, admin_user):
    line_sandbox.set_fault("/v2/bot/richmenu", 400)
    menu = RichMenu.objects.get(kind="default")
    from broadcasts.line.errors import LinePermanentError

    with pytest.raises(LinePermanentError):
        richmenu.rich_menu_publish(menu=menu, actor=admin_user)
    menu.refresh_from_db()
    assert menu.line_rich_menu_id == ""
    assert not BroadcastEvent.objects.filter(verb="rich_menu_published").exists()


def test_only_admins_publish(line_sandbox, reviewer):
    with pytest.raises(BroadcastPermissionDenied):
        richmenu.rich_menu_publish(menu=RichMenu.objects.first(), actor=reviewer)


def test_preview_screen_draws_areas_and_publishes(client, line_sandbox, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("broadcasts:richmenu_list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "通常時メニュー" in html and "災害時メニュー" in html
    assert "left: 25.0%; top: 0.0%; width: 25.0%; height: 100.0%;" in html
    assert "<script" not in html.split("<main")[1].split("</main>")[0]
    menu = RichMenu.objects.get(kind="default")
    image = client.get(reverse("broadcasts:richmenu_image", args=[menu.pk]))
    assert image["Content-Type"] == "image/png" and image.content == bytes(menu.image)

    response = client.post(reverse("broadcasts:richmenu_publish", args=[menu.pk]), follow=True)
    assert "LINE に公開しました" in response.content.decode()
    response = client.post(reverse("broadcasts:richmenu_switch"), {"kind": "disaster"}, follow=True)
    assert "災害時メニュー」に切り替えました" in response.content.decode()


def test_preview_screen_is_for_admins_only(client, reviewer):
    client.force_login(reviewer)
    assert client.get(reverse("broadcasts:richmenu_list")).status_code == 403


def test_admin_form_uploads_image_and_audits(client, admin_user):
    client.force_login(admin_user)
    menu = RichMenu.objects.get(kind="disaster")
    url = reverse("admin:broadcasts_richmenu_change", args=[menu.pk])
    assert client.get(url).status_code == 200
    import io
    import json

    upload = io.BytesIO(png_panels(2500, 843, [(9, 9, 9), (200, 0, 0)]))
    upload.name = "menu.png"
    response = client.post(
        url,
        {
            "name": "災害時メニュー（改）",
            "kind": "disaster",
            "size": "2500x843",
            "chat_bar_text": "災害時",
            "areas": json.dumps(menu.areas, ensure_ascii=False),
            "image_file": upload,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    menu.refresh_from_db()
    assert menu.name == "災害時メニュー（改）"
    assert bytes(menu.image) == upload.getvalue()
    assert BroadcastEvent.objects.filter(verb="rich_menu_changed", actor=admin_user).exists()
