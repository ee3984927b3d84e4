"""Hostile and malformed input to every form and API: never a 500, never a stored script
shown unescaped, and a forged (missing) CSRF token is refused on every staff POST."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from broadcasts.models import Broadcast, BroadcastEvent

from .test_url_matrix import MATRIX, ROLES, Row

SCRIPT = "<script>alert('kashiwa')</script>"
HOSTILE_VALUES = [
    SCRIPT,
    "'; DROP TABLE broadcasts_broadcast; --",
    "x" * 20_000,
    "２０２６ー１２ー０１",
    "2026-02-30T25:61",
    "-1",
    "9" * 40,
    "\x00\x01\x02",
    "🙂" * 3000,
    "",
]
FIELDS = [
    "title",
    "comment",
    "reason",
    "typed_count",
    "kind",
    "requested_at",
    "when",
    "audience",
    "priority",
    "emergency_reason",
    "categories",
    "token",
    "next",
    "seen_hash",
    "name",
    "m-TOTAL_FORMS",
    "m-INITIAL_FORMS",
    "m-0-kind",
    "m-0-text",
    "m-0-image_url",
    "m-0-card_text",
    "m-0-action1_uri",
    "timing",
    "language",
    "q",
    "month",
    "week",
    "page",
]
STAFF_FORMS = [
    ("broadcasts:create", lambda w: []),
    ("broadcasts:edit", lambda w: [w["draft"].pk]),
    ("broadcasts:templates", lambda w: []),
]


def first_allowed(row: Row) -> str | None:
    return next((r for r in ROLES if r in row.allowed and r != "anon"), None)


def payloads():
    for value in HOSTILE_VALUES:
        yield dict.fromkeys(FIELDS, value)
    yield {"m-TOTAL_FORMS": "99999", "m-INITIAL_FORMS": "abc"}
    yield {}


POSTABLE = [row for row in MATRIX if row.method == "POST" and not row.public] + [
    Row(name, "POST", {"drafter"}, args=args) for name, args in STAFF_FORMS
]


@pytest.mark.parametrize("row", POSTABLE, ids=lambda r: r.name)
def test_hostile_posts_never_500_and_never_store_a_live_script(client, world, row):
    role = first_allowed(row) or "drafter"
    client.force_login(world["users"][role])
    url = reverse(row.name, args=row.args(world))
    for data in payloads():
        response = client.post(url, data)
        assert response.status_code != 500, (url, {k: v[:20] for k, v in data.items()})
        if response.status_code in (200, 400) and "text/html" in response.get("Content-Type", ""):
            assert SCRIPT not in response.content.decode(), url
    # Whatever was stored is shown escaped everywhere staff look.
    client.force_login(world["users"]["reviewer"])
    for page in (
        reverse("broadcasts:list") + "?tab=all",
        reverse("broadcasts:dashboard"),
        reverse("broadcasts:history"),
        *(reverse("broadcasts:detail", args=[b.pk]) for b in Broadcast.objects.all()),
    ):
        body = client.get(page).content.decode()
        assert SCRIPT not in body, page


@pytest.mark.parametrize(
    "row", [r for r in MATRIX if r.method == "POST" and not r.public], ids=lambda r: r.name
)
def test_post_without_csrf_token_is_refused(world, row):
    client = Client(enforce_csrf_checks=True)
    role = first_allowed(row) or "drafter"
    client.force_login(world["users"][role])
    events = BroadcastEvent.objects.count()
    response = client.post(reverse(row.name, args=row.args(world)), row.data or {})
    assert response.status_code == 403
    assert BroadcastEvent.objects.count() == events  # nothing happened


def test_overlong_title_keeps_everything_typed(client, world):
    client.force_login(world["users"]["drafter"])
    long_title = "長" * 500
    response = client.post(
        reverse("broadcasts:create"),
        {
            "title": long_title,
            "audience": "all",
            "priority": "normal",
            "kind": "live",
            "timing": "asap",
            "m-TOTAL_FORMS": "1",
            "m-INITIAL_FORMS": "0",
            "m-0-kind": "text",
            "m-0-text": "本文はそのまま残ること",
        },
    )
    assert response.status_code == 400  # the form again, with its errors
    body = response.content.decode()
    assert "120文字以内" in body
    assert "本文はそのまま残ること" in body
    assert long_title in body
