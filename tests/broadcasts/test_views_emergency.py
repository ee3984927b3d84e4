"""The emergency path's screens: the supervisor's approval screen, the refusals, withdrawal,
one-click corrections and drills. (The services are tested in test_emergency.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from broadcasts import selectors, services
from broadcasts.models import Broadcast, Category, RichMenu
from broadcasts.services import compute_hash
from broadcasts.views.otp import SESSION_KEY
from tests.factories import SentBroadcastFactory

from .sending.helpers import make_followers
from .test_emergency import emergency_draft

S = Broadcast.Status
FOLLOWERS = 12


@pytest.fixture
def followers(db):
    return make_followers([f"U{i:032x}" for i in range(FOLLOWERS)], ["disaster_crime"], staff=2)


@pytest.fixture
def pending(drafter, followers) -> Broadcast:
    return emergency_draft(drafter)


def approve_url(broadcast: Broadcast) -> str:
    return reverse("broadcasts:emergency_approve", args=[broadcast.pk])


def verified(client, at: dt.datetime | None = None) -> None:
    """As if the user had just entered their TOTP code (what otp_verify stores)."""
    session = client.session
    session[SESSION_KEY] = (at or timezone.now()).isoformat()
    session.save()


def post_approval(client, broadcast: Broadcast, **data):
    form = {"seen_hash": compute_hash(broadcast), "typed_count": str(FOLLOWERS), **data}
    return client.post(approve_url(broadcast), form)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


# --- who gets the screen ------------------------------------------------------------------
def test_the_author_cannot_open_or_post_and_is_told_why(client, supervisor, followers):
    broadcast = emergency_draft(supervisor)  # a supervisor's own emergency
    client.force_login(supervisor)
    verified(client)
    response = client.get(approve_url(broadcast))
    assert response.status_code == 403
    assert "自分が起案した緊急配信は承認できません" in response.content.decode()
    response = post_approval(client, broadcast)
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == S.PENDING_REVIEW
    assert not broadcast.events.filter(verb="approve").exists()


def test_a_drafter_author_is_told_why(client, drafter, pending):
    client.force_login(drafter)
    response = client.get(approve_url(pending))
    assert response.status_code == 403
    assert "自分が起案した" in response.content.decode()


def test_a_reviewer_gets_403(client, reviewer, pending):
    client.force_login(reviewer)
    verified(client)
    response = client.get(approve_url(pending))
    assert response.status_code == 403
    assert "承認者（管理職）だけ" in response.content.decode()
    assert post_approval(client, pending).status_code == 403
    pending.refresh_from_db()
    assert pending.status == S.PENDING_REVIEW


def test_an_ordinary_broadcast_has_no_emergency_screen(client, supervisor, drafter, category):
    broadcast = services.broadcast_create(
        author=drafter,
        title="通常",
        categories=[category],
        messages=[{"type": "text", "text": "お知らせ"}],
    )
    client.force_login(supervisor)
    assert client.get(approve_url(broadcast)).status_code == 404


# --- the screen ---------------------------------------------------------------------------
def test_the_screen_shows_what_will_be_sent(client, supervisor, pending):
    client.force_login(supervisor)
    verified(client)
    response = client.get(approve_url(pending))
    assert response.status_code == 200
    html = response.content.decode()
    assert "kw-ea-live" in html and "緊急配信</h1>" in html
    assert "利根川の水位上昇により避難指示を発令しました。" in html  # the exact preview
    assert '<span class="kw-ea-count" data-testid="recipient-count">12</span>' in html
    assert "すべての友だち" in html
    assert "防災・防犯" in html
    assert "河川の氾濫危険水位超過" in html
    assert "drafter" in html  # the author
    assert f'value="{compute_hash(pending)}"' in html  # seen_hash
    assert 'data-testid="second-factor-ok"' in html


def test_without_a_recent_second_factor_the_page_asks_for_it(client, supervisor, pending):
    client.force_login(supervisor)
    response = client.get(approve_url(pending))
    html = response.content.decode()
    assert "承認の前に二要素認証が必要です。" in html
    otp = reverse("otp_verify") + "?next=" + approve_url(pending).replace("/", "%2F")
    assert f'href="{otp}"' in html


def test_without_a_recent_second_factor_the_post_is_refused(client, supervisor, pending):
    client.force_login(supervisor)
    verified(client, timezone.now() - dt.timedelta(minutes=6))  # too old
    response = post_approval(client, pending, comment="確認しました")
    assert response.status_code == 403
    html = response.content.decode()
    assert "5分以内の二要素認証" in html
    assert 'value="12"' in html  # what was typed is kept
    assert "確認しました" in html
    pending.refresh_from_db()
    assert pending.status == S.PENDING_REVIEW


def test_a_wrong_count_is_shown_next_to_the_field_and_nothing_is_lost(client, supervisor, pending):
    client.force_login(supervisor)
    verified(client)
    response = post_approval(client, pending, typed_count="11", comment="避難所の開設も確認")
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="typed-count-error"' in html
    assert "受信者数が一致しません。画面に表示されている受信者数（12）" in html
    assert 'value="11"' in html
    assert "避難所の開設も確認" in html
    assert 'aria-describedby="kw-ea-typed-help kw-ea-typed-error"' in html
    pending.refresh_from_db()
    assert pending.status == S.PENDING_REVIEW


def test_a_blank_count_is_required(client, supervisor, pending):
    client.force_login(supervisor)
    verified(client)
    response = post_approval(client, pending, typed_count="")
    assert response.status_code == 400
    assert "受信者数を入力してください" in response.content.decode()


def test_content_changed_while_looking_is_shown_again(client, supervisor, drafter, pending):
    client.force_login(supervisor)
    verified(client)
    seen = compute_hash(pending)
    services.broadcast_update(
        broadcast=pending,
        actor=drafter,
        title=pending.title,
        categories=list(pending.categories.all()),
        messages=[{"type": "text", "text": "【柏市】避難指示の対象地区を追加しました。"}],
        audience=pending.audience,
        requested_at=None,
        priority=pending.priority,
        emergency_reason=pending.emergency_reason,
        notification_disabled=False,
    )
    pending.refresh_from_db()
    response = client.post(approve_url(pending), {"seen_hash": seen, "typed_count": "12"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "確認中に内容が変更されました" in html
    assert "対象地区を追加しました" in html
    assert f'value="{compute_hash(pending)}"' in html
    pending.refresh_from_db()
    assert pending.status == S.PENDING_REVIEW


def test_approval_with_count_and_second_factor_sends_at_once(
    client, supervisor, pending, django_capture_on_commit_callbacks
):
    client.force_login(supervisor)
    verified(client)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_approval(client, pending, typed_count="１２")
    assert response.status_code == 302
    assert response["Location"] == reverse("broadcasts:detail", args=[pending.pk])
    assert "緊急配信を承認しました。直ちに送信します。" in messages_of(response)
    assert len(callbacks) == 1  # the emergency-queue enqueue
    pending.refresh_from_db()
    assert pending.status == S.SCHEDULED
    assert pending.approved_by == supervisor
    event = pending.events.get(verb="approve")
    assert event.actor == supervisor
    assert event.data["recipient_count"] == FOLLOWERS


def test_a_pending_emergency_that_is_no_longer_pending_redirects(client, supervisor, pending):
    client.force_login(supervisor)
    services.broadcast_cancel(broadcast=pending, actor=supervisor, comment="誤報")
    response = client.get(approve_url(pending))
    assert response.status_code == 302
    assert "承認の対象ではありません" in messages_of(response)[0]


# --- the ordinary screens route emergencies here -------------------------------------------
def test_plain_approve_view_refuses_emergencies(client, supervisor, pending):
    client.force_login(supervisor)
    verified(client)
    response = client.post(
        reverse("broadcasts:approve", args=[pending.pk]), {"seen_hash": compute_hash(pending)}
    )
    assert response.status_code == 302
    assert "緊急配信・訓練はこの画面では承認できません" in messages_of(response)[0]
    pending.refresh_from_db()
    assert pending.status == S.PENDING_REVIEW
    assert not pending.events.filter(verb="approve").exists()


def test_detail_links_the_supervisor_to_the_emergency_screen(client, supervisor, pending):
    client.force_login(supervisor)
    html = client.get(reverse("broadcasts:detail", args=[pending.pk])).content.decode()
    assert f'href="{approve_url(pending)}"' in html
    assert "緊急承認へ" in html
    assert 'data-testid="approve-form"' not in html  # no plain approve form


def test_detail_shows_no_emergency_approval_to_a_reviewer(client, reviewer, pending):
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[pending.pk])).content.decode()
    assert "緊急承認へ" not in html
    assert "承認者（管理職）だけが承認できます" in html


# --- withdrawing a pending emergency -------------------------------------------------------
def test_the_author_withdraws_a_pending_emergency(client, drafter, pending):
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:detail", args=[pending.pk])).content.decode()
    assert "取り下げ" in html
    response = client.post(reverse("broadcasts:emergency_withdraw", args=[pending.pk]))
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == S.DRAFT


def test_a_supervisor_stops_a_pending_emergency_with_a_reason(client, supervisor, pending):
    client.force_login(supervisor)
    url = reverse("broadcasts:emergency_withdraw", args=[pending.pk])
    response = client.post(url, {"comment": "  "})
    assert response["Location"] == approve_url(pending)
    assert "中止の理由を入力してください。" in messages_of(response)
    pending.refresh_from_db()
    assert pending.status == S.PENDING_REVIEW
    client.post(url, {"comment": "誤った地区を指定していたため"})
    pending.refresh_from_db()
    assert pending.status == S.CANCELLED
    assert pending.events.get(verb="cancel").comment == "誤った地区を指定していたため"


def test_a_reviewer_cannot_stop_an_emergency_here(client, reviewer, pending):
    client.force_login(reviewer)
    response = client.post(
        reverse("broadcasts:emergency_withdraw", args=[pending.pk]), {"comment": "x"}
    )
    assert response.status_code == 403


# --- corrections and cancellations ---------------------------------------------------------
@pytest.fixture
def sent(drafter) -> Broadcast:
    return SentBroadcastFactory(
        author=drafter,
        title="避難指示",
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="河川の氾濫",
        messages=[{"type": "text", "text": "【柏市】避難指示を発令しました。"}],
        categories=["disaster_crime"],
    )


def test_sent_broadcast_offers_correction_and_cancellation(client, drafter, sent):
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:detail", args=[sent.pk])).content.decode()
    assert "訂正を作成" in html and "取消を作成" in html
    assert reverse("broadcasts:follow_up", args=[sent.pk, "correction"]) in html
    assert reverse("broadcasts:follow_up", args=[sent.pk, "cancellation"]) in html


@pytest.mark.parametrize(
    ("kind", "prefix"), [("correction", "【訂正】"), ("cancellation", "【取消】")]
)
def test_one_click_creates_a_linked_follow_up(client, drafter, sent, kind, prefix):
    client.force_login(drafter)
    response = client.post(reverse("broadcasts:follow_up", args=[sent.pk, kind]))
    follow_up = Broadcast.objects.get(parent=sent)
    assert response.status_code == 302
    assert response["Location"] == reverse("broadcasts:edit", args=[follow_up.pk])
    assert follow_up.kind == kind
    assert follow_up.is_emergency
    assert follow_up.messages[0]["text"].startswith(prefix)
    # the follow-up links to the original, the original lists its follow-ups
    html = client.get(reverse("broadcasts:detail", args=[follow_up.pk])).content.decode()
    assert reverse("broadcasts:detail", args=[sent.pk]) in html
    assert 'data-testid="follow-up-of"' in html
    html = client.get(reverse("broadcasts:detail", args=[sent.pk])).content.decode()
    assert 'data-testid="follow-ups"' in html
    assert reverse("broadcasts:detail", args=[follow_up.pk]) in html


def test_no_follow_up_of_an_unsent_broadcast(client, drafter, pending):
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:detail", args=[pending.pk])).content.decode()
    assert "訂正を作成" not in html
    response = client.post(reverse("broadcasts:follow_up", args=[pending.pk, "correction"]))
    assert response.status_code == 302
    assert not Broadcast.objects.filter(parent=pending).exists()


def test_unknown_follow_up_kind_is_404(client, drafter, sent):
    client.force_login(drafter)
    assert client.post(reverse("broadcasts:follow_up", args=[sent.pk, "drill"])).status_code == 404


def test_follow_up_needs_post(client, drafter, sent):
    client.force_login(drafter)
    response = client.get(reverse("broadcasts:follow_up", args=[sent.pk, "correction"]))
    assert response.status_code == 405


# --- drills --------------------------------------------------------------------------------
def test_compose_in_drill_mode(client, drafter, followers):
    client.force_login(drafter)
    response = client.get(reverse("broadcasts:create") + "?kind=drill")
    html = response.content.decode()
    assert 'data-testid="drill-banner"' in html
    assert 'value="drill"' in html
    assert 'value="all"' not in html  # the only audience is staff test recipients
    assert "職員テスト受信者のみ" in html

    category = Category.objects.get(code="disaster_crime")
    response = client.post(
        reverse("broadcasts:create"),
        {
            "title": "11月の訓練",
            "categories": [category.pk],
            "audience": "all",  # tampered: still staff only
            "timing": "asap",
            "priority": "normal",
            "emergency_reason": "",
            "notify": "on",
            "kind": "drill",
            "m-TOTAL_FORMS": "1",
            "m-INITIAL_FORMS": "0",
            "m-MIN_NUM_FORMS": "1",
            "m-MAX_NUM_FORMS": "5",
            "m-0-kind": "text",
            "m-0-text": "避難指示が発令されました（訓練）。",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    drill = Broadcast.objects.get(title="11月の訓練")
    assert drill.kind == Broadcast.Kind.DRILL
    assert drill.audience == Broadcast.Audience.STAFF_TEST
    assert drill.is_emergency
    assert drill.messages[0]["text"].startswith("【訓練】")
    html = client.get(reverse("broadcasts:detail", args=[drill.pk])).content.decode()
    assert 'data-testid="drill-badge"' in html
    assert html.count("kw-drill-badge") >= 2  # title and the audit timeline
    html = client.get(reverse("broadcasts:list")).content.decode()
    assert 'data-testid="drill-badge"' in html


def test_drill_approval_screen_is_not_the_live_one(client, drafter, supervisor, followers):
    drill = emergency_draft(drafter, kind=Broadcast.Kind.DRILL)
    client.force_login(supervisor)
    verified(client)
    html = client.get(approve_url(drill)).content.decode()
    assert "kw-ea-drill" in html and "kw-ea-live" not in html
    assert "緊急配信</h1>" not in html
    assert "訓練" in html and "市民には届きません" in html
    assert '<span class="kw-ea-count" data-testid="recipient-count">2</span>' in html
    response = client.post(
        approve_url(drill), {"seen_hash": compute_hash(drill), "typed_count": "2"}
    )
    assert response.status_code == 302
    assert "【訓練】" in messages_of(response)[0]
    drill.refresh_from_db()
    assert drill.status == S.SCHEDULED


def test_drill_overdue(drafter):
    now = timezone.now()
    assert selectors.drill_overdue(now)
    SentBroadcastFactory(
        author=drafter,
        kind=Broadcast.Kind.LIVE,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="x",
        sent_at=now - dt.timedelta(days=1),
    )
    assert selectors.drill_overdue(now)  # a live emergency is not a drill
    SentBroadcastFactory(
        author=drafter,
        kind=Broadcast.Kind.DRILL,
        audience=Broadcast.Audience.STAFF_TEST,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="訓練",
        sent_at=now - dt.timedelta(days=31),
    )
    assert selectors.drill_overdue(now)
    recent = SentBroadcastFactory(
        author=drafter,
        kind=Broadcast.Kind.DRILL,
        audience=Broadcast.Audience.STAFF_TEST,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="訓練",
        sent_at=now - dt.timedelta(days=29),
    )
    assert not selectors.drill_overdue(now)
    assert selectors.last_drill_sent_at() == recent.sent_at
    assert selectors.drill_overdue(now + dt.timedelta(days=2))


def test_drill_reminder_partial(rf, drafter):
    request = rf.get("/")
    request.user = drafter
    html = render_to_string(
        "broadcasts/emergency_drill_reminder.html", {"drill_overdue": True}, request=request
    )
    assert "緊急配信の訓練を実施してください" in html
    assert reverse("broadcasts:create") + "?kind=drill" in html
    assert "訓練を実施" not in render_to_string(
        "broadcasts/emergency_drill_reminder.html", {"drill_overdue": False}, request=request
    )


# --- disaster rich menu --------------------------------------------------------------------
def test_a_drill_never_offers_the_disaster_menu(client, drafter, supervisor):
    drill = services.broadcast_create(
        author=drafter,
        title="訓練",
        categories=[Category.objects.get(code="disaster_crime")],
        messages=[{"type": "text", "text": "避難訓練のお知らせ"}],
        kind=Broadcast.Kind.DRILL,
    )
    services.broadcast_submit(broadcast=drill, actor=drafter)
    client.force_login(supervisor)
    assert 'name="switch_rich_menu"' not in client.get(approve_url(drill)).content.decode()


def test_approval_can_switch_to_the_disaster_rich_menu(client, drafter, supervisor, line_sandbox):
    """A supervisor (not an admin) switches the menu as part of the emergency approval:
    at night there may be no admin to ask."""
    make_followers(line_sandbox.follower_ids(), ["disaster_crime"])
    broadcast = emergency_draft(drafter)
    client.force_login(supervisor)
    verified(client)
    assert 'name="switch_rich_menu"' in client.get(approve_url(broadcast)).content.decode()
    count = selectors.recipient_count(broadcast.audience, [])
    response = client.post(
        approve_url(broadcast),
        {"seen_hash": compute_hash(broadcast), "typed_count": str(count), "switch_rich_menu": "on"},
    )
    assert response.status_code == 302
    assert "リッチメニューを災害用に切り替えました。" in messages_of(response)
    disaster = RichMenu.objects.get(kind=RichMenu.Kind.DISASTER)
    assert disaster.is_line_default
    assert line_sandbox.state.default_rich_menu() == disaster.line_rich_menu_id


def test_dashboard_reminds_of_the_monthly_drill_until_one_is_sent(client, drafter):
    client.force_login(drafter)
    page = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert 'data-testid="drill-reminder"' in page
    assert "?kind=drill" in page
    SentBroadcastFactory(
        author=drafter,
        kind=Broadcast.Kind.DRILL,
        audience=Broadcast.Audience.STAFF_TEST,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="訓練",
        sent_at=timezone.now() - dt.timedelta(days=29),
    )
    page = client.get(reverse("broadcasts:dashboard")).content.decode()
    assert 'data-testid="drill-reminder"' not in page


def test_approval_while_the_broker_is_down_is_kept_and_not_an_error(
    client, supervisor, pending, django_capture_on_commit_callbacks
):
    """The approval commits; the enqueue after it fails (Redis down) and is logged; the
    dispatcher sends it once the broker is back. The supervisor sees the approval, not a 500."""
    from kashiwa.celery import app

    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens (restored by conftest)
    app.conf.broker_connection_timeout = 1
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    app.pool.force_close_all()
    app._pool = None
    client.force_login(supervisor)
    verified(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_approval(client, pending)
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == S.SCHEDULED and pending.approved_by == supervisor
    # The dispatcher's backstop picks it up.
    claimed = services.broadcasts_dispatch_due(now=pending.scheduled_for + dt.timedelta(seconds=1))
    assert claimed.claimed == [pending.pk]
