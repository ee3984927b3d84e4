"""Test sends: a draft's messages to the staff test recipients only, before approval.

A test send never reaches citizens: the recipients are exactly the active followers flagged
``is_staff_test_recipient``, sent with multicast (never the broadcast API), and the audit row
is marked 【テスト】. It changes no state, so it takes no row lock while LINE is called."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .. import permissions, selectors
from ..content import Problem, check_messages
from ..line.gateway import get_gateway
from ..models import Broadcast, User
from .audit import audit_record
from .errors import BroadcastInvalid, BroadcastPermissionDenied, InvalidTransition

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


def broadcast_send_test(*, broadcast: Broadcast, actor: User) -> TestSendResult:
    """Multicast the broadcast's current messages to the staff test recipients.

    Raises ``BroadcastPermissionDenied``, ``InvalidTransition`` (not a draft any more),
    ``BroadcastInvalid`` (bad messages or nobody to send to) or the gateway's ``LineError``."""
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
