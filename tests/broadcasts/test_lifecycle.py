"""The lifecycle services up to sending: create, update, submit, withdraw, approve, reject,
cancel — four eyes, the database constraint, approval bound to the content hash, audit rows —
and the test send that only ever reaches staff test recipients."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError, transaction

from broadcasts.models import Broadcast, BroadcastEvent, Category, Follower
from broadcasts.schedule import JST
from broadcasts.services import (
    BroadcastInvalid,
    BroadcastPermissionDenied,
    InvalidTransition,
    StaleApproval,
    broadcast_approve,
    broadcast_cancel,
    broadcast_create,
    broadcast_reject,
    broadcast_send_test,
    broadcast_submit,
    broadcast_update,
    broadcast_withdraw,
    compute_hash,
)
from tests.factories import card_message, image_message, text_message

S = Broadcast.Status
# Wednesday 2026-11-25 10:00 JST: an opening day, inside the window.
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=JST)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def childcare() -> list[Category]:
    return [Category.objects.get(code="childcare_education")]


def create(author, **kwargs) -> Broadcast:
    defaults = {
        "title": "子育て応援フェア",
        "categories": childcare(),
        "messages": [
            text_message("子育て応援フェアを開催します。"),
            image_message(),
            card_message(),
        ],
    }
    defaults.update(kwargs)
    return broadcast_create(author=author, **defaults)


def update(broadcast, actor, **changes) -> Broadcast:
    values = {
        "title": broadcast.title,
        "categories": list(broadcast.categories.all()),
        "messages": broadcast.messages,
        "audience": broadcast.audience,
        "requested_at": broadcast.requested_at,
        "priority": broadcast.priority,
        "emergency_reason": broadcast.emergency_reason,
        "notification_disabled": broadcast.notification_disabled,
    }
    values.update(changes)
    return broadcast_update(broadcast=broadcast, actor=actor, **values)


def verbs(broadcast) -> list[str]:
    return list(
        BroadcastEvent.objects.filter(broadcast=broadcast)
        .order_by("created_at", "id")
        .values_list("verb", flat=True)
    )


# --- create / update ----------------------------------------------------------------------


def test_create_writes_a_draft_with_its_hash_and_an_audit_row(drafter):
    broadcast = create(drafter)
    assert broadcast.status == S.DRAFT
    assert broadcast.division == drafter.division
    assert broadcast.content_hash == compute_hash(broadcast)
    event = BroadcastEvent.objects.get(broadcast=broadcast)
    assert (event.verb, event.actor, event.to_status) == ("create", drafter, S.DRAFT)
    assert event.data["after"]["categories"] == ["childcare_education"]


def test_user_without_drafting_rights_cannot_create(admin_user):
    with pytest.raises(BroadcastPermissionDenied):
        create(admin_user)


def test_emergency_needs_a_reason(drafter):
    with pytest.raises(BroadcastInvalid) as exc:
        create(drafter, priority=Broadcast.Priority.EMERGENCY)
    assert exc.value.problems[0].field == "emergency_reason"


def test_the_emergency_category_makes_an_emergency(drafter):
    broadcast = create(
        drafter,
        categories=[Category.objects.get(code="emergency")],
        emergency_reason="大雨特別警報",
    )
    assert broadcast.is_emergency


def test_update_records_what_changed(drafter):
    broadcast = create(drafter)
    update(broadcast, drafter, title="子育て応援フェア（変更）")
    event = BroadcastEvent.objects.filter(broadcast=broadcast, verb="edit").get()
    assert event.data["changed"] == ["title"]
    assert event.data["before"]["title"] == "子育て応援フェア"


def test_another_drafter_cannot_edit(drafter, other_drafter):
    broadcast = create(drafter)
    with pytest.raises(BroadcastPermissionDenied):
        update(broadcast, other_drafter, title="横取り")


# --- submit / withdraw ---------------------------------------------------------------------


def test_submit_and_withdraw(drafter):
    broadcast = create(drafter)
    broadcast = broadcast_submit(broadcast=broadcast, actor=drafter)
    assert broadcast.status == S.PENDING_REVIEW
    assert broadcast.submitted_at == NOW
    broadcast = broadcast_withdraw(broadcast=broadcast, actor=drafter)
    assert broadcast.status == S.DRAFT
    assert verbs(broadcast) == ["create", "submit", "withdraw"]


def test_only_the_author_submits(drafter, other_drafter):
    broadcast = create(drafter)
    with pytest.raises(BroadcastPermissionDenied):
        broadcast_submit(broadcast=broadcast, actor=other_drafter)


def test_submit_refuses_invalid_content(drafter):
    broadcast = create(drafter, messages=[], categories=[])
    with pytest.raises(BroadcastInvalid) as exc:
        broadcast_submit(broadcast=broadcast, actor=drafter)
    fields = {p.field for p in exc.value.problems}
    assert fields == {"messages", "categories"}
    broadcast.refresh_from_db()
    assert broadcast.status == S.DRAFT


def test_submit_twice_is_an_invalid_transition(drafter):
    broadcast = broadcast_submit(broadcast=create(drafter), actor=drafter)
    with pytest.raises(InvalidTransition) as exc:
        broadcast_submit(broadcast=broadcast, actor=drafter)
    assert "「承認待ち」の配信には「承認申請」を行えません。" in str(exc.value)


# --- approve: four eyes, the hash ------------------------------------------------------------


def pending(drafter, **kwargs) -> Broadcast:
    return broadcast_submit(broadcast=create(drafter, **kwargs), actor=drafter)


def test_reviewer_approves_and_it_is_scheduled(drafter, reviewer):
    broadcast = pending(drafter)
    seen = compute_hash(broadcast)
    broadcast = broadcast_approve(broadcast=broadcast, actor=reviewer, seen_hash=seen, comment="OK")
    assert broadcast.status == S.SCHEDULED
    assert broadcast.approved_by == reviewer
    assert broadcast.approved_hash == seen
    assert broadcast.scheduled_for == NOW
    event = BroadcastEvent.objects.get(broadcast=broadcast, verb="approve")
    assert (event.actor, event.comment, event.from_status, event.to_status) == (
        reviewer,
        "OK",
        S.PENDING_REVIEW,
        S.SCHEDULED,
    )
    assert event.data["approved_hash"] == seen


def test_nobody_approves_their_own_broadcast(reviewer):
    broadcast = pending(reviewer)
    with pytest.raises(BroadcastPermissionDenied, match="自分が起案した配信は承認できません"):
        broadcast_approve(broadcast=broadcast, actor=reviewer)
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert "approve" not in verbs(broadcast)


def test_a_drafter_cannot_approve(drafter, other_drafter):
    with pytest.raises(BroadcastPermissionDenied):
        broadcast_approve(broadcast=pending(drafter), actor=other_drafter)


def test_the_database_refuses_self_approval(drafter):
    broadcast = create(drafter)
    with pytest.raises(IntegrityError), transaction.atomic():
        Broadcast.objects.filter(pk=broadcast.pk).update(approved_by=drafter)


def test_emergency_needs_a_supervisor(drafter, reviewer, supervisor):
    broadcast = pending(drafter, priority=Broadcast.Priority.EMERGENCY, emergency_reason="断水")
    with pytest.raises(BroadcastPermissionDenied, match="承認者だけ"):
        broadcast_approve(broadcast=broadcast, actor=reviewer)
    # A supervisor also needs the typed count and a fresh second factor
    # (tests/broadcasts/test_emergency.py covers those in detail).
    from django.utils import timezone

    from broadcasts.services import EmergencyConfirmation, SecondFactorRequired

    with pytest.raises(SecondFactorRequired):
        broadcast_approve(broadcast=broadcast, actor=supervisor)
    confirmation = EmergencyConfirmation(typed_count="0", second_factor_verified_at=timezone.now())
    broadcast = broadcast_approve(broadcast=broadcast, actor=supervisor, emergency=confirmation)
    assert broadcast.status == S.SCHEDULED


def test_approval_is_bound_to_what_the_reviewer_saw(drafter, reviewer):
    broadcast = pending(drafter)
    seen = compute_hash(broadcast)
    update(broadcast, drafter, messages=[text_message("こっそり差し替え")])
    with pytest.raises(StaleApproval):
        broadcast_approve(broadcast=broadcast, actor=reviewer, seen_hash=seen)
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert broadcast.approved_by is None


def test_an_edit_after_approval_sends_it_back_to_review(drafter, reviewer):
    broadcast = pending(drafter)
    broadcast = broadcast_approve(broadcast=broadcast, actor=reviewer)
    broadcast = update(broadcast, drafter, messages=[text_message("日時を訂正しました。")])
    assert broadcast.status == S.PENDING_REVIEW
    assert broadcast.approved_by is None
    assert broadcast.approved_hash == ""
    assert broadcast.scheduled_for is None
    assert verbs(broadcast) == ["create", "submit", "approve", "edit", "reopen"]


def test_an_edit_that_changes_nothing_keeps_the_approval(drafter, reviewer):
    broadcast = broadcast_approve(broadcast=pending(drafter), actor=reviewer)
    broadcast = update(broadcast, drafter)
    assert broadcast.status == S.SCHEDULED
    assert broadcast.approved_by == reviewer


def test_a_closed_day_holds_the_send_with_a_reason(drafter, reviewer):
    broadcast = pending(drafter, requested_at=dt.datetime(2026, 11, 29, 10, 0, tzinfo=JST))
    broadcast = broadcast_approve(broadcast=broadcast, actor=reviewer)
    assert broadcast.scheduled_for == dt.datetime(2026, 11, 30, 8, 30, tzinfo=JST)
    assert broadcast.hold_reason == "11/29(日)は閉庁日のため 11/30(月) 8:30 に送信されます"


# --- reject / cancel ---------------------------------------------------------------------------


def test_reject_needs_a_comment_and_returns_it_to_the_author(drafter, reviewer):
    broadcast = pending(drafter)
    with pytest.raises(BroadcastInvalid):
        broadcast_reject(broadcast=broadcast, actor=reviewer, comment="  ")
    broadcast = broadcast_reject(broadcast=broadcast, actor=reviewer, comment="写真を差し替えて")
    assert broadcast.status == S.REJECTED
    event = BroadcastEvent.objects.get(broadcast=broadcast, verb="reject")
    assert event.comment == "写真を差し替えて"
    # The author edits and submits again.
    broadcast = update(broadcast, drafter, messages=[text_message("写真を差し替えました。")])
    broadcast = broadcast_submit(broadcast=broadcast, actor=drafter)
    assert broadcast.status == S.PENDING_REVIEW


def test_the_author_cannot_reject_their_own(reviewer):
    with pytest.raises(BroadcastPermissionDenied):
        broadcast_reject(broadcast=pending(reviewer), actor=reviewer, comment="自分で")


@pytest.mark.parametrize("stage", ["draft", "pending", "scheduled"])
def test_cancel_any_time_before_sending(drafter, reviewer, stage):
    broadcast = create(drafter)
    if stage != "draft":
        broadcast = broadcast_submit(broadcast=broadcast, actor=drafter)
    if stage == "scheduled":
        broadcast = broadcast_approve(broadcast=broadcast, actor=reviewer)
    broadcast = broadcast_cancel(broadcast=broadcast, actor=reviewer, comment="中止になりました")
    assert broadcast.status == S.CANCELLED
    assert verbs(broadcast)[-1] == "cancel"


def test_a_sent_broadcast_cannot_be_cancelled(drafter, reviewer):
    broadcast = create(drafter)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENT)
    with pytest.raises(InvalidTransition):
        broadcast_cancel(broadcast=broadcast, actor=reviewer)


def test_another_drafter_cannot_cancel(drafter, other_drafter):
    with pytest.raises(BroadcastPermissionDenied):
        broadcast_cancel(broadcast=create(drafter), actor=other_drafter)


def test_every_step_writes_one_audit_row(drafter, reviewer):
    broadcast = pending(drafter)
    broadcast = broadcast_reject(broadcast=broadcast, actor=reviewer, comment="修正を")
    broadcast = update(broadcast, drafter, title="修正版")
    broadcast = broadcast_submit(broadcast=broadcast, actor=drafter)
    broadcast = broadcast_approve(broadcast=broadcast, actor=reviewer)
    broadcast = broadcast_cancel(broadcast=broadcast, actor=drafter)
    assert verbs(broadcast) == ["create", "submit", "reject", "edit", "submit", "approve", "cancel"]


# --- test send ---------------------------------------------------------------------------------


@pytest.fixture
def sandbox_followers(line_sandbox):
    """Our follower table mirrors the sandbox's: 20 followers, the first 3 staff."""
    staff = set(line_sandbox.staff_ids())
    for user_id in line_sandbox.follower_ids():
        Follower.objects.create(line_user_id=user_id, is_staff_test_recipient=user_id in staff)
    return line_sandbox


