"""From an official message and a rule to a Japanese draft: pure (no models, no clock).

A rule (``RuleSpec``, read from an admin-edited ``OfficialRule`` row by the service) says
which kind of information, in which areas, above which threshold, makes a draft and how it
reads. ``evaluate`` tells whether a message concerns the rule and what it says for Kashiwa
(a ``Finding``: 大雨警報 issued in 柏市, 震度５弱 in 千葉県北西部, 大雨警報 lifted …) or why
not; ``render`` fills the rule's template within LINE's limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..content import MAX_TEXT_UTF16, utf16_length
from ..schedule import format_jst
from .jma import INTENSITY_LABELS, JmaMessage, Kind, intensity_rank

ISSUED = "issued"
LIFTED = "lifted"

DEFAULT_ACTIONS: dict[str, str] = {
    Kind.WEATHER_WARNING: (
        "今後の気象情報や市からの避難情報に注意し、危険を感じたら早めに安全な場所へ"
        "避難してください。"
    ),
    Kind.EARTHQUAKE: (
        "まず身の安全を確保してください。火の元を確認し、余震や落下物、倒れやすい家具に"
        "注意してください。"
    ),
    Kind.LANDSLIDE: (
        "崖の近くや谷の出口など土砂災害警戒区域にお住まいの方は、市からの避難情報に"
        "注意し、早めに安全な場所へ避難してください。"
    ),
    Kind.RIVER_FLOOD: (
        "川に近づかないでください。市からの避難情報に注意し、早めに安全な場所へ避難してください。"
    ),
    Kind.RECORD_RAIN: (
        "土砂災害や低い土地の浸水、河川の増水・氾濫に警戒し、危険を感じたら安全な場所へ"
        "避難してください。"
    ),
    Kind.TORNADO: (
        "空の様子に注意し、積乱雲が近づく兆しがあれば頑丈な建物の中に移動してください。"
    ),
}
LIFTED_ACTION = "引き続き最新の情報に注意してください。"

DEFAULT_TEMPLATE = (
    "【{見出し}】\n{内容}\n\n{行動}\n\n発表：{発表時刻} {発表者}\n詳しくは：{詳細URL}\n柏市役所"
)
PLACEHOLDERS = ("見出し", "内容", "地域", "行動", "発表時刻", "発表者", "詳細URL")
_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")


@dataclass(frozen=True)
class RuleSpec:
    """What the service reads from an ``OfficialRule`` row."""

    kind: str
    area_codes: frozenset[str]
    names: tuple[str, ...] = ()  # warning names (substring), or river names for floods
    min_intensity: str = ""  # earthquakes: JMA's MaxInt code, e.g. "4", "5-"
    template: str = DEFAULT_TEMPLATE


@dataclass(frozen=True)
class Finding:
    """What a message says for Kashiwa under one rule."""

    change: str  # ISSUED or LIFTED
    what: str  # 大雨警報 / 震度５弱 / 土砂災害警戒情報 / 利根川 氾濫警戒情報
    where: str  # 柏市 / 千葉県北西部
    severity: int  # to choose between rules; larger is more severe
    also: str = ""  # what continues in force there (継続), named so no citizen misses it

    @property
    def summary(self) -> str:
        verb = "解除" if self.change == LIFTED else "発表"
        return f"{self.where}：{self.what}（{verb}）"


@dataclass(frozen=True)
class Outcome:
    finding: Finding | None
    reason: str  # why not, in Japanese, when finding is None


def _names_match(rule: RuleSpec, name: str) -> bool:
    return not rule.names or any(n and n in name for n in rule.names)


def _area_outcome(message: JmaMessage, rule: RuleSpec, label: str) -> Outcome:
    items = [i for i in message.items_in(rule.area_codes) if _names_match(rule, i.kind_name)]
    if not message.items_in(rule.area_codes):
        return Outcome(None, "対象地域が含まれていません。")
    issued = [i for i in items if i.status == "発表"]
    if issued:
        names = "・".join(dict.fromkeys(i.kind_name for i in issued))
        where = issued[0].area_name
        continuing = [i.kind_name for i in items if i.status == "継続"]
        also = "・".join(n for n in dict.fromkeys(continuing) if n not in names)
        severity = max(_severity(names), _severity(also) if also else 0)
        return Outcome(Finding(ISSUED, names, where, severity, also), "")
    lifted = [i for i in items if i.lifted]
    if lifted:
        names = "・".join(dict.fromkeys(i.kind_name for i in lifted))
        return Outcome(Finding(LIFTED, names, lifted[0].area_name, 0), "")
    if any(i.status == "継続" for i in items):
        return Outcome(None, f"{label}は継続中で、新たな発表はありません。")
    return Outcome(None, f"対象地域に該当する{label}はありません。")


def _severity(names: str) -> int:
    if "特別警報" in names:
        return 30
    if "危険警報" in names:
        return 25
    if "警報" in names:
        return 20
    return 10


def _earthquake_outcome(message: JmaMessage, rule: RuleSpec) -> Outcome:
    strongest = message.max_intensity_in(rule.area_codes)
    if strongest is None:
        return Outcome(None, "対象地域で震度が観測されていません。")
    threshold = intensity_rank(rule.min_intensity or "1")
    if intensity_rank(strongest.max_int) < threshold:
        wanted = INTENSITY_LABELS.get(rule.min_intensity, rule.min_intensity)
        return Outcome(
            None, f"対象地域の最大{strongest.label}は基準（{wanted}以上）に達していません。"
        )
    return Outcome(
        Finding(ISSUED, strongest.label, strongest.area_name, intensity_rank(strongest.max_int)),
        "",
    )


def _river_outcome(message: JmaMessage, rule: RuleSpec) -> Outcome:
    rivers = [i for i in message.items if _names_match(rule, i.area_name)]
    if not rivers:
        return Outcome(None, "対象の河川が含まれていません。")
    river = rivers[0]
    if river.lifted or "解除" in river.status:
        return Outcome(
            Finding(LIFTED, f"{river.area_name} {river.kind_name}", river.area_name, 0), ""
        )
    level = int(river.kind_code) if river.kind_code.isdigit() else 0
    return Outcome(
        Finding(ISSUED, f"{river.area_name} {river.kind_name}", river.area_name, level), ""
    )


def evaluate(message: JmaMessage, rule: RuleSpec) -> Outcome:
    """Whether ``message`` concerns ``rule``, and what it says for Kashiwa."""
    if rule.kind != message.kind:
        return Outcome(None, "規則の対象でない種類の情報です。")
    if message.kind == Kind.EARTHQUAKE:
        return _earthquake_outcome(message, rule)
    if message.kind == Kind.RIVER_FLOOD:
        return _river_outcome(message, rule)
    if message.kind == Kind.OTHER:
        return Outcome(None, "配信の対象としない種類の情報です。")
    label = {
        Kind.WEATHER_WARNING: "警報・注意報",
        Kind.LANDSLIDE: "土砂災害警戒情報",
        Kind.RECORD_RAIN: "記録的短時間大雨情報",
        Kind.TORNADO: "竜巻注意情報",
    }[Kind(message.kind)]
    return _area_outcome(message, rule, label)


def fill(template: str, values: dict[str, str]) -> str:
    """``{名前}`` placeholders replaced; unknown names left as typed (admins see them in the
    draft rather than losing the text)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def unknown_placeholders(template: str) -> list[str]:
    return [name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS]


