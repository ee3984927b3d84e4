"""Build broadcasts the way staff do: through the services, with a real approval."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from broadcasts import selectors, services
from broadcasts.models import Broadcast, Category, Follower, User
from broadcasts.models.bits import mask_of

JST = ZoneInfo("Asia/Tokyo")


def jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


def approved_broadcast(
    *,
    author: User,
    approver: User,
    text: str = "子育て支援センターからのお知らせです。",
    audience: str = Broadcast.Audience.SUBSCRIBERS,
    categories: list[str] | None = None,
    priority: str = Broadcast.Priority.NORMAL,
    requested_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
    title: str = "お知らせ",
) -> Broadcast:
    cats = list(Category.objects.filter(code__in=categories or ["childcare_education"]))
    broadcast = services.broadcast_create(
        author=author,
        title=title,
        categories=cats,
        messages=[{"type": "text", "text": text}],
        audience=audience,
        priority=priority,
        emergency_reason="避難指示の発令" if priority == Broadcast.Priority.EMERGENCY else "",
        requested_at=requested_at,
    )
    services.broadcast_submit(broadcast=broadcast, actor=author)
    return approve(broadcast, approver, now=now)


def approve(broadcast: Broadcast, approver: User, *, now: dt.datetime | None = None) -> Broadcast:
    """Approve as staff do; emergencies with the typed count and a fresh second factor."""
    confirmation = None
    if broadcast.is_emergency:
        count = selectors.recipient_count(
            broadcast.audience, list(broadcast.categories.values_list("id", flat=True))
        )
        confirmation = services.EmergencyConfirmation(
            typed_count=str(count), second_factor_verified_at=now or timezone.now()
        )
    return services.broadcast_approve(
        broadcast=broadcast, actor=approver, now=now, emergency=confirmation
    )


def make_followers(
    user_ids: list[str], categories: list[str] | None = None, staff: int = 0
) -> list[Follower]:
    cats = list(Category.objects.filter(code__in=categories or ["childcare_education"]))
    followers = Follower.objects.bulk_create(
        [
            Follower(
                line_user_id=uid,
                is_staff_test_recipient=index < staff,
                category_bits=mask_of(c.bit for c in cats),
            )
            for index, uid in enumerate(user_ids)
        ]
    )
    through = Follower.categories.through
    through.objects.bulk_create(
        [through(follower_id=f.pk, category_id=c.pk) for f in followers for c in cats]
    )
    return followers


def send_while_the_lease_moves(
    broadcast: Broadcast, sandbox: Any, *, owner: str, new_owner: str
) -> Any:
    """Run the send as ``owner`` in a thread; as soon as LINE has its first request (the
    caller slows LINE down), hand the lease to ``new_owner`` as if ``owner`` had been presumed
    dead. Returns the run's outcome."""
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(services.broadcast_send(broadcast_id=broadcast.pk, owner=owner))
        finally:
            connection.close()

    thread = threading.Thread(target=send)
    thread.start()
    deadline = time.monotonic() + 10
    while not sandbox.state.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    Broadcast.objects.filter(pk=broadcast.pk).update(lease_owner=new_owner)
    thread.join(timeout=20)
    assert outcome, "the send did not end"
    return outcome[0]