def test_test_send_reaches_only_staff_test_recipients(drafter, sandbox_followers):
    sandbox = sandbox_followers
    broadcast = create(drafter)
    result = broadcast_send_test(broadcast=broadcast, actor=drafter, now=NOW)
    staff = sorted(sandbox.staff_ids())
    assert result.recipient_count == 3
    deliveries = sandbox.deliveries()
    assert len(deliveries) == 1
    assert deliveries[0].kind == "multicast"
    assert sorted(deliveries[0].recipients) == staff
    assert list(deliveries[0].messages) == broadcast.messages
    citizens = set(sandbox.follower_ids()) - set(staff)
    assert all(not sandbox.inbox(user_id) for user_id in citizens)
    assert not sandbox.deliveries(endpoint="broadcast")
    event = BroadcastEvent.objects.get(broadcast=broadcast, verb="test_send")
    assert event.comment.startswith("【テスト】")
    assert event.data["recipient_count"] == 3
    broadcast.refresh_from_db()
    assert broadcast.status == S.DRAFT  # a test send changes nothing


def test_each_test_send_uses_a_fresh_retry_key(drafter, sandbox_followers):
    broadcast = create(drafter)
    broadcast_send_test(broadcast=broadcast, actor=drafter, now=NOW)
    broadcast_send_test(broadcast=broadcast, actor=drafter, now=NOW)
    keys = [d.retry_key for d in sandbox_followers.deliveries()]
    assert len(keys) == 2 and len(set(keys)) == 2 and all(keys)


