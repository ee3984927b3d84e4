"""The inbox's text search as a 広報担当 uses it: Japanese, Latin in any case, characters LIKE
treats specially, the note and the LINE user ID; the capped count and the pages behind it. The
same on SQLite and on PostgreSQL (where migration 0016 adds trigram indexes and a term without
cased letters is a plain ``contains``)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from broadcasts.models import CitizenMessage
from broadcasts.selectors.moderation import has_case
from broadcasts.services import moderation

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2027, 2, 26, 1, 30, tzinfo=dt.UTC)
TEXTS = {
    "toban": "休日当番医はどこですか",
    "gomi": "ごみの収集日を教えてください",
    "spam-lower": "副業 https://spam.example.com/ で稼げる",
    "spam-upper": "SPAM.EXAMPLE.COM を見て",
    "spam-other": "spamXexample の件",
    "percent": "ポイント50%還元はいつまで",
    "no-percent": "ポイント50還元",
    "underscore": "ファイル名は a_b.pdf です",
    "no-underscore": "ファイル名は axb.pdf です",
    "backslash": r"保存先は C:\data\kashiwa でした",
    "no-backslash": "保存先は C:/data/kashiwa でした",
    "wide": "ＡＢＣ全角の英字",
}


@pytest.fixture
def messages(db) -> dict[str, CitizenMessage]:
    kept = {}
    for n, (key, text) in enumerate(TEXTS.items()):
        moderation.citizen_message_receive(
            webhook_event_id=f"search-{key}",
            line_user_id=f"U{n:032x}",
            message_type="text",
            text=text,
            at=T0 + dt.timedelta(minutes=n),
        )
        kept[key] = CitizenMessage.objects.get(webhook_event_id=f"search-{key}")
    return kept


def found(client, **params: str) -> set[int]:
    response = client.get(reverse("broadcasts:moderation_inbox"), params)
    assert response.status_code == 200
    return {int(pk) for pk in re.findall(r'data-message="(\d+)"', response.content.decode())}


def pks(messages: dict[str, CitizenMessage], *keys: str) -> set[int]:
    return {messages[k].pk for k in keys}


@pytest.mark.parametrize(
    ("q", "keys"),
    [
        ("当番医", ("toban",)),
        ("ごみ", ("gomi",)),
        ("spam.example", ("spam-lower", "spam-upper")),
        ("SpAm.ExAmPlE", ("spam-lower", "spam-upper")),
        ("ＡＢＣ", ("wide",)),
        ("50%還元", ("percent",)),
        ("%", ("percent",)),
        ("a_b", ("underscore",)),
        ("_", ("underscore",)),
        ("C:\\data", ("backslash",)),
        ("\\", ("backslash",)),
        ("見つからない語", ()),
    ],
)
def test_search_finds_exactly_the_messages_holding_the_term(client, reviewer, messages, q, keys):
    """%, _ and \\ are the characters themselves, not LIKE's wildcards or escape; ASCII letters
    match in any case, Japanese and full-width letters as written (SQLite's LIKE folds ASCII
    only, so full-width case is left out here)."""
    client.force_login(reviewer)
    assert found(client, q=q) == pks(messages, *keys)


def test_search_looks_in_the_note_and_at_the_whole_user_id(client, reviewer, admin_user, messages):
    moderation.citizen_message_note(
        message=messages["gomi"], note="当番医の件で再度連絡あり Follow-Up", actor=admin_user
    )
    client.force_login(reviewer)
    assert found(client, q="当番医") == pks(messages, "toban", "gomi")
    assert found(client, q="follow-up") == pks(messages, "gomi")
    user_id = messages["percent"].line_user_id
    assert found(client, q=user_id) == pks(messages, "percent")
    assert found(client, q=user_id[:10]) == set()  # the ID is matched whole, never in part


def test_search_combines_with_the_flagged_filter(client, reviewer, messages):
    client.force_login(reviewer)
    # the rules flag the spam link (ポリシー6(5)); the upper-case copy has no link
    flagged = {m.pk for m in messages.values() if CitizenMessage.objects.get(pk=m.pk).flagged}
    assert messages["spam-lower"].pk in flagged
    assert found(client, q="SPAM.example", state="flagged") == pks(messages, "spam-lower")


@pytest.mark.parametrize(
    ("term", "cased"),
    [
        ("当番医", False),
        ("50%_\\", False),
        ("ごみ 123", False),
        ("Spam", True),
        ("ａ", True),
        ("ß", True),
        ("Ⅻ", True),
    ],
)
def test_has_case(term, cased):
    assert has_case(term) is cased


def test_capped_count_and_the_pages_behind_it(client, reviewer, messages, monkeypatch):
    """Four messages match; counted up to 3 they are 「3 件以上」, two to a page: page 2 holds
    the third newest alone, and a page past the cap shows the last page."""
    from broadcasts.views import moderation as views
    from broadcasts.views import paging

    for n in range(3):
        moderation.citizen_message_receive(
            webhook_event_id=f"more-{n}",
            line_user_id=f"U{n:032x}",
            message_type="text",
            text=f"当番医 その{n}",
            at=T0 + dt.timedelta(hours=1, minutes=n),
        )
    client.force_login(reviewer)
    newest_first = list(
        CitizenMessage.objects.filter(text__contains="当番医")
        .order_by("-received_at", "-id")
        .values_list("pk", flat=True)
    )
    assert len(newest_first) == 4
    url = reverse("broadcasts:moderation_inbox")
    assert "<p>4 件</p>" in client.get(url, {"q": "当番医"}).content.decode()

    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    first = client.get(url, {"q": "当番医"}).content.decode()
    assert "<p>3 件以上</p>" in first
    assert found(client, q="当番医") == set(newest_first[:2])
    order = [first.index(f'data-message="{pk}"') for pk in newest_first[:2]]
    assert order == sorted(order)
    assert found(client, q="当番医", page="2") == {newest_first[2]}
    assert found(client, q="当番医", page="3") == {newest_first[2]}
    assert found(client, q="当番医", page="x") == set(newest_first[:2])


def test_inbox_reads_the_same_number_of_queries_for_any_page(
    client, reviewer, messages, django_assert_max_num_queries
):
    client.force_login(reviewer)
    url = reverse("broadcasts:moderation_inbox")
    client.get(url, {"q": "spam"})
    with django_assert_max_num_queries(20):
        client.get(url, {"q": "spam", "page": "2"})
