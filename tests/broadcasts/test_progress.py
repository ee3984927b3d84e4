"""Live progress of a send on its page and in the list (polled while sending)."""

from __future__ import annotations

from django.urls import reverse

from broadcasts import services
from broadcasts.models import Broadcast, Delivery

from .sending.helpers import approved_broadcast, jst


def sending_broadcast(drafter, reviewer, *, accepted: int, total: int) -> Broadcast:
    b = approved_broadcast(author=drafter, approver=reviewer, now=jst(2026, 12, 1, 10, 0))
    services.broadcasts_dispatch_due(now=jst(2026, 12, 1, 10, 0))
    Delivery.objects.bulk_create(
        [
            Delivery(
                broadcast=b,
                seq=i + 1,
                kind="multicast",
                status="accepted" if i < accepted else "pending",
            )
            for i in range(total)
        ]
    )
    Broadcast.objects.filter(pk=b.pk).update(
        deliveries_total=total, deliveries_accepted=accepted, recipient_count=total * 500
    )
    b.refresh_from_db()
    return b


def test_detail_polls_while_sending_and_stops_when_sent(client, drafter, reviewer):
    b = sending_broadcast(drafter, reviewer, accepted=3, total=8)
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:detail", args=[b.pk])).content.decode()
    assert "3 / 8 回分の送信を LINE が受け付けました（38%）" in page
    assert "宛先 4,000 人" in page
    assert f'hx-get="{reverse("broadcasts:progress", args=[b.pk])}"' in page

    Broadcast.objects.filter(pk=b.pk).update(deliveries_accepted=8, status="sent")
    fragment = client.get(reverse("broadcasts:progress", args=[b.pk])).content.decode()
    assert "8 / 8 回分の送信を LINE が受け付けました（100%）" in fragment
    assert "hx-get" not in fragment  # sent: the fragment stops polling


def test_list_shows_compact_progress_for_sending_rows(client, drafter, reviewer):
    b = sending_broadcast(drafter, reviewer, accepted=1, total=4)
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:list") + "?tab=all").content.decode()
    assert "1 / 4（25%）" in page
    assert f"{reverse('broadcasts:progress', args=[b.pk])}?compact=1" in page


def test_progress_is_not_shown_to_people_who_cannot_see_the_broadcast(
    client, drafter, other_drafter
):
    b = services.broadcast_create(
        author=drafter, title="下書き", categories=[], messages=[{"type": "text", "text": "x"}]
    )
    client.force_login(other_drafter)
    assert client.get(reverse("broadcasts:progress", args=[b.pk])).status_code == 404


def test_lists_paginate_and_keep_their_filters(client, drafter, reviewer):
    from tests.factories import SentBroadcastFactory

    for i in range(30):
        SentBroadcastFactory(author=drafter, title=f"お知らせ {i}")
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:list") + "?tab=sent&q=お知らせ").content.decode()
    assert "1 / 2" in page
    assert "page=2" in page and "tab=sent" in page
    page2 = client.get(reverse("broadcasts:list") + "?tab=sent&q=お知らせ&page=2").content.decode()
    assert "2 / 2" in page2
    assert page2.count('data-testid="broadcast-row"') == 5