def test_unfollowed_staff_are_not_sent_to(drafter, sandbox_followers):
    first = Follower.objects.filter(is_staff_test_recipient=True).order_by("id").first()
    first.unfollowed_at = NOW
    first.save()
    result = broadcast_send_test(broadcast=create(drafter), actor=drafter, now=NOW)
    assert result.recipient_count == 2
    assert first.line_user_id not in sandbox_followers.deliveries()[0].recipients


def test_test_send_without_staff_recipients_is_refused(drafter, line_sandbox):
    Follower.objects.create(line_user_id="U" + "0" * 32)
    with pytest.raises(BroadcastInvalid, match="職員テスト受信者が登録されていない"):
        broadcast_send_test(broadcast=create(drafter), actor=drafter, now=NOW)
    assert not line_sandbox.deliveries()


def test_test_send_is_for_the_author_or_reviewers(drafter, other_drafter, sandbox_followers):
    with pytest.raises(BroadcastPermissionDenied):
        broadcast_send_test(broadcast=create(drafter), actor=other_drafter, now=NOW)


def test_test_send_is_refused_after_approval(drafter, reviewer, sandbox_followers):
    broadcast = broadcast_approve(broadcast=pending(drafter), actor=reviewer)
    with pytest.raises(InvalidTransition):
        broadcast_send_test(broadcast=broadcast, actor=drafter, now=NOW)
