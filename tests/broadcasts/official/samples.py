"""The JMA messages the tests read: copies of JMA's samples and fixtures derived from them,
kept in the feed sandbox's package (``jma_sandbox/messages/``, README there)."""

from __future__ import annotations

from pathlib import Path

import jma_sandbox

MESSAGES = Path(jma_sandbox.__file__).parent / "messages"

HEAVY_RAIN = "kashiwa_01_heavy_rain_warning_VPWW54.xml"
HEAVY_RAIN_LIFTED = "kashiwa_02_heavy_rain_warning_lifted_VPWW54.xml"
QUAKE_5_MINUS = "kashiwa_03_intensity_5minus_VXSE51.xml"
QUAKE_CANCELLED = "kashiwa_04_intensity_cancelled_VXSE51.xml"


def sample(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()
