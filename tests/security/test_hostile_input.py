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


# --- hostile query strings ---------------------------------------------------------------------

# Every name a view reads from request.GET (grep ``request.GET`` in broadcasts/ and kashiwa/,
# and the fields of the filter forms bound to it), by kind, plus generic names a fuzzer tries.
GET_PARAMS = {
    "dates": [
        "date_from",  # lists, history, stats
        "date_to",
        "month",  # calendar_grid
        "week",
        "requested_at",  # compose.preview_time
        "date",
    ],
    "numbers": [
        "page",  # every paginated list
        "category",  # lists (BroadcastFilterForm)
        "division",
        "author",
        "actor",  # history (HistoryFilterForm)
        "broadcast",
        "template",  # compose: 「この雛形で作成」
        "categories",  # compose.preview_time
        "id",
        "pk",
        "limit",
        "offset",
    ],
    "choices": [
        "q",  # lists, history
        "status",  # lists
        "tab",
        "verb",  # history
        "kind",  # compose
        "timing",  # compose.preview_time
        "priority",
        "audience",
        "compact",  # progress
        "format",  # ops
        "next",  # otp, login
        "part",
        "sort",
        "order",
        "lang",
    ],
}
ALL_GET_PARAMS = [name for names in GET_PARAMS.values() for name in names]
GET_VALUES = [
    "0001-01-01",
    "9999-12-31",
    "99999999",
    "-1",
    "abc",
    "\x00",
    "'\"<script>",
    "a" * 5000,
    "%",
    "１２３",
]
# Sent to one kind of parameter at a time: an invalid value in one field
# (``category=0001-01-01``) makes a form invalid and hides a crash in another
# (``date_from=0001-01-01``), and ``timing=abc`` skips reading ``requested_at``.
UNMASKING_VALUES = ["0001-01-01", "9999-12-31", "9999-12", "9999-12-31T23:59", "9" * 40, "abc"]
# A role changes which rows a page shows, not how it reads its parameters: every other role
# allowed a URL sends these few.
EVERY_ROLE_VALUES = ["0001-01-01", "9999-12-31", "abc", "\x00"]
GETTABLE = [row for row in MATRIX if row.method == "GET"]


def query_payloads(*, thorough: bool):
    """Hostile values in every parameter at once, and lists of values (``?x=1&x=2``).
    ``thorough`` adds the unmasking values to each kind of parameter alone, and each end of a
    date range alone (the statistics count back from ``date_to`` when ``date_from`` is
    absent)."""
    for value in GET_VALUES if thorough else EVERY_ROLE_VALUES:
        yield dict.fromkeys(ALL_GET_PARAMS, value)
    yield {name: ["1", "2"] for name in ALL_GET_PARAMS}
    if not thorough:
        return
    yield {name: ["2026-12-01", "0001-01-01"] for name in ALL_GET_PARAMS}
    for names in GET_PARAMS.values():
        for value in UNMASKING_VALUES:
            yield dict.fromkeys(names, value)
    for name in ("date_from", "date_to"):
        for value in ("0001-01-01", "9999-12-31"):
            yield {name: value}


def _describe(params: dict) -> str:
    values = {repr(v)[:24] for v in params.values()}
    if len(params) > 1 and len(values) == 1:
        return f"{len(params)} parameters ({next(iter(params))}, ...) = {values.pop()}"
    return "&".join(f"{k}={v!r:.24}" for k, v in params.items())


def test_hostile_query_strings_never_500(world):
    """Every GET URL as every role, with hostile values in every query parameter any view
    reads: no 500 anywhere (a streamed CSV is read to its end). Each URL gets the thorough
    payloads as the first role allowed it and the compact ones as every other role allowed
    it; a refused role is turned away before any parameter is read, so two payloads do. All
    failures are collected and reported together."""
    failures = []
    for role in ROLES:
        client = Client(raise_request_exception=False)
        if role != "anon":
            client.force_login(world["users"][role])
        for row in GETTABLE:
            url = reverse(row.name, args=row.args(world))
            if role not in row.allowed:
                payloads = [dict.fromkeys(ALL_GET_PARAMS, v) for v in ("abc", "0001-01-01")]
            else:
                thorough = role == next(r for r in ROLES if r in row.allowed)
                payloads = list(query_payloads(thorough=thorough))
            for params in payloads:
                response = client.get(url, params)
                error = None
                if response.status_code >= 500:
                    exc = getattr(response, "exc_info", None)
                    error = repr(exc[1])[:120] if exc else response.status_code
                elif response.streaming:
                    try:
                        b"".join(response.streaming_content)
                    except Exception as problem:  # every failure is reported below
                        error = repr(problem)[:120]
                if error:
                    failures.append((role, url, _describe(params), error))
    assert not failures, f"{len(failures)} answers of 500:\n" + "\n".join(map(str, failures))


@pytest.mark.parametrize(
    ("role", "name", "query", "status", "message"),
    [
        ("reviewer", "broadcasts:stats", "date_to=0001-01-01", 200, "2099年12月31日までの間"),
        ("reviewer", "broadcasts:list", "date_from=0001-01-01", 200, "2099年12月31日までの間"),
        ("reviewer", "broadcasts:history", "date_to=9999-12-31", 200, "2099年12月31日までの間"),
        ("drafter", "broadcasts:create", "template=abc", 200, "指定された雛形が見つかりません"),
        ("drafter", "broadcasts:create", "template=999999", 200, "指定された雛形が見つかりません"),
        ("drafter", "broadcasts:calendar_month", "month=9999-12", 200, "今月を表示します"),
        ("drafter", "broadcasts:calendar_week", "week=0001-01-01", 200, "今週を表示します"),
        (
            "drafter",
            "broadcasts:preview_time",
            "requested_at=9999-12-31T23:59",
            400,
            "2099年12月31日までの間",
        ),
    ],
)
def test_bad_query_values_are_explained_in_japanese(
    client, world, role, name, query, status, message
):
    client.force_login(world["users"][role])
    response = client.get(f"{reverse(name)}?{query}")
    assert response.status_code == status
    body = response.json()["text"] if name.endswith("preview_time") else response.content.decode()
    assert message in body
