"""JMA disaster-information XML (気象庁防災情報XML): bytes in, a typed message out.

Pure: no Django models, no clock, no network. The parser refuses what could hurt the
process before reading it: a message larger than ``MAX_MESSAGE_BYTES``, any DTD (billion
laughs, quadratic blow-up) and any entity or external reference (XXE), through defusedxml.
JMA's messages never carry a DTD, so refusing every DTD loses nothing.

Formats (``../shared/data/jma/README.md``): 気象警報・注意報 VPWW54 and the 2025–2026 revision
VPWW55–58 (same Body/Warning layout, レベル付きの名称), 震度速報 VXSE51, 震源・震度に関する情報
VXSE53, 土砂災害警戒情報 VXWW50, 指定河川洪水予報 VXKOii, 記録的短時間大雨情報 VPOA50,
竜巻注意情報 VPHW50/51. Anything else parses to kind ``other`` (stored, never drafted)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

# The largest of JMA's samples is 0.55 MB (a prefecture's warnings); 5 MB leaves room.
MAX_MESSAGE_BYTES = 5 * 1024 * 1024


class UnsafeXml(ValueError):
    """The bytes are not a message this app will read: too large, a DTD or entity, or not
    well-formed XML. ``reason`` is Japanese, for staff screens and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Kind(StrEnum):
    WEATHER_WARNING = "weather_warning"
    EARTHQUAKE = "earthquake"
    LANDSLIDE = "landslide"
    RIVER_FLOOD = "river_flood"
    RECORD_RAIN = "record_rain"
    TORNADO = "tornado"
    OTHER = "other"


KIND_LABELS: dict[str, str] = {
    Kind.WEATHER_WARNING: "気象警報・注意報",
    Kind.EARTHQUAKE: "地震（震度）",
    Kind.LANDSLIDE: "土砂災害警戒情報",
    Kind.RIVER_FLOOD: "指定河川洪水予報",
    Kind.RECORD_RAIN: "記録的短時間大雨情報",
    Kind.TORNADO: "竜巻注意情報",
    Kind.OTHER: "その他",
}

# Control/Title → (data type code, kind). VPWW55–58 carry the hazard in their title.
_TITLES: dict[str, tuple[str, Kind]] = {
    "気象警報・注意報（Ｈ２７）": ("VPWW54", Kind.WEATHER_WARNING),
    "気象特別警報・警報・注意報": ("VPWW53", Kind.WEATHER_WARNING),
    "気象警報・注意報（Ｒ０６）（大雨）": ("VPWW55", Kind.WEATHER_WARNING),
    "気象警報・注意報（Ｒ０６）（土砂）": ("VPWW56", Kind.WEATHER_WARNING),
    "気象警報・注意報（Ｒ０６）（高潮）": ("VPWW57", Kind.WEATHER_WARNING),
    "気象警報・注意報（Ｒ０６）（暴風）": ("VPWW58", Kind.WEATHER_WARNING),
    "震度速報": ("VXSE51", Kind.EARTHQUAKE),
    "震源・震度に関する情報": ("VXSE53", Kind.EARTHQUAKE),
    "土砂災害警戒情報": ("VXWW50", Kind.LANDSLIDE),
    "指定河川洪水予報": ("VXKOii", Kind.RIVER_FLOOD),
    "記録的短時間大雨情報": ("VPOA50", Kind.RECORD_RAIN),
    "竜巻注意情報": ("VPHW50", Kind.TORNADO),
    "竜巻注意情報（目撃情報付き）": ("VPHW51", Kind.TORNADO),
    "震源に関する情報": ("VXSE52", Kind.OTHER),
    "津波警報・注意報・予報a": ("VTSE41", Kind.OTHER),
}

# 震度 as JMA codes it (MaxInt) in increasing order, with the words people read.
INTENSITY_ORDER = ("1", "2", "3", "4", "5-", "5+", "6-", "6+", "7")
INTENSITY_LABELS = {
    "1": "震度１",
    "2": "震度２",
    "3": "震度３",
    "4": "震度４",
    "5-": "震度５弱",
    "5+": "震度５強",
    "6-": "震度６弱",
    "6+": "震度６強",
    "7": "震度７",
}


def intensity_rank(code: str) -> int:
    """0 for an unknown code, else 1 (震度1) … 9 (震度7)."""
    try:
        return INTENSITY_ORDER.index(code) + 1
    except ValueError:
        return 0


