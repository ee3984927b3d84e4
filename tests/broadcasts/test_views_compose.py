"""Compose, review and list views: validation errors in Japanese, nothing lost, permissions,
and a constant number of queries on the list pages."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from broadcasts.models import Broadcast, BroadcastEvent, Category, Follower, MessageTemplate
from broadcasts.schedule import JST
from broadcasts.services import broadcast_approve, broadcast_submit
from tests.factories import BroadcastFactory, card_message, image_message, text_message
from tests.fixtures.line_stub import AcceptingGateway

# Wednesday 2026-11-25 10:00 JST: an opening day, inside the window.
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=JST)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def no_line(monkeypatch):
    """The checklist's LINE validate call: a stub that accepts everything."""
    gateway = AcceptingGateway()
    monkeypatch.setattr("broadcasts.line.gateway.get_gateway", lambda: gateway)
    return gateway


def category_id(code: str = "childcare_education") -> int:
    return Category.objects.get(code=code).pk


def compose_data(messages: list[dict[str, str]] | None = None, **overrides: Any) -> dict:
    """POST data for the compose form; ``messages`` are message-form values."""
    messages = messages if messages is not None else [{"kind": "text", "text": "こんにちは"}]
    data: dict[str, Any] = {
        "title": "子育て支援のお知らせ",
        "categories": [category_id()],
        "audience": "all",
        "timing": "asap",
        "requested_at": "",
        "priority": "normal",
        "emergency_reason": "",
        "notify": "on",
        "m-TOTAL_FORMS": str(len(messages)),
        "m-INITIAL_FORMS": "0",
        "m-MIN_NUM_FORMS": "1",
        "m-MAX_NUM_FORMS": "5",
    }
    for index, message in enumerate(messages):
        for key, value in message.items():
            data[f"m-{index}-{key}"] = value
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


CREATE = "/broadcasts/new/"


def test_url_names():
    assert reverse("broadcasts:list") == "/broadcasts/"
    assert reverse("broadcasts:create") == CREATE
    assert reverse("broadcasts:detail", args=[1]) == "/broadcasts/1/"
    for name in ("edit", "submit", "withdraw", "approve", "reject", "cancel", "test_send"):
        assert reverse(f"broadcasts:{name}", args=[1]).startswith("/broadcasts/1/")
    for name in ("review_queue", "preview_time", "templates"):
        assert reverse(f"broadcasts:{name}")


