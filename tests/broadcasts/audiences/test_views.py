"""The targeting screen, the live count beside "all friends" and the panels on the compose,
review and emergency approval screens (issue 16)."""

from __future__ import annotations

from django.urls import reverse

from broadcasts.models import Area, Broadcast, BroadcastAudience, Language

from ..test_views_emergency import approve_url, verified
from .test_targeted_sends import drafted, submitted_and_approved, town  # noqa: F401

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
