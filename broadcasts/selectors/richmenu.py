"""Reads about rich menus (policy 4(2): 各種申請, 各種予約, the city website)."""

from __future__ import annotations

from dataclasses import dataclass

from ..citizen_defaults import CITY_HOMEPAGE
from ..models import RichMenu

#: tap areas that must lead to the city's real application and booking pages
SERVICE_WORDS = ("申請", "予約")


@dataclass(frozen=True)
class Placeholder:
    menu: RichMenu
    label: str
    uri: str

    @property
    def message(self) -> str:
        return (
            f"リッチメニュー「{self.menu.name}」の「{self.label}」のリンク先が、初期設定の"
            f"仮のもの（{self.uri}）のままです。市の{self.label}ページの URL に変更してください。"
        )


def rich_menu_placeholders() -> list[Placeholder]:
    """申請/予約 areas still pointing at the seeded placeholder (the city's top page)."""
    found = []
    for menu in RichMenu.objects.defer("image").order_by("kind", "id"):
        for area in menu.areas if isinstance(menu.areas, list) else []:
            action = area.get("action") if isinstance(area, dict) else None
            if not isinstance(action, dict) or action.get("type") != "uri":
                continue
            label = str(action.get("label", ""))
            uri = str(action.get("uri", ""))
            if any(w in label for w in SERVICE_WORDS) and uri.rstrip("/") == CITY_HOMEPAGE.rstrip(
                "/"
            ):
                found.append(Placeholder(menu=menu, label=label, uri=uri))
    return found
