"""Kashiwa's default rules (seeded by migration 0014, editable by admins afterwards).

Area codes: 柏市 1221700 (気象・地震・火山情報／市町村等); 千葉県北西部 341 (地震情報／細分区域)
and 120010 (気象情報／府県予報区・細分区域等, the 一次細分区域 北西部)."""

from __future__ import annotations

from .drafts import DEFAULT_TEMPLATE

KASHIWA = "1221700"
NORTHWEST_CHIBA_SEISMIC = "341"
NORTHWEST_CHIBA_WEATHER = "120010"

# name, kind, area codes, names, min intensity, priority, category code, audience, order
DEFAULT_RULES: tuple[dict[str, object], ...] = (
    {
        "name": "特別警報・危険警報（柏市）→ 全員へ緊急",
        "kind": "weather_warning",
        "area_codes": KASHIWA,
        "names": "特別警報,危険警報",
        "priority": "emergency",
        "category": "emergency",
        "audience": "all",
        "sort_order": 10,
    },
    {
        "name": "気象警報（柏市）→ 防災・防犯の登録者へ",
        "kind": "weather_warning",
        "area_codes": KASHIWA,
        "names": "警報",
        "priority": "emergency",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 20,
    },
    {
        "name": "震度５弱以上（千葉県北西部・柏市）→ 全員へ緊急",
        "kind": "earthquake",
        "area_codes": f"{NORTHWEST_CHIBA_SEISMIC},{KASHIWA}",
        "min_intensity": "5-",
        "priority": "emergency",
        "category": "emergency",
        "audience": "all",
        "sort_order": 30,
    },
    {
        "name": "震度４（千葉県北西部・柏市）→ 防災・防犯の登録者へ",
        "kind": "earthquake",
        "area_codes": f"{NORTHWEST_CHIBA_SEISMIC},{KASHIWA}",
        "min_intensity": "4",
        "priority": "normal",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 40,
    },
    {
        "name": "土砂災害警戒情報（柏市）",
        "kind": "landslide",
        "area_codes": KASHIWA,
        "names": "警戒",
        "priority": "emergency",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 50,
    },
    {
        "name": "指定河川洪水予報（利根川）",
        "kind": "river_flood",
        "names": "利根川",
        "priority": "emergency",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 60,
    },
    {
        "name": "記録的短時間大雨情報（千葉県北西部）",
        "kind": "record_rain",
        "area_codes": f"{NORTHWEST_CHIBA_WEATHER},{KASHIWA}",
        "priority": "emergency",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 70,
    },
    {
        "name": "竜巻注意情報（千葉県北西部）",
        "kind": "tornado",
        "area_codes": f"{NORTHWEST_CHIBA_WEATHER},{KASHIWA}",
        "priority": "emergency",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 80,
    },
    {
        "name": "防災メール（許可した差出人）",
        "kind": "mail",
        "priority": "emergency",
        "category": "disaster_crime",
        "audience": "subscribers",
        "sort_order": 90,
    },
)


def rule_fields(spec: dict[str, object]) -> dict[str, object]:
    """The model fields of one default rule, without its category (a code here)."""
    fields = {k: v for k, v in spec.items() if k != "category"}
    fields.setdefault("area_codes", "")
    fields.setdefault("names", "")
    fields.setdefault("min_intensity", "")
    fields["template"] = DEFAULT_TEMPLATE
    fields["enabled"] = True
    return fields
