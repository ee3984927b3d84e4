"""The operating policy (柏市公式 LINE アカウント運用ポリシー) as published (policy 7).

The text is kept in this package (``kashiwa_line_policy.txt``) so the public page shows exactly
what the city adopted; its dates and change history are below."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

POLICY_FILE = Path(__file__).with_name("kashiwa_line_policy.txt")
TITLE = "柏市公式 LINE アカウント運用ポリシー"
ENACTED = (dt.date(2021, 8, 15), "令和3年8月15日")
EFFECTIVE = (dt.date(2023, 3, 17), "令和5年3月17日")


@dataclass(frozen=True)
class Revision:
    date: dt.date
    wareki: str
    what: str


#: 変更履歴 (newest first). Add a row here, and update the text file, when the policy changes.
REVISIONS: tuple[Revision, ...] = (
    Revision(EFFECTIVE[0], EFFECTIVE[1], "改正後のポリシーを施行（現行版）"),
    Revision(ENACTED[0], ENACTED[1], "運用ポリシーを制定・施行"),
)


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)


_HEADING = re.compile(r"^(\d+)\s+(\S.*)$")
_SKIP = re.compile(r"^(制定|施行)\s")


@functools.cache
def policy_sections() -> tuple[Section, ...]:
    """The policy text split into numbered sections (1 目的 … 10, 附則)."""
    return sections_from_text(POLICY_FILE.read_text(encoding="utf-8"))


def sections_from_text(text: str, *, title: str = TITLE) -> tuple[Section, ...]:
    """A policy version's text split into numbered sections (a line like 「1 目的」 or
    「附則」 starts one; the title and its 制定/施行 lines are left out: the page shows the
    version's own dates)."""
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.strip().removeprefix("- ").strip()
        if not line or line == title or _SKIP.match(line):
            continue
        if _HEADING.match(line) or line == "附則":
            sections.append(Section(heading=line))
        elif sections:
            sections[-1].paragraphs.append(line)
    return tuple(sections)


#: Policy 4(1): the information the account sends, by category code — its letter and the
#: policy's full wording (shown where staff choose categories; short labels elsewhere).
CATEGORY_WORDING: dict[str, tuple[str, str]] = {
    "disaster_crime": ("ア", "防災・防犯に関する情報"),
    "fire": ("イ", "火災情報に関する情報"),
    "events": ("ウ", "柏市や千葉県等のイベントに関する情報"),
    "childcare_education": ("エ", "子育てや教育に関する情報"),
    "health_welfare": ("オ", "健康、福祉、医療などに関する情報"),
    "tourism_pr": ("カ", "柏市の魅力や観光などのPR情報"),
    "municipal": ("キ", "市政に関する情報"),
    "koho_kashiwa": ("ク", "広報かしわ発行に関する情報"),
    "emergency": ("ケ", "自然災害や緊急事象発生時など市民生活に特に影響を与える緊急情報"),
    "survey": ("コ", "アンケート等への協力依頼"),
    "other": ("サ", "その他、市民へ周知する必要性が高い情報として、市が必要と認める情報"),
}


def category_wording(code: str) -> tuple[str, str]:
    """``(letter, wording)`` of a category under policy 4(1); ``("", "")`` for a category the
    policy does not list (an admin may add one)."""
    return CATEGORY_WORDING.get(code, ("", ""))


#: (first day, era name) newest first
_ERAS = (
    (dt.date(2019, 5, 1), "令和"),
    (dt.date(1989, 1, 8), "平成"),
    (dt.date(1926, 12, 25), "昭和"),
)


def wareki(day: dt.date) -> str:
    """「令和5年3月17日」 (the first year of an era is 元年)."""
    for start, name in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            return f"{name}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return f"{day.year}年{day.month}月{day.day}日"