@dataclass(frozen=True)
class DraftText:
    title: str  # for staff (件名), ≤ 120 characters
    text: str  # what citizens read


def _issued_content(message: JmaMessage, finding: Finding) -> str:
    if message.kind == Kind.EARTHQUAKE:
        when = (
            format_jst(message.origin_at or message.target_at)
            if (message.origin_at or message.target_at)
            else ""
        )
        lines = [f"{when}ころ、地震がありました。{finding.where}で{finding.what}を観測しました。"]
        if message.hypocenter:
            lines.append(f"震源地：{message.hypocenter}　{message.magnitude}".rstrip())
        lines.extend(message.comments)
        return "\n".join(lines)
    if message.kind == Kind.RIVER_FLOOD:
        return f"{finding.what}が発表されました。\n{message.body_text or message.headline}"
    also = f"（{finding.also}も発表中です。）" if finding.also else ""
    return f"{finding.where}に{finding.what}が発表されました。{also}\n{message.headline}".rstrip()


def render(message: JmaMessage, finding: Finding, *, template: str, info_url: str) -> DraftText:
    """The citizen text and the staff title for ``finding``, within LINE's text limit."""
    lifted = finding.change == LIFTED
    heading = (
        f"{finding.what}解除" if lifted and not finding.what.endswith("解除") else finding.what
    )
    if lifted:
        content = f"{finding.where}の{finding.what}は解除されました。\n{message.headline}".rstrip()
        action = LIFTED_ACTION
    else:
        content = _issued_content(message, finding)
        action = DEFAULT_ACTIONS.get(message.kind, LIFTED_ACTION)
    reported = format_jst(message.report_at) if message.report_at else ""
    values = {
        "見出し": heading,
        "内容": content,
        "地域": finding.where,
        "行動": action,
        "発表時刻": reported,
        "発表者": message.publishing_office or message.editorial_office,
        "詳細URL": info_url,
    }
    text = fill(template or DEFAULT_TEMPLATE, values).strip()
    if utf16_length(text) > MAX_TEXT_UTF16:
        text = _shorten(text)
    title = f"【気象庁】{heading}（{finding.where}）{reported}"[:120]
    return DraftText(title=title, text=text)


def _shorten(text: str) -> str:
    marker = "…（以下略）"
    while utf16_length(text) + len(marker) > MAX_TEXT_UTF16:
        text = text[: len(text) - max(1, (utf16_length(text) - MAX_TEXT_UTF16) // 2 or 1)]
    return text + marker


def cancellation_text(message: JmaMessage, original_title: str, *, sent_at_label: str) -> str:
    """JMA withdrew a message whose broadcast was already sent: a 取消 for citizens."""
    return (
        f"【取消】{sent_at_label}にお送りした「{original_title}」は、気象庁が情報を取り消しました。"
        "この配信を取り消します。\n\n柏市役所"
    )


def correction_text(text: str, *, sent_at_label: str) -> str:
    """JMA corrected a message whose broadcast went out: the corrected text, marked."""
    head = (
        f"【訂正】{sent_at_label}にお送りした情報は、気象庁が内容を訂正しました。"
        "正しくは次のとおりです。\n\n"
    )
    return _shorten(head + text) if utf16_length(head + text) > MAX_TEXT_UTF16 else head + text
