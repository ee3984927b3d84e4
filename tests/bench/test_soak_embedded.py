"""The short soak: bench/soak_embedded.py for one minute (about 90 s with set-up). The
10-minute run and its figures are in bench/README.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(
        bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")),
        reason="soaks the embedded default, which the SQLite pass already runs",
    ),
]


def test_the_embedded_stack_keeps_every_process_through_a_minute_of_load(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "bench/soak_embedded.py",
            "--minutes",
            "1",
            "--drain",
            "60",
            "--run-dir",
            str(tmp_path / "soak"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "FAIL" not in result.stdout, report
    console = (tmp_path / "soak" / "runstack.log").read_text(errors="replace")
    assert "が終了しました" not in console