@dataclass(frozen=True)
class AreaItem:
    """One kind of information in one area (a warning in a municipality, 土砂災害警戒情報 in
    a municipality, a flood forecast on a river …)."""

    area_code: str
    area_name: str
    kind_name: str
    kind_code: str = ""
    status: str = ""  # 発表 / 継続 / 解除 / なし / 発表警報・注意報はなし …
    last_kind_name: str = ""
    level: str = ""  # the Body/Warning type (府県予報区等 / 市町村等 …) or Headline type

    @property
    def active(self) -> bool:
        return self.status in ("発表", "継続") or (
            self.status == "" and self.kind_name not in ("", "なし")
        )

    @property
    def lifted(self) -> bool:
        return self.status == "解除" or self.kind_name.endswith("解除")


@dataclass(frozen=True)
class Intensity:
    """The largest 震度 observed in an area (地震情報／細分区域, e.g. 341 千葉県北西部) or a
    municipality (1221700 柏市)."""

    area_code: str
    area_name: str
    max_int: str

    @property
    def label(self) -> str:
        return INTENSITY_LABELS.get(self.max_int, f"震度{self.max_int}")


@dataclass(frozen=True)
class JmaMessage:
    data_type: str
    kind: Kind
    control_title: str
    control_status: str  # 通常 / 訓練 / 試験
    editorial_office: str
    publishing_office: str
    head_title: str
    report_at: dt.datetime | None
    target_at: dt.datetime | None
    event_id: str
    info_type: str  # 発表 / 訂正 / 取消 (遅延 …)
    serial: str
    info_kind: str
    headline: str
    items: tuple[AreaItem, ...] = ()
    intensities: tuple[Intensity, ...] = ()
    hypocenter: str = ""
    magnitude: str = ""
    origin_at: dt.datetime | None = None
    body_text: str = ""
    comments: tuple[str, ...] = field(default=())

    @property
    def is_live(self) -> bool:
        """訓練 and 試験 messages never reach citizens."""
        return self.control_status == "通常"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(data type, EventID, Serial, InfoType): what makes two messages the same. JMA
        leaves EventID and Serial empty in warnings; then the issuing office's title and the
        report time stand in, so a re-poll of the same message keys the same."""
        report = self.report_at.isoformat() if self.report_at else ""
        event = self.event_id or f"{self.head_title}"
        serial = self.serial or report
        return (self.data_type, event, serial, self.info_type)

    def items_in(self, codes: frozenset[str] | set[str]) -> tuple[AreaItem, ...]:
        return tuple(item for item in self.items if item.area_code in codes)

    def max_intensity_in(self, codes: frozenset[str] | set[str]) -> Intensity | None:
        found = [i for i in self.intensities if i.area_code in codes]
        if not found:
            return None
        return max(found, key=lambda i: intensity_rank(i.max_int))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: Element | None, name: str) -> list[Element]:
    if element is None:
        return []
    return [child for child in element if _local(child.tag) == name]


def _text(element: Element | None, *path: str) -> str:
    for name in path:
        element = _child(element, name)
    if element is None or element.text is None:
        return ""
    return element.text.strip()


def _datetime(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def safe_parse(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Element:
    """Parse XML bytes or raise ``UnsafeXml``: never expands an entity, never reads a DTD or
    anything external, never reads more than ``max_bytes``."""
    if len(data) > max_bytes:
        raise UnsafeXml(
            f"大きすぎる電文です（{len(data):,} バイト、上限 {max_bytes:,} バイト）。読み込みません。"
        )
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise UnsafeXml(
            f"危険な XML（DTD・実体参照・外部参照）を含むため読み込みません（{type(exc).__name__}）。"
        ) from exc
    except ParseError as exc:
        raise UnsafeXml(f"XML として読めません（{exc}）。") from exc


def _data_type(control_title: str) -> tuple[str, Kind]:
    if control_title in _TITLES:
        return _TITLES[control_title]
    if control_title.startswith("気象警報・注意報（Ｒ"):
        return ("VPWW5x", Kind.WEATHER_WARNING)
    return ("", Kind.OTHER)


def _area_items(body: Element | None) -> list[AreaItem]:
    items: list[AreaItem] = []
    for warning in _children(body, "Warning"):
        level = warning.get("type", "")
        for item in _children(warning, "Item"):
            areas = _children(item, "Area") + _children(_child(item, "Areas"), "Area")
            for kind in _children(item, "Kind"):
                name = _text(kind, "Name")
                if not name:
                    continue  # 洪水予報の主文など、種別でない Kind
                for area in areas:
                    items.append(
                        AreaItem(
                            area_code=_text(area, "Code"),
                            area_name=_text(area, "Name"),
                            kind_name=name,
                            kind_code=_text(kind, "Code"),
                            status=_text(kind, "Status"),
                            last_kind_name=_text(kind, "LastKind", "Name"),
                            level=level,
                        )
                    )
    return items


def _headline_items(headline: Element | None, type_suffix: str) -> list[AreaItem]:
    items: list[AreaItem] = []
    for information in _children(headline, "Information"):
        level = information.get("type", "")
        if not level.endswith(type_suffix):
            continue
        for item in _children(information, "Item"):
            kind = _child(item, "Kind")
            for area in _children(_child(item, "Areas"), "Area"):
                items.append(
                    AreaItem(
                        area_code=_text(area, "Code"),
                        area_name=_text(area, "Name"),
                        kind_name=_text(kind, "Name"),
                        kind_code=_text(kind, "Code"),
                        status=_text(kind, "Condition"),
                        level=level,
                    )
                )
    return items


def _intensities(body: Element | None) -> list[Intensity]:
    observation = _child(_child(body, "Intensity"), "Observation")
    found: list[Intensity] = []
    for pref in _children(observation, "Pref"):
        for area in _children(pref, "Area"):
            found.append(Intensity(_text(area, "Code"), _text(area, "Name"), _text(area, "MaxInt")))
            for city in _children(area, "City"):
                found.append(
                    Intensity(_text(city, "Code"), _text(city, "Name"), _text(city, "MaxInt"))
                )
    return found


def _river_main_text(body: Element | None) -> str:
    for warning in _children(body, "Warning"):
        for item in _children(warning, "Item"):
            for kind in _children(item, "Kind"):
                for prop in _children(kind, "Property"):
                    if _text(prop, "Type") == "主文":
                        return _text(prop, "Text")
    return ""


def parse_message(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> JmaMessage:
    """Parse one JMA message. Raises ``UnsafeXml`` for hostile or malformed input and
    ``ValueError`` for XML that is not a JMA report."""
    root = safe_parse(data, max_bytes=max_bytes)
    if _local(root.tag) != "Report":
        raise UnsafeXml("気象庁防災情報XMLの電文ではありません（Report 要素がありません）。")
    control = _child(root, "Control")
    head = _child(root, "Head")
    body = _child(root, "Body")
    control_title = _text(control, "Title")
    data_type, kind = _data_type(control_title)
    headline = _child(head, "Headline")

    items: list[AreaItem] = []
    intensities: list[Intensity] = []
    hypocenter = magnitude = body_text = ""
    origin_at = None
    if kind == Kind.EARTHQUAKE:
        intensities = _intensities(body)
        earthquake = _child(body, "Earthquake")
        hypocenter = _text(earthquake, "Hypocenter", "Area", "Name")
        magnitude_element = _child(earthquake, "Magnitude")
        if magnitude_element is not None:
            magnitude = magnitude_element.get("description", "") or (magnitude_element.text or "")
        origin_at = _datetime(_text(earthquake, "OriginTime"))
    elif kind == Kind.RIVER_FLOOD:
        items = _headline_items(headline, "（河川）")
        body_text = _river_main_text(body)
    elif kind != Kind.OTHER:
        items = _area_items(body)
    if not body_text:
        body_text = _text(body, "Text")
    comments = tuple(
        text
        for text in (
            _text(_child(body, "Comments"), "ForecastComment", "Text"),
            _text(_child(body, "Comments"), "VarComment", "Text"),
        )
        if text
    )
    return JmaMessage(
        data_type=data_type,
        kind=kind,
        control_title=control_title,
        control_status=_text(control, "Status"),
        editorial_office=_text(control, "EditorialOffice"),
        publishing_office=_text(control, "PublishingOffice"),
        head_title=_text(head, "Title"),
        report_at=_datetime(_text(head, "ReportDateTime")),
        target_at=_datetime(_text(head, "TargetDateTime")),
        event_id=_text(head, "EventID"),
        info_type=_text(head, "InfoType"),
        serial=_text(head, "Serial"),
        info_kind=_text(head, "InfoKind"),
        headline=_text(headline, "Text"),
        items=tuple(items),
        intensities=tuple(intensities),
        hypocenter=hypocenter,
        magnitude=magnitude,
        origin_at=origin_at,
        body_text=body_text,
        comments=comments,
    )
