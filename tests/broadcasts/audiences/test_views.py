"""The targeting screen, the live count beside "all friends" and the panels on the compose,
review and emergency approval screens (issue 16)."""

from __future__ import annotations

from django.urls import reverse

from broadcasts.models import Area, Broadcast, BroadcastAudience, Language

from ..test_views_emergency import approve_url, verified
from .test_targeted_sends import (  # noqa: F401
    NOW,
    drafted,
    in_window,
    submitted_and_approved,
    town,
)

S = Broadcast.Status


def area_id(code: str) -> str:
    return str(Area.objects.get(code=code).pk)


def test_the_live_count_follows_unsaved_choices(client, town, drafter):  # noqa: F811
    b = drafted(drafter)
    client.force_login(drafter)
    url = reverse("broadcasts:audience_count", args=[b.pk])
    page = client.get(url, {"areas": [area_id("sample-chuo")]})  # include_unset unchecked
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="audience-total">20<' in html
    assert 'data-testid="audience-all">60' in html
    assert 'data-testid="audience-cost">20' in html
    # with followers who chose no area, and an English version
    html = client.get(
        url, {"areas": [area_id("sample-chuo")], "include_unset": "on", "variant_en": "Hello"}
    ).content.decode()
    assert 'data-testid="audience-total">40<' in html
    assert 'data-testid="audience-variant-en">10' in html  # i%4==0 among i%3 in (0, 2)
    assert 'data-testid="audience-variant-ja">30' in html


def test_bad_input_gets_a_page_not_a_500(client, town, drafter):  # noqa: F811
    b = drafted(drafter)
    client.force_login(drafter)
    url = reverse("broadcasts:audience_count", args=[b.pk])
    assert client.get(url, {"areas": ["x", "9" * 40], "languages": ["-1"]}).status_code == 200
    edit = reverse("broadcasts:audience_edit", args=[b.pk])
    response = client.post(edit, {"areas": ["9" * 40], "variant_en": "x" * 5001})
    assert response.status_code == 200
    assert "文字以内" in response.content.decode()
    assert not BroadcastAudience.objects.filter(broadcast=b, areas__isnull=False).exists()


def test_saving_targeting_after_approval_returns_it_to_review(
    client,
    town,  # noqa: F811
    drafter,
    reviewer,
):
    b = submitted_and_approved(drafted(drafter), drafter, reviewer)
    client.force_login(drafter)
    edit = reverse("broadcasts:audience_edit", args=[b.pk])
    page = client.get(edit)
    assert "承認済みです" in page.content.decode()
    response = client.post(
        edit,
        {
            "areas": [area_id("sample-hokubu")],
            "include_unset": "on",
            "languages": [str(Language.objects.get(code="en").pk)],
            "variant_en": "Notice",
        },
    )
    assert response.status_code == 302
    b.refresh_from_db()
    assert b.status == S.PENDING_REVIEW and not b.approved_hash
    assert list(
        BroadcastAudience.objects.get(broadcast=b).areas.values_list("code", flat=True)
    ) == ["sample-hokubu"]
    assert b.variants.get().messages == [{"type": "text", "text": "Notice"}]
    # The review screen shows the audience, the version and the counts.
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[b.pk])).content.decode()
    assert "北部地域（サンプル）" in html
    assert 'data-testid="audience-variants">日本語、英語' in html
    # The diff against what was approved names the change (and shows the new version).
    assert "配信対象の絞り込み・言語版" in html and "sample-hokubu" in html
    # English readers (i % 4 == 0) in hokubu (i % 3 == 1) or with no area (i % 3 == 2)
    assert 'data-testid="audience-total">10<' in html


def test_another_drafter_cannot_change_the_audience(client, town, drafter, other_drafter):  # noqa: F811
    b = drafted(drafter)
    client.force_login(other_drafter)
    assert client.get(reverse("broadcasts:audience_edit", args=[b.pk])).status_code in (403, 404)
    response = client.post(
        reverse("broadcasts:audience_edit", args=[b.pk]), {"areas": [area_id("sample-chuo")]}
    )
    assert response.status_code in (403, 404)
    assert not BroadcastAudience.objects.get(broadcast=b).areas.exists()


