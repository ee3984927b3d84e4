"""Test sends: a draft's messages to the staff test recipients only, before approval.

A test send never reaches citizens: the recipients are exactly the active followers flagged
``is_staff_test_recipient``, sent with multicast (never the broadcast API), and the audit row
is marked 【テスト】. It changes no state, so the broadcast is not locked while LINE is called.

Each test send costs LINE quota and buzzes the phones of the staff test recipients, so one
person may make at most ``settings.TEST_SEND_LIMIT`` of them in ``TEST_SEND_WINDOW_MINUTES``
(the audit rows the test sends write are the count, so every web process sees the same one).
To make the count hold for requests sent in parallel, a test send locks the sender's own user
row from the count until its audit row is written: one person's test sends go one after
another, and nobody else waits. (SQLite, the single-machine install, serializes every write
anyway.)"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from .. import permissions, selectors
from ..content import Problem, check_messages
from ..line.gateway import get_gateway
from ..models import Broadcast, BroadcastEvent, User
from .audit import audit_record
from .errors import (
    BroadcastInvalid,
    BroadcastPermissionDenied,
    InvalidTransition,
    TooManyTestSends,
)

TEST_MARKER = "【テスト】"
MULTICAST_CHUNK = 500
TESTABLE = frozenset(
    {Broadcast.Status.DRAFT, Broadcast.Status.REJECTED, Broadcast.Status.PENDING_REVIEW}
)


@dataclass(frozen=True)
class TestSendResult:
    recipient_count: int
    request_ids: list[str]


def staff_test_recipient_ids() -> list[str]:
    return list(
        selectors.followers_for_audience(Broadcast.Audience.STAFF_TEST, [])
        .filter(is_staff_test_recipient=True)
        .order_by("id")
        .values_list("line_user_id", flat=True)
    )


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=settings.TEST_SEND_WINDOW_MINUTES)


def _test_send_retry_at(*, actor: User, now: dt.datetime) -> dt.datetime | None:
    """When ``actor`` may test-send again, or ``None`` if they may now.

    A test send counts while it is younger than the window; the next one is allowed as soon as
    the ``limit``-th most recent has left it. Failed sends wrote no audit row and do not count."""
    limit = settings.TEST_SEND_LIMIT
    window = _window()
    recent = list(
        BroadcastEvent.objects.filter(actor=actor, verb="test_send", created_at__gt=now - window)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return None
    return recent[limit - 1] + window


def broadcast_send_test(*, broadcast: Broadcast, actor: User, now: dt.datetime) -> TestSendResult:
    """Multicast the broadcast's current messages to the staff test recipients.

    Raises ``BroadcastPermissionDenied``, ``InvalidTransition`` (not a draft any more),
    ``BroadcastInvalid`` (bad messages or nobody to send to), ``TooManyTestSends`` (this
    person's limit is used up; nothing is sent) or the gateway's ``LineError``."""
    broadcast = Broadcast.objects.get(pk=broadcast.pk)
    if not permissions.can_send_test(actor, broadcast):
        raise BroadcastPermissionDenied("この配信をテスト送信する権限がありません。")
    if broadcast.status not in TESTABLE:
        raise InvalidTransition(broadcast.status, "テスト送信")
    problems = check_messages(broadcast.messages)
    if problems:
        raise BroadcastInvalid(problems)
    recipients = staff_test_recipient_ids()
    if not recipients:
        raise BroadcastInvalid(
            [Problem("audience", "職員テスト受信者が登録されていないため、テスト送信できません。")]
        )
    with transaction.atomic():
        # The per-person mutex: a second request by the same person waits here until the
        # first has written its audit row, and then counts it.
        User.objects.select_for_update().only("pk").get(pk=actor.pk)
        retry_at = _test_send_retry_at(actor=actor, now=now)
        if retry_at is not None:
            raise TooManyTestSends(
                limit=settings.TEST_SEND_LIMIT,
                window=_window(),
                retry_at=retry_at,
                now=now,
            )
        gateway = get_gateway()
        request_ids = []
        for start in range(0, len(recipients), MULTICAST_CHUNK):
            result = gateway.multicast(
                to=recipients[start : start + MULTICAST_CHUNK],
                messages=broadcast.messages,
                retry_key=uuid.uuid4(),
                notification_disabled=broadcast.notification_disabled,
            )
            request_ids.append(result.request_id)
        audit_record(
            verb="test_send",
            actor=actor,
            broadcast=broadcast,
            from_status=broadcast.status,
            to_status=broadcast.status,
            comment=f"{TEST_MARKER} 職員テスト受信者 {len(recipients)} 人に送信しました。",
            data={
                "recipient_count": len(recipients),
                "request_ids": request_ids,
                "content_hash": broadcast.content_hash,
            },
        )
    return TestSendResult(recipient_count=len(recipients), request_ids=request_ids)