def test_compose_page_renders(client, drafter):
    client.force_login(drafter)
    response = client.get(CREATE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'エ</span> <span class="kw-chip-wording">子育てや教育に関する情報' in html
    assert 'name="m-0-text"' in html
    assert "kw-message-template" in html
    assert "js/compose.js" in html
    assert "<script>" not in html.replace("<script src=", "")


# --- saving -------------------------------------------------------------------------------


def test_a_valid_three_message_broadcast_is_saved_as_a_draft(client, drafter):
    client.force_login(drafter)
    data = compose_data(
        [
            {"kind": "text", "text": "子育て応援イベントのお知らせです。"},
            {
                "kind": "image",
                "image_url": "https://www.city.kashiwa.lg.jp/images/event.jpg",
                "preview_url": "",
            },
            {
                "kind": "card",
                "card_title": "イベントの申込",
                "card_text": "申込はこちらから",
                "action1_label": "申請する",
                "action1_uri": "https://www.city.kashiwa.lg.jp/apply",
                "action2_label": "ホームページ",
                "action2_uri": "https://www.city.kashiwa.lg.jp/",
            },
        ]
    )
    response = client.post(CREATE, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    broadcast = Broadcast.objects.get()
    assert response["Location"] == reverse("broadcasts:detail", args=[broadcast.pk])
    assert broadcast.status == Broadcast.Status.DRAFT
    assert broadcast.author == drafter
    assert [m["type"] for m in broadcast.messages] == ["text", "image", "template"]
    assert broadcast.messages[1]["previewImageUrl"] == broadcast.messages[1]["originalContentUrl"]
    assert broadcast.messages[2]["template"]["actions"] == [
        {"type": "uri", "label": "申請する", "uri": "https://www.city.kashiwa.lg.jp/apply"},
        {"type": "uri", "label": "ホームページ", "uri": "https://www.city.kashiwa.lg.jp/"},
    ]
    assert list(broadcast.categories.values_list("code", flat=True)) == ["childcare_education"]
    assert BroadcastEvent.objects.filter(broadcast=broadcast, verb="create").count() == 1


def test_a_requested_time_is_read_as_japan_time(client, drafter):
    client.force_login(drafter)
    response = client.post(
        CREATE, compose_data(timing="at", requested_at="2026-11-26T10:30", notify=None)
    )
    assert response.status_code == 302
    broadcast = Broadcast.objects.get()
    assert broadcast.requested_at == dt.datetime(2026, 11, 26, 10, 30, tzinfo=JST)
    assert broadcast.notification_disabled is True


# --- every bad input: a Japanese error next to the field, nothing lost ------------------------


def _error_near(html: str, field_id: str, text: str) -> bool:
    """The error text appears within the field's own block (crispy's invalid-feedback)."""
    start = html.find(f'id="{field_id}"')
    assert start != -1, f"no field {field_id}"
    end = html.find("</div>\n", html.find("invalid-feedback", start))
    return text in html[start : end + 10]


def post_bad(client, user, data):
    client.force_login(user)
    response = client.post(CREATE, data)
    assert response.status_code == 400
    assert Broadcast.objects.count() == 0
    return response.content.decode()


def test_six_messages_are_refused_and_all_six_re_rendered(client, drafter):
    messages = [{"kind": "text", "text": f"お知らせ その{i}"} for i in range(1, 7)]
    html = post_bad(client, drafter, compose_data(messages))
    assert "メッセージは1回の配信につき5件までです。" in html
    for i in range(1, 7):
        assert f"お知らせ その{i}" in html
    assert 'name="m-5-text"' in html
    assert 'value="子育て支援のお知らせ"' in html


def test_text_of_5001_utf16_units_is_refused_counting_emoji_as_two(client, drafter):
    text = "あ" * 4999 + "😀"  # 4,999 + 2 = 5,001 UTF-16 units, 5,000 characters
    assert len(text) == 5000
    html = post_bad(client, drafter, compose_data([{"kind": "text", "text": text}]))
    assert _error_near(html, "id_m-0-text", "本文が長すぎます（5,001 / 5,000 文字。")
    assert text in html
    assert "5001" in html or "5,001" in html


def test_text_of_exactly_5000_units_is_accepted(client, drafter):
    client.force_login(drafter)
    text = "あ" * 4998 + "😀"
    response = client.post(CREATE, compose_data([{"kind": "text", "text": text}]))
    assert response.status_code == 302


def test_http_image_is_refused(client, drafter):
    url = "http://www.city.kashiwa.lg.jp/images/event.jpg"
    html = post_bad(
        client, drafter, compose_data([{"kind": "image", "image_url": url, "preview_url": ""}])
    )
    assert _error_near(html, "id_m-0-image_url", "画像は https:// の URL で指定してください。")
    assert f'value="{url}"' in html


def test_empty_broadcast_is_refused(client, drafter):
    html = post_bad(client, drafter, compose_data([]))
    assert "メッセージを1件以上作成してください。" in html
    assert 'value="子育て支援のお知らせ"' in html


def test_empty_text_message_is_refused_next_to_the_field(client, drafter):
    html = post_bad(client, drafter, compose_data([{"kind": "text", "text": "  "}]))
    assert _error_near(html, "id_m-0-text", "本文を入力してください。")


def test_a_past_time_is_refused(client, drafter):
    html = post_bad(
        client,
        drafter,
        compose_data(
            [{"kind": "text", "text": "過去の日時のテスト"}],
            timing="at",
            requested_at="2026-11-24T09:00",
        ),
    )
    assert _error_near(html, "id_requested_at", "配信希望日時（11/24(火) 9:00）は過去の日時です。")
    assert 'value="2026-11-24T09:00"' in html
    assert "過去の日時のテスト" in html


def test_no_category_is_refused(client, drafter):
    html = post_bad(client, drafter, compose_data(categories=None))
    assert "カテゴリを1つ以上選んでください。" in html
    assert "こんにちは" in html


def test_emergency_without_a_reason_is_refused(client, drafter):
    html = post_bad(client, drafter, compose_data(priority="emergency"))
    assert _error_near(html, "id_emergency_reason", "緊急配信の理由を入力してください")


def test_card_problems_land_next_to_their_fields(client, drafter):
    html = post_bad(
        client,
        drafter,
        compose_data(
            [
                {
                    "kind": "card",
                    "card_title": "申込",
                    "card_text": "",
                    "action1_label": "申請する",
                    "action1_uri": "http://example.com/",
                }
            ]
        ),
    )
    assert _error_near(html, "id_m-0-card_text", "カードの本文を入力してください。")
    assert _error_near(
        html, "id_m-0-action1_uri", "リンク先は https:// で始まる URL にしてください。"
    )
    assert 'value="http://example.com/"' in html


def test_html_in_text_is_escaped_in_preview_and_lists(client, drafter):
    client.force_login(drafter)
    evil = '<script>alert("x")</script><b>太字</b>'
    response = client.post(CREATE, compose_data([{"kind": "text", "text": evil}], title=evil))
    assert response.status_code == 302
    broadcast = Broadcast.objects.get()
    assert broadcast.messages[0]["text"] == evil  # stored exactly as typed
    for url in (
        reverse("broadcasts:detail", args=[broadcast.pk]),
        reverse("broadcasts:list"),
        reverse("broadcasts:edit", args=[broadcast.pk]),
    ):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, url


# --- edit ---------------------------------------------------------------------------------


def test_edit_page_shows_the_stored_messages(client, drafter):
    broadcast = BroadcastFactory(
        author=drafter, messages=[text_message("編集前"), image_message(), card_message()]
    )
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:edit", args=[broadcast.pk])).content.decode()
    assert "編集前" in html
    assert 'name="m-2-action1_uri"' in html
    assert "送信前チェック" in html


def test_another_drafter_cannot_open_the_edit_page(client, drafter, other_drafter):
    broadcast = BroadcastFactory(author=drafter)
    client.force_login(other_drafter)
    response = client.get(reverse("broadcasts:edit", args=[broadcast.pk]))
    assert response.status_code in (403, 404)
    response = client.post(reverse("broadcasts:edit", args=[broadcast.pk]), compose_data())
    assert response.status_code in (403, 404)


def test_edit_after_approval_goes_back_to_review(client, drafter, reviewer):
    broadcast = BroadcastFactory(author=drafter)
    broadcast_submit(broadcast=broadcast, actor=drafter)
    broadcast_approve(broadcast=broadcast, actor=reviewer)
    client.force_login(drafter)
    response = client.post(
        reverse("broadcasts:edit", args=[broadcast.pk]),
        compose_data([{"kind": "text", "text": "承認後の修正"}]),
    )
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW
    assert broadcast.approved_by is None
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "前回承認した内容からの変更" in html


# --- the effective time ---------------------------------------------------------------------


def test_preview_time_explains_a_closed_day(client, drafter):
    client.force_login(drafter)
    response = client.get(
        reverse("broadcasts:preview_time"),
        {"timing": "at", "requested_at": "2026-11-29T10:00", "priority": "normal"},
    )
    data = response.json()
    assert data["held"] is True
    assert data["text"] == "11/29(日)は閉庁日のため 11/30(月) 8:30 に送信されます。"
    assert set(data["recipients"]) == {"all", "subscribers", "staff_test"}


def test_preview_time_for_an_emergency_is_immediate(client, drafter):
    client.force_login(drafter)
    data = client.get(
        reverse("broadcasts:preview_time"),
        {"timing": "at", "requested_at": "2026-11-29T10:00", "priority": "emergency"},
    ).json()
    assert data["held"] is False
    assert "緊急配信のため" in data["text"]


def test_compose_page_shows_the_effective_time_on_load(client, drafter):
    broadcast = BroadcastFactory(
        author=drafter, requested_at=dt.datetime(2026, 11, 28, 9, 0, tzinfo=JST)
    )
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:edit", args=[broadcast.pk])).content.decode()
    assert "11/28(土)は閉庁日のため 11/30(月) 8:30 に送信されます。" in html


def test_audience_choices_show_recipient_counts(client, drafter):
    Follower.objects.create(line_user_id="U1", is_staff_test_recipient=True)
    Follower.objects.create(line_user_id="U2")
    client.force_login(drafter)
    html = client.get(CREATE).content.decode()
    assert re.search(r'data-kw-recipients="all">2<', html)
    assert re.search(r'data-kw-recipients="staff_test">1<', html)


# --- review flow ------------------------------------------------------------------------------


def submitted(drafter, **kwargs) -> Broadcast:
    broadcast = BroadcastFactory(author=drafter, **kwargs)
    return broadcast_submit(broadcast=broadcast, actor=drafter)


def test_submit_from_the_detail_page(client, drafter):
    broadcast = BroadcastFactory(author=drafter)
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "承認を申請する" in html
    response = client.post(reverse("broadcasts:submit", args=[broadcast.pk]))
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW


def test_the_author_sees_no_approve_button_and_cannot_post_one(client, drafter, reviewer):
    # Even a reviewer who authored the broadcast cannot approve it.
    broadcast = submitted(reviewer)
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "この内容で承認する" not in html
    response = client.post(
        reverse("broadcasts:approve", args=[broadcast.pk]),
        {"seen_hash": broadcast.content_hash},
    )
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW


def test_a_drafter_cannot_approve(client, drafter, other_drafter):
    broadcast = submitted(drafter)
    client.force_login(other_drafter)
    response = client.post(
        reverse("broadcasts:approve", args=[broadcast.pk]), {"seen_hash": broadcast.content_hash}
    )
    assert response.status_code == 403


def test_reviewer_approves_what_they_saw(client, drafter, reviewer):
    broadcast = submitted(drafter)
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "この内容で承認する" in html
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"', html).group(1)
    response = client.post(reverse("broadcasts:approve", args=[broadcast.pk]), {"seen_hash": seen})
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SCHEDULED
    assert broadcast.approved_by == reviewer


def test_approval_of_content_changed_meanwhile_is_refused(client, drafter, reviewer):
    broadcast = submitted(drafter)
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"', html).group(1)
    Broadcast.objects.filter(pk=broadcast.pk).update(messages=[text_message("差し替え")])
    response = client.post(
        reverse("broadcasts:approve", args=[broadcast.pk]), {"seen_hash": seen}, follow=True
    )
    assert "確認中に内容が変更されました" in response.content.decode()
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW


def test_emergency_shows_a_red_banner_and_no_approve_button_for_a_reviewer(
    client, drafter, reviewer, supervisor
):
    broadcast = submitted(drafter, priority="emergency", emergency_reason="大雨警報")
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "緊急配信" in html and "kw-emergency" in html
    assert "approve-form" not in html
    response = client.post(
        reverse("broadcasts:approve", args=[broadcast.pk]), {"seen_hash": broadcast.content_hash}
    )
    assert response.status_code == 403


def test_reject_requires_a_comment(client, drafter, reviewer):
    broadcast = submitted(drafter)
    client.force_login(reviewer)
    response = client.post(reverse("broadcasts:reject", args=[broadcast.pk]), {"comment": ""})
    assert response.status_code == 400
    assert "差し戻しの理由を入力してください。" in response.content.decode()
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW


def test_rejection_returns_it_to_the_author_with_the_comment(client, drafter, reviewer):
    broadcast = submitted(drafter)
    client.force_login(reviewer)
    client.post(
        reverse("broadcasts:reject", args=[broadcast.pk]), {"comment": "日付を確認してください"}
    )
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.REJECTED
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "日付を確認してください" in html
    assert reverse("broadcasts:edit", args=[broadcast.pk]) in html
    assert "承認を申請する" in html


def test_cancel_asks_for_confirmation_then_cancels(client, drafter, reviewer):
    broadcast = submitted(drafter)
    client.force_login(reviewer)
    url = reverse("broadcasts:cancel", args=[broadcast.pk])
    assert "元に戻せません" in client.get(url).content.decode()
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_REVIEW
    assert client.post(url, {"comment": "中止"}).status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.CANCELLED


def test_timeline_shows_each_step_in_jst(client, drafter, reviewer):
    broadcast = submitted(drafter)
    client.force_login(reviewer)
    client.post(reverse("broadcasts:reject", args=[broadcast.pk]), {"comment": "要修正"})
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    timeline = html[html.index('data-testid="timeline"') :]
    assert "11/25(水) 10:00" in timeline
    for verb in ("承認申請", "差し戻し", "要修正"):
        assert verb in timeline


def test_detail_shows_delivery_progress_and_errors_to_staff(client, drafter):
    broadcast = BroadcastFactory(
        author=drafter,
        status=Broadcast.Status.NEEDS_ATTENTION,
        deliveries_total=4,
        deliveries_accepted=3,
        last_error="LINE API 429: You have reached your monthly limit.",
    )
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    assert "3 / 4 回分の送信を LINE が受け付けました（75%）" in html
    assert "You have reached your monthly limit." in html


def test_other_peoples_drafts_are_hidden(client, drafter, other_drafter):
    broadcast = BroadcastFactory(author=drafter)
    client.force_login(other_drafter)
    assert client.get(reverse("broadcasts:detail", args=[broadcast.pk])).status_code == 404


# --- templates ----------------------------------------------------------------------------------


def test_save_as_template_and_start_a_draft_from_it(client, drafter):
    broadcast = BroadcastFactory(
        author=drafter,
        messages=[text_message("広報かしわ 12月1日号を発行しました。"), card_message()],
        categories=["koho_kashiwa"],
    )
    client.force_login(drafter)
    response = client.post(
        reverse("broadcasts:templates"),
        {"broadcast": broadcast.pk, "name": "広報かしわ発行のお知らせ"},
    )
    assert response.status_code == 302
    template = MessageTemplate.objects.get()
    assert template.name == "広報かしわ発行のお知らせ"
    assert template.messages == broadcast.messages
    assert list(template.categories.values_list("code", flat=True)) == ["koho_kashiwa"]
    assert (
        "広報かしわ発行のお知らせ" in client.get(reverse("broadcasts:templates")).content.decode()
    )
    html = client.get(reverse("broadcasts:create") + f"?template={template.pk}").content.decode()
    assert "広報かしわ 12月1日号を発行しました。" in html
    koho = Category.objects.get(code="koho_kashiwa").pk
    assert re.search(rf'value="{koho}" id="id_categories_\d+"[^>]*checked', html, re.S)


# --- lists ----------------------------------------------------------------------------------------


def make_rows(n: int, author) -> None:
    for i in range(n):
        BroadcastFactory(
            author=author,
            status=Broadcast.Status.SCHEDULED if i % 2 else Broadcast.Status.PENDING_REVIEW,
            scheduled_for=NOW + dt.timedelta(days=1) if i % 2 else None,
            categories=["childcare_education", "events"],
        )


@pytest.mark.parametrize("url", ["/broadcasts/", "/broadcasts/review/", "/broadcasts/?tab=held"])
def test_list_queries_do_not_grow_with_rows(
    client, drafter, reviewer, url, django_assert_max_num_queries
):
    client.force_login(reviewer)
    make_rows(5, drafter)
    with django_assert_max_num_queries(20) as small:
        assert client.get(url).status_code == 200
    make_rows(35, drafter)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


def test_list_filters_and_search(client, drafter, other_drafter, reviewer):
    BroadcastFactory(author=drafter, title="子育てフェスタ", status=Broadcast.Status.PENDING_REVIEW)
    BroadcastFactory(
        author=other_drafter,
        title="観光案内",
        messages=[text_message("手賀沼花火大会のご案内")],
        categories=["tourism_pr"],
        status=Broadcast.Status.SENT,
        sent_at=NOW,
    )
    client.force_login(reviewer)

    def titles(**params):
        html = client.get("/broadcasts/", params).content.decode()
        return {t for t in ("子育てフェスタ", "観光案内") if t in html}

    assert titles() == {"子育てフェスタ", "観光案内"}
    assert titles(q="花火") == {"観光案内"}
    assert titles(q="フェスタ") == {"子育てフェスタ"}
    assert titles(category=Category.objects.get(code="tourism_pr").pk) == {"観光案内"}
    assert titles(author=drafter.pk) == {"子育てフェスタ"}
    assert titles(status="sent") == {"観光案内"}
    assert titles(tab="sent") == {"観光案内"}
    assert titles(date_from="2026-11-26") == set()


def test_list_rows_show_badge_categories_and_jst_time(client, drafter):
    BroadcastFactory(
        author=drafter,
        status=Broadcast.Status.SCHEDULED,
        scheduled_for=dt.datetime(2026, 12, 1, 8, 30, tzinfo=JST),
        hold_reason="11/29(日)は閉庁日のため 12/1(月) 8:30 に送信されます",
    )
    client.force_login(drafter)
    html = client.get("/broadcasts/?tab=held").content.decode()
    assert "kw-status-scheduled" in html and "配信予定" in html
    assert "子育て・教育" in html
    assert "12/1(火) 8:30" in html


def test_drafters_do_not_see_other_drafters_drafts_in_lists(client, drafter, other_drafter):
    BroadcastFactory(author=drafter, title="自分の下書き")
    BroadcastFactory(author=other_drafter, title="他人の下書き")
    client.force_login(drafter)
    html = client.get("/broadcasts/").content.decode()
    assert "自分の下書き" in html
    assert "他人の下書き" not in html
