"""Policy 4(2): the rich menu's 申請/予約 lead to the city's real pages. Admins are warned on
the dashboard while the seeded placeholders remain; links must be on the allowed domains."""

from __future__ import annotations

import copy

import pytest
from django.urls import reverse

from broadcasts.models import AllowedDomain, RichMenu
from broadcasts.selectors.richmenu import rich_menu_placeholders
from broadcasts.services import richmenu
from broadcasts.services.errors import BroadcastInvalid

pytestmark = pytest.mark.django_db

APPLY = "https://www.city.kashiwa.lg.jp/shinsei/index.html"
BOOK = "https://www.city.kashiwa.lg.jp/yoyaku/index.html"


def set_uris(menu: RichMenu, uris: dict[str, str]) -> RichMenu:
    areas = copy.deepcopy(menu.areas)
    for area in areas:
        label = area["action"].get("label")
        if label in uris:
            area["action"]["uri"] = uris[label]
    menu.areas = areas
    return menu


def test_the_seeded_placeholders_are_found():
    found = {(p.menu.kind, p.label) for p in rich_menu_placeholders()}
    assert found == {("default", "各種申請"), ("default", "各種予約")}


def test_admins_are_warned_on_the_dashboard_until_the_links_are_set(
    client, admin_user, reviewer, line_sandbox
):
    client.force_login(admin_user)
    html = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert 'data-testid="admin-warnings"' in html
    assert "「通常時メニュー」の「各種申請」のリンク先が、初期設定の仮のもの" in html
    assert "「各種予約」" in html

    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert 'data-testid="admin-warnings"' not in html

    menu = RichMenu.objects.get(kind="default")
    richmenu.rich_menu_save(
        menu=set_uris(menu, {"各種申請": APPLY, "各種予約": BOOK}), actor=admin_user
    )
    assert rich_menu_placeholders() == []
    client.force_login(admin_user)
    html = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert 'data-testid="admin-warnings"' not in html


def test_links_off_the_allowed_domains_are_refused(admin_user):
    menu = RichMenu.objects.get(kind="default")
    with pytest.raises(BroadcastInvalid, match="リンク許可ドメインにありません"):
        richmenu.rich_menu_save(
            menu=set_uris(menu, {"各種予約": "https://yoyaku.example.com/kashiwa"}),
            actor=admin_user,
        )
    # an admin adds the booking service's domain: then it is accepted
    AllowedDomain.objects.create(domain="yoyaku.example.com", note="施設予約システム")
    menu = RichMenu.objects.get(kind="default")
    richmenu.rich_menu_save(
        menu=set_uris(menu, {"各種予約": "https://yoyaku.example.com/kashiwa"}),
        actor=admin_user,
    )
    assert "yoyaku.example.com" in str(RichMenu.objects.get(kind="default").areas)


def test_a_look_alike_domain_is_not_the_citys(admin_user):
    menu = RichMenu.objects.get(kind="default")
    with pytest.raises(BroadcastInvalid):
        richmenu.rich_menu_save(
            menu=set_uris(menu, {"各種申請": "https://city.kashiwa.lg.jp.evil.example/x"}),
            actor=admin_user,
        )
