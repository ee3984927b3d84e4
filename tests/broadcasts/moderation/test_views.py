"""The moderation inbox through its URLs: who sees it, order, masking, actions, bad input."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from broadcasts.models import BroadcastEvent, CitizenMessage, ModerationMeasure, ReplySuppression
from broadcasts.services import moderation

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2027, 2, 26, 1, 30, tzinfo=dt.UTC)


def keep(text: str, *, minutes: int, event_id: str, user: str = "U" + "c3" * 16) -> CitizenMessage:
    moderation.citizen_message_receive(
        webhook_event_id=event_id,
        line_user_id=user,
        message_type="text",
        text=text,
        at=T0 + dt.timedelta(minutes=minutes),
    )
    return CitizenMessage.objects.get(webhook_event_id=event_id)


@pytest.fixture
def inbox_rows(db):
    return [
        keep("副業で稼げる 090-1111-2222", minutes=0, event_id="spam"),
        keep("ごみの日はいつですか", minutes=5, event_id="plain-old"),
        keep("粗大ごみの出し方を教えて", minutes=10, event_id="plain-new"),
    ]


def test_reviewer_and_admin_see_the_inbox_drafter_does_not(client, reviewer, admin_user, drafter):
    for user, status in ((reviewer, 200), (admin_user, 200), (drafter, 403)):
        client.force_login(user)
        assert client.get(reverse("broadcasts:moderation_inbox")).status_code == status


def test_flagged_first_then_newest_and_personal_data_masked(client, reviewer, inbox_rows):
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:moderation_inbox")).content.decode()
    spam, old, new = inbox_rows
    order = [html.index(f'data-message="{m.pk}"') for m in (spam, new, old)]
    assert order == sorted(order)
    assert "090-1111-2222" not in html
    assert "副業で稼げる ＊＊＊" in html
    assert "ポリシー6(5) 広告・営利目的" in html


def test_filters_and_search(client, reviewer, inbox_rows):
    client.force_login(reviewer)
    url = reverse("broadcasts:moderation_inbox")
    flagged = client.get(url, {"state": "flagged"}).content.decode()
    assert "副業で稼げる" in flagged and "粗大ごみ" not in flagged
    found = client.get(url, {"q": "粗大"}).content.decode()
    assert "粗大ごみ" in found and "副業" not in found
    by_item = client.get(url, {"item": "5"}).content.decode()
    assert "副業" in by_item and "ごみの日" not in by_item


@pytest.mark.parametrize(
    "params",
    [{"item": "x"}, {"date_from": "2027-99-99"}, {"state": "nonsense"}, {"page": "-1"}],
)
def test_hostile_filters_never_500(client, reviewer, inbox_rows, params):
    client.force_login(reviewer)
    assert client.get(reverse("broadcasts:moderation_inbox"), params).status_code == 200


def test_the_message_page_shows_the_text_and_says_the_api_cannot_block(
    client, reviewer, inbox_rows
):
    client.force_login(reviewer)
    spam = inbox_rows[0]
    html = client.get(reverse("broadcasts:moderation_message", args=[spam.pk])).content.decode()
    assert "090-1111-2222" in html  # the page of one message shows it as received
    assert "Messaging API）からは利用者をブロックできません" in html
    assert "LINE 公式アカウント管理画面" in html


def test_actions_through_the_screen_are_applied_and_audited(client, reviewer, inbox_rows):
    client.force_login(reviewer)
    message = inbox_rows[1]
    item_pk = message.__class__.item.field.related_model.objects.get(number=2).pk
    r = client.post(reverse("broadcasts:moderation_flag", args=[message.pk]), {"item": item_pk})
    assert r.status_code == 302
    client.post(reverse("broadcasts:moderation_note", args=[message.pk]), {"note": "要注意"})
    r = client.post(
        reverse("broadcasts:moderation_suppress", args=[message.pk]),
        {"days": "14", "reason": "繰り返し"},
    )
    assert r.status_code == 302
    r = client.post(
        reverse("broadcasts:moderation_measure", args=[message.pk]),
        {"kind": "blocked", "detail": ""},
        follow=True,
    )
    assert "措置「LINE 公式アカウント管理画面でブロック済み」を記録しました" in r.content.decode()
    message.refresh_from_db()
    assert message.item.number == 2 and message.note == "要注意"
    assert ReplySuppression.objects.get().line_user_id == message.line_user_id
    assert ModerationMeasure.objects.get().kind == "blocked"
    assert set(
        BroadcastEvent.objects.filter(actor=reviewer)
        .exclude(verb="login")
        .values_list("verb", flat=True)
    ) == {
        "citizen_message_flagged",
        "citizen_message_noted",
        "reply_suppressed",
        "moderation_measure_recorded",
    }


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("moderation_flag", {"item": "999999"}, "禁止事項を選び直してください"),
        ("moderation_flag", {}, "禁止事項を選んでください"),
        ("moderation_suppress", {"days": "abc"}, "日数は数字で入力してください"),
        ("moderation_suppress", {"days": "0"}, "日数は1以上にしてください"),
        ("moderation_measure", {"kind": "other", "detail": ""}, "内容を入力してください"),
        ("moderation_measure", {"kind": "evil"}, "措置を選び直してください"),
    ],
)
def test_bad_input_gets_a_japanese_error_not_a_500(client, reviewer, inbox_rows, name, data, error):
    client.force_login(reviewer)
    r = client.post(reverse(f"broadcasts:{name}", args=[inbox_rows[0].pk]), data)
    assert r.status_code == 400
    assert error in r.content.decode()
    assert not BroadcastEvent.objects.filter(actor=reviewer).exclude(verb="login").exists()


def test_a_drafter_cannot_post_actions(client, drafter, inbox_rows):
    client.force_login(drafter)
    r = client.post(
        reverse("broadcasts:moderation_suppress", args=[inbox_rows[0].pk]), {"days": "3"}
    )
    assert r.status_code == 403
    assert not ReplySuppression.objects.exists()


def test_the_dashboard_reminds_moderators_of_flagged_messages_without_a_measure(
    client, reviewer, drafter, inbox_rows
):
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert "措置の記録なし）: 1 件" in html
    moderation.moderation_measure_record(
        message=inbox_rows[0], kind="none", detail="", actor=reviewer, now=T0
    )
    html = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert 'data-testid="moderation-open"' not in html
    client.force_login(drafter)
    assert (
        'data-testid="moderation-open"'
        not in client.get(reverse("broadcasts:dashboard")).content.decode()
    )


def test_the_count_stops_at_the_cap_and_says_so(client, reviewer, inbox_rows, monkeypatch):
    """An exact count of a search matching much of a month's messages costs more than the page:
    the inbox counts up to the cap and says 「… 件以上」 past it (bench/moderation)."""
    from broadcasts.views import paging

    client.force_login(reviewer)
    url = reverse("broadcasts:moderation_inbox")
    assert "<p>3 件</p>" in client.get(url).content.decode()
    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    html = client.get(url).content.decode()
    assert "<p>2 件以上</p>" in html and "<p>3 件</p>" not in html
