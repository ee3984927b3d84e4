"""The JMA parser over JMA's samples and the Kashiwa fixtures derived from them, and the
hostile inputs it must refuse."""

from __future__ import annotations

import datetime as dt

import pytest

from broadcasts.official.jma import (
    MAX_MESSAGE_BYTES,
    Kind,
    UnsafeXml,
    parse_message,
    safe_parse,
)

from .samples import HEAVY_RAIN, HEAVY_RAIN_LIFTED, QUAKE_5_MINUS, QUAKE_CANCELLED, sample

KASHIWA = frozenset({"1221700"})
NORTHWEST_CHIBA = frozenset({"341", "1221700"})


def test_kashiwa_heavy_rain_warning_is_issued_in_kashiwa():
    message = parse_message(sample(HEAVY_RAIN))
    assert message.data_type == "VPWW54"
    assert message.kind == Kind.WEATHER_WARNING
    assert message.is_live
    assert message.publishing_office == "銚子地方気象台"
    assert message.report_at == dt.datetime(
        2026, 7, 15, 3, 12, tzinfo=dt.timezone(dt.timedelta(hours=9))
    )
    kashiwa = {(i.kind_name, i.status) for i in message.items_in(KASHIWA)}
    assert kashiwa == {("大雨警報", "発表"), ("雷注意報", "継続")}
    assert [i.last_kind_name for i in message.items_in(KASHIWA) if i.kind_name == "大雨警報"] == [
        "大雨注意報"
    ]


def test_the_lifted_warning_says_kaijo_for_kashiwa():
    message = parse_message(sample(HEAVY_RAIN_LIFTED))
    lifted = [i for i in message.items_in(KASHIWA) if i.lifted]
    assert [(i.kind_name, i.status) for i in lifted] == [("大雨警報", "解除")]
    # Warnings carry no EventID or Serial: the report time tells two messages apart.
    assert message.key != parse_message(sample(HEAVY_RAIN)).key


def test_intensity_5_minus_in_northwest_chiba():
    message = parse_message(sample(QUAKE_5_MINUS))
    assert (message.data_type, message.kind) == ("VXSE51", Kind.EARTHQUAKE)
    strongest = message.max_intensity_in(NORTHWEST_CHIBA)
    assert strongest is not None
    assert (strongest.area_name, strongest.label) == ("千葉県北西部", "震度５弱")
    assert message.key == ("VXSE51", "20260717021503", "2026-07-17T02:17:00+09:00", "発表")


def test_the_cancellation_names_the_same_event():
    cancelled = parse_message(sample(QUAKE_CANCELLED))
    assert cancelled.info_type == "取消"
    assert cancelled.event_id == parse_message(sample(QUAKE_5_MINUS)).event_id
    assert cancelled.intensities == ()


def test_vxse53_lists_kashiwa_itself():
    message = parse_message(sample("32-35_06_03_240613_VXSE53.xml"))
    city = [i for i in message.intensities if i.area_code == "1221700"]
    assert [(i.area_name, i.label) for i in city] == [("柏市", "震度３")]
    assert message.hypocenter == "岩手県内陸南部"
    assert message.magnitude == "Ｍ７．０"
    assert message.key == ("VXSE53", "20080614084350", "1", "発表")


@pytest.mark.parametrize(
    ("name", "data_type", "kind"),
    [
        ("15_15_01_220314_VPWW54.xml", "VPWW54", Kind.WEATHER_WARNING),
        ("15_17_01_250630_VPWW55.xml", "VPWW55", Kind.WEATHER_WARNING),
        ("17_04_01_250630_VXWW50.xml", "VXWW50", Kind.LANDSLIDE),
        ("16_02_01_220728_VXKOii.xml", "VXKOii", Kind.RIVER_FLOOD),
        ("18_03_01_190412_VPOA50.xml", "VPOA50", Kind.RECORD_RAIN),
        ("19_08_04_250630_VPHW51.xml", "VPHW51", Kind.TORNADO),
        ("38-39_03_01_210805_VTSE41.xml", "VTSE41", Kind.OTHER),
    ],
)
def test_each_kind_is_recognised(name, data_type, kind):
    message = parse_message(sample(name))
    assert (message.data_type, message.kind) == (data_type, kind)


def test_the_2025_revision_names_levels_and_lifts():
    message = parse_message(sample("15_17_01_250630_VPWW55.xml"))
    matsue = [i for i in message.items if i.area_name == "松江市"]
    assert ("レベル３大雨警報", "継続") in {(i.kind_name, i.status) for i in matsue}
    assert any(i.status == "解除" for i in message.items)


def test_landslide_and_river_items():
    landslide = parse_message(sample("17_04_01_250630_VXWW50.xml"))
    issued = {i.area_name for i in landslide.items if i.status == "発表"}
    assert "小田原市" in issued
    river = parse_message(sample("16_02_01_220728_VXKOii.xml"))
    assert [i.area_name for i in river.items] == ["○○川", "△△川"]
    assert river.items[0].kind_name == "氾濫警戒情報"
    assert river.body_text.startswith("【警戒レベル３相当】")


def test_a_drill_message_is_not_live():
    drill = sample(HEAVY_RAIN).replace(
        b"<Status>\xe9\x80\x9a\xe5\xb8\xb8</Status>", "<Status>訓練</Status>".encode()
    )
    message = parse_message(drill)
    assert message.control_status == "訓練"
    assert not message.is_live


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Report [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Report><Control><Title>&secret;</Title></Control></Report>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Report><Control><Title>&lol9;</Title></Control></Report>"""


def fifty_megabytes() -> bytes:
    head = sample(HEAVY_RAIN)
    return head.replace(b"</Report>", b"<!--" + b"x" * (50 * 1024 * 1024) + b"--></Report>")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (XXE, "危険な XML"),
        (BILLION_LAUGHS, "危険な XML"),
        (b"<Report><Control>", "XML として読めません"),
        (b"<html><body>503</body></html>", "Report 要素がありません"),
    ],
    ids=["external-entity", "billion-laughs", "truncated", "not-a-report"],
)
def test_hostile_or_malformed_xml_is_refused(data, words):
    with pytest.raises(UnsafeXml) as refused:
        parse_message(data)
    assert words in refused.value.reason


def test_fifty_megabytes_are_refused_before_parsing():
    data = fifty_megabytes()
    assert len(data) > MAX_MESSAGE_BYTES
    with pytest.raises(UnsafeXml) as refused:
        parse_message(data)
    assert "大きすぎる電文" in refused.value.reason


def test_the_external_entity_is_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = XXE.replace(b"file:///etc/passwd", f"file://{secret}".encode())
    with pytest.raises(UnsafeXml):
        safe_parse(data)
