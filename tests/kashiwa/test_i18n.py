"""The English catalogue is complete (the UI is Japanese first, English second)."""

from __future__ import annotations

import re
from pathlib import Path

PO = Path(__file__).resolve().parents[2] / "locale" / "en" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


def entries() -> list[tuple[str, list[str], bool]]:
    """(msgid, msgstrs, fuzzy) for every entry of the .po file."""
    found = []
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in block.splitlines())
        parts: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?) "(.*)"$', line)
            if match:
                key = match.group(1)
                parts[key] = match.group(2)
            elif line.startswith('"') and key:
                parts[key] += line[1:-1]
        if parts.get("msgid"):
            strs = [v for k, v in parts.items() if k.startswith("msgstr")]
            found.append((parts["msgid"], strs, fuzzy))
    return found


def test_every_string_has_an_english_translation():
    missing = [msgid for msgid, strs, fuzzy in entries() if fuzzy or not all(strs)]
    assert missing == []
    assert len(entries()) > 400


def test_the_compiled_catalogue_is_committed():
    assert MO.exists()
    assert MO.stat().st_size > 10_000
