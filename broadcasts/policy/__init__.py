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
    sections: list[Section] = []
    for raw in POLICY_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip().removeprefix("- ").strip()
        if not line or line == TITLE or _SKIP.match(line):
            continue
        if _HEADING.match(line) or line == "附則":
            sections.append(Section(heading=line))
        elif sections:
            sections[-1].paragraphs.append(line)
    return tuple(sections)
