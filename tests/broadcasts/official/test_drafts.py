"""Rules × messages → findings and the Japanese text citizens would read."""

from __future__ import annotations

from broadcasts.content import check_messages
from broadcasts.official.drafts import (
    DEFAULT_TEMPLATE,
    ISSUED,
    LIFTED,
    RuleSpec,
    evaluate,
    fill,
    render,
    unknown_placeholders,
)
from broadcasts.official.jma import parse_message

from .samples import HEAVY_RAIN, HEAVY_RAIN_LIFTED, QUAKE_5_MINUS, sample

URL = "https://www.city.kashiwa.lg.jp/"
WARNINGS = RuleSpec(kind="weather_warning", area_codes=frozenset({"1221700"}), names=("警報",))
SPECIAL = RuleSpec(kind="weather_warning", area_codes=frozenset({"1221700"}), names=("特別警報",))
QUAKE_4 = RuleSpec(kind="earthquake", area_codes=frozenset({"341", "1221700"}), min_intensity="4")
QUAKE_6 = RuleSpec(kind="earthquake", area_codes=frozenset({"341", "1221700"}), min_intensity="6-")


def test_heavy_rain_warning_makes_a_finding_and_a_valid_text():
    message = parse_message(sample(HEAVY_RAIN))
    outcome = evaluate(message, WARNINGS)
    assert outcome.finding is not None
    assert (outcome.finding.change, outcome.finding.what, outcome.finding.where) == (
        ISSUED,
        "大雨警報",
        "柏市",
    )
    draft = render(message, outcome.finding, template=DEFAULT_TEMPLATE, info_url=URL)
    assert draft.text.startswith("【大雨警報】\n柏市に大雨警報が発表されました。")
    assert "7/15(水) 3:12 銚子地方気象台" in draft.text
    assert URL in draft.text
    assert "{" not in draft.text
    assert check_messages([{"type": "text", "text": draft.text}]) == []
    # 注意報 are not 警報: the continuing 雷注意報 is not in the finding.
    assert "雷注意報" not in draft.text


def test_a_special_warning_rule_ignores_an_ordinary_warning():
    outcome = evaluate(parse_message(sample(HEAVY_RAIN)), SPECIAL)
    assert outcome.finding is None
    assert outcome.reason == "対象地域に該当する警報・注意報はありません。"


def test_the_lift_is_a_lifted_finding():
    message = parse_message(sample(HEAVY_RAIN_LIFTED))
    outcome = evaluate(message, WARNINGS)
    assert outcome.finding is not None and outcome.finding.change == LIFTED
    draft = render(message, outcome.finding, template=DEFAULT_TEMPLATE, info_url=URL)
    assert draft.text.startswith("【大雨警報解除】\n柏市の大雨警報は解除されました。")


def test_intensity_thresholds():
    message = parse_message(sample(QUAKE_5_MINUS))
    found = evaluate(message, QUAKE_4).finding
    assert found is not None and (found.what, found.where) == ("震度５弱", "千葉県北西部")
    below = evaluate(message, QUAKE_6)
    assert below.finding is None
    assert below.reason == "対象地域の最大震度５弱は基準（震度６弱以上）に達していません。"
    text = render(message, found, template=DEFAULT_TEMPLATE, info_url=URL).text
    assert "千葉県北西部で震度５弱を観測しました" in text


def test_a_sample_far_from_kashiwa_is_not_a_finding():
    message = parse_message(sample("15_15_01_220314_VPWW54.xml"))  # 徳島県
    assert evaluate(message, WARNINGS).reason == "対象地域が含まれていません。"


def test_templates_fill_known_names_and_keep_unknown_ones():
    assert fill("{地域}で{見出し}、{誤字}", {"地域": "柏市", "見出し": "大雨警報"}) == (
        "柏市で大雨警報、{誤字}"
    )
    assert unknown_placeholders("{地域}{誤字}") == ["誤字"]


def test_a_huge_headline_is_cut_to_lines_limit():
    message = parse_message(sample(HEAVY_RAIN))
    finding = evaluate(message, WARNINGS).finding
    long_template = "{内容}" + "あ" * 6000
    draft = render(message, finding, template=long_template, info_url=URL)
    assert check_messages([{"type": "text", "text": draft.text}]) == []
    assert draft.text.endswith("…（以下略）")


def test_a_new_warning_names_the_ones_still_in_force():
    data = (
        sample(HEAVY_RAIN)
        .replace(
            "<Name>大雨警報</Name>\n<Code>03</Code>\n<Status>発表</Status>\n<LastKind>".encode(),
            "<Name>大雨警報</Name>\n<Code>03</Code>\n<Status>継続</Status>\n<LastKind>".encode(),
        )
        .replace(
            "<Name>雷注意報</Name>\n<Code>14</Code>\n<Status>継続</Status>".encode(),
            "<Name>洪水警報</Name>\n<Code>04</Code>\n<Status>発表</Status>".encode(),
        )
    )
    message = parse_message(data)
    finding = evaluate(message, WARNINGS).finding
    assert (finding.what, finding.also) == ("洪水警報", "大雨警報")
    text = render(message, finding, template=DEFAULT_TEMPLATE, info_url=URL).text
    assert "柏市に洪水警報が発表されました。（大雨警報も発表中です。）" in text