def test_the_emergency_screen_asks_for_the_targeted_count(
    client,
    town,  # noqa: F811
    drafter,
    supervisor,
):
    b = drafted(
        drafter,
        areas=["sample-chuo"],
        include_unset=False,
        priority=Broadcast.Priority.EMERGENCY,
    )
    from broadcasts import services

    services.broadcast_submit(broadcast=b, actor=drafter)
    client.force_login(supervisor)
    verified(client)
    html = client.get(approve_url(b)).content.decode()
    assert 'data-testid="recipient-count">20<' in html
    assert 'data-testid="audience-areas">中央地域（サンプル）' in html


# --- statistics, 運用状況 and the lists' admin ---------------------------------------------------


def test_targeted_send_statistics_appear_on_the_page_and_in_the_csv(
    client,
    town,  # noqa: F811
    drafter,
    reviewer,
    line_sandbox,
    in_window,  # noqa: F811
):
    import csv
    import datetime as dt
    import io

    from broadcasts.services import insight

    from .test_targeted_sends import send_now

    line_sandbox.state.configure(insight_delay_days=0, insight_privacy_threshold=0)
    b = submitted_and_approved(drafted(drafter, areas=["sample-chuo"]), drafter, reviewer)
    assert send_now(b).status == "sent"
    b.refresh_from_db()
    stats = insight.broadcast_stats_fetch(broadcast=b, now=in_window + dt.timedelta(hours=1))
    assert stats.unique_impression is not None
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:broadcast_stats", args=[b.pk])).content.decode()
    assert 'data-testid="stats-unit"' in page
    assert f'data-testid="stats-impression">{stats.unique_impression}' in page
    day = in_window.date().isoformat()
    response = client.get(reverse("broadcasts:stats_csv") + f"?date_from={day}&date_to={day}")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    [row] = [r for r in rows[1:] if r[0] == str(b.pk)]
    assert row[11] == str(stats.unique_impression)


def test_ops_says_once_that_line_refused_units(client, admin_user, db):
    from broadcasts.services import audiences

    client.force_login(admin_user)
    page = client.get(reverse("broadcasts:ops")).content.decode()
    assert 'data-testid="units-used"' in page and "0 / 1,000" in page
    for _ in range(2):
        audiences.aggregation_refusal_record(message="HTTP 403: not available", now=NOW)
    page = client.get(reverse("broadcasts:ops")).content.decode()
    assert page.count('data-testid="units-refused"') == 1
    assert "利用申請が必要です" in page


def test_admins_manage_the_lists_with_an_audit_trail_and_cannot_delete(client, admin_user):
    from broadcasts.models import BroadcastEvent
    from broadcasts.views.otp import SESSION_KEY

    client.force_login(admin_user)
    session = client.session
    session[SESSION_KEY] = NOW.isoformat()
    session.save()
    add = reverse("admin:broadcasts_area_add")
    response = client.post(
        add, {"code": "takayanagi", "label": "高柳", "sort_order": 9, "is_active": "on"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    area = Area.objects.get(code="takayanagi")
    assert not area.is_sample
    assert BroadcastEvent.objects.filter(verb="audience_choice_saved").count() == 1
    delete = reverse("admin:broadcasts_area_delete", args=[area.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Area.objects.filter(pk=area.pk).exists()
    ja = Language.objects.get(code="ja")
    change = reverse("admin:broadcasts_language_change", args=[ja.pk])
    client.post(
        change, {"label": "日本語", "native_label": "日本語", "sort_order": 1}
    )  # is_active unchecked
    ja.refresh_from_db()
    assert ja.is_active


def test_the_checklist_checks_each_language_version(town, drafter, line_sandbox):  # noqa: F811
    from broadcasts import checks

    b = drafted(drafter, variants={"en": "Call 04-7167-1111 or see https://evil.example/x"})
    results = {r.label: r for r in checks.broadcast_checks(b)}
    assert results["英語版: LINE の事前確認"].level == "ok"
    assert results["英語版: 個人情報の可能性（ポリシー10）"].level != "ok"  # the phone number
    assert results["英語版: リンク先のドメイン"].level != "ok"  # not an allowed domain
    assert any(r.path == "/v2/bot/message/validate/multicast" for r in line_sandbox.requests())
