"""Issue 13, the ordinary day: routing, wording, drills, corrections and category wording.

Each test plays what a member of staff sees on a screen (the Django test client) and would
have failed before issue 13: a message naming the wrong role, an emergency offered to a
reviewer who cannot approve it, English verbs in the audit history, two withdraw buttons, a
sent broadcast that says 送信予定, counts that disagree, a second correction draft."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from broadcasts import checks, services
from broadcasts.models import Broadcast, Category
from broadcasts.schedule import JST
from broadcasts.services.audit import audit_record
from tests.factories import BroadcastFactory, SentBroadcastFactory, text_message
from tests.fixtures.line_stub import AcceptingGateway

from .sending.helpers import make_followers
from .test_emergency import emergency_draft
from .test_views_emergency import messages_of, verified

S = Broadcast.Status
# A Wednesday inside the window: nothing here depends on the real date.
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=JST)
PRODUCT = Path(__file__).resolve().parents[2] / "broadcasts"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def no_line(monkeypatch):
    """The checklist's LINE validate call: a stub that accepts everything."""
    gateway = AcceptingGateway()
    monkeypatch.setattr("broadcasts.line.gateway.get_gateway", lambda: gateway)


@pytest.fixture
def followers(db):
    return make_followers([f"U{i:032x}" for i in range(6)], ["disaster_crime"], staff=2)


def ordinary_pending(author, title: str = "子育て広場のお知らせ") -> Broadcast:
    broadcast = services.broadcast_create(
        author=author,
        title=title,
        categories=[Category.objects.get(code="childcare_education")],
        messages=[text_message("子育て広場を開きます。")],
    )
    services.broadcast_submit(broadcast=broadcast, actor=author)
    return broadcast


def page(client, name: str, *args: Any, query: str = "") -> str:
    response = client.get(reverse(name, args=args or None) + query)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def without_tags(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- 3. routing and wording ------------------------------------------------------------------


def test_submitting_an_emergency_says_it_waits_for_a_supervisor(client, drafter, followers):
    broadcast = services.broadcast_create(
        author=drafter,
        title="避難指示",
        categories=[Category.objects.get(code="disaster_crime")],
        messages=[text_message("避難指示を発令しました。")],
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="河川の氾濫",
    )
    client.force_login(drafter)
    response = client.post(reverse("broadcasts:submit", args=[broadcast.pk]))
    said = " ".join(messages_of(response))
    assert "承認者" in said
    assert "広報担当" not in said


def test_submitting_an_ordinary_broadcast_names_the_reviewers(client, drafter):
    broadcast = services.broadcast_create(
        author=drafter,
        title="お知らせ",
        categories=[Category.objects.get(code="childcare_education")],
        messages=[text_message("お知らせです。")],
    )
    client.force_login(drafter)
    response = client.post(reverse("broadcasts:submit", args=[broadcast.pk]))
    assert "広報担当" in " ".join(messages_of(response))


def test_a_reviewer_sees_an_emergency_as_the_supervisors_not_in_the_queue(
    client, drafter, reviewer, followers
):
    emergency = emergency_draft(drafter)
    ordinary = ordinary_pending(drafter)
    client.force_login(reviewer)
    response = client.get(reverse("broadcasts:review_queue"))
    actionable = [row["broadcast"].pk for row in response.context["rows"]]
    assert actionable == [ordinary.pk]
    handled = response.content.decode().split('data-testid="supervisor-handles"', 1)
    assert len(handled) == 2, "the emergency is listed apart"
    assert "承認者が対応します" in handled[1]
    assert emergency.title in handled[1]
    # Its own page says the same.
    detail = without_tags(page(client, "broadcasts:detail", emergency.pk))
    assert "承認者が対応します" in detail


def test_a_supervisor_has_emergencies_first_in_the_review_queue(
    client, drafter, supervisor, followers
):
    emergency = emergency_draft(drafter)
    with time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False):
        later = ordinary_pending(drafter, "後から申請した通常の配信")
    client.force_login(supervisor)
    verified(client)
    response = client.get(reverse("broadcasts:review_queue"))
    order = [row["broadcast"].pk for row in response.context["rows"]]
    assert order == [emergency.pk, later.pk]


def test_emergencies_sort_first_in_the_pending_list(client, drafter, reviewer, followers):
    emergency = emergency_draft(drafter)
    with time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False):
        later = ordinary_pending(drafter, "後から申請した通常の配信")
    client.force_login(drafter)
    response = client.get(reverse("broadcasts:list") + "?tab=mine")
    order = [row["broadcast"].pk for row in response.context["rows"]]
    assert order == [emergency.pk, later.pk]


def test_the_red_box_shows_only_when_an_emergency_waits(client, drafter, supervisor, followers):
    client.force_login(supervisor)
    verified(client)
    html = page(client, "broadcasts:dashboard")
    assert "緊急配信の承認待ち" not in html
    assert 'data-testid="emergency-approvals"' not in html
    emergency_draft(drafter)
    html = page(client, "broadcasts:dashboard")
    assert "緊急配信の承認待ち" in html
    assert 'data-testid="emergency-approvals"' in html


# --- 6. drills look like drills ---------------------------------------------------------------


def drill_pending(author) -> Broadcast:
    return emergency_draft(author, kind=Broadcast.Kind.DRILL)


def test_a_pending_drill_on_the_dashboard_says_drill_not_emergency(
    client, drafter, supervisor, followers
):
    drill = drill_pending(drafter)
    client.force_login(supervisor)
    verified(client)
    html = page(client, "broadcasts:dashboard")
    item = html.split(f'data-broadcast="{drill.pk}"', 1)[1].split("</li>", 1)[0]
    assert "【訓練】" in item
    assert ">緊急<" not in item


def test_a_drill_in_the_calendar_and_history_says_drill(client, drafter, supervisor, followers):
    drill = drill_pending(drafter)
    drill.status = S.SCHEDULED
    drill.scheduled_for = NOW + dt.timedelta(hours=1)
    drill.save()
    client.force_login(supervisor)
    verified(client)
    week = page(client, "broadcasts:calendar_week")
    entry = week.split(f'data-broadcast="{drill.pk}"', 1)[1].split("</li>", 1)[0]
    assert "【訓練】" in entry
    assert ">緊急<" not in entry
    history = page(client, "broadcasts:history")
    rows = [r for r in history.split("<tr")[1:] if f'href="/broadcasts/{drill.pk}/"' in r]
    assert rows
    for row in rows:
        assert "【訓練】" in row


def test_statistics_leave_drills_out_of_the_totals_unless_asked(client, reviewer, drafter):
    sent = NOW - dt.timedelta(hours=2)
    SentBroadcastFactory(author=drafter, sent_at=sent, scheduled_for=sent, recipient_count=100)
    SentBroadcastFactory(
        author=drafter,
        sent_at=sent,
        scheduled_for=sent,
        recipient_count=2,
        kind=Broadcast.Kind.DRILL,
        audience=Broadcast.Audience.STAFF_TEST,
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="訓練",
    )
    client.force_login(reviewer)
    response = client.get(reverse("broadcasts:stats"))
    assert response.context["totals"]["sends"] == 1
    assert response.context["totals"]["delivered"] == 100
    with_drills = client.get(reverse("broadcasts:stats") + "?drills=1")
    assert with_drills.context["totals"]["sends"] == 2
    assert with_drills.context["totals"]["delivered"] == 102


def test_the_drill_reminder_shows_only_to_those_who_can_create_or_approve_one(
    client, admin_user, drafter
):
    verified_admin = admin_user
    client.force_login(verified_admin)
    verified(client)
    assert 'data-testid="drill-reminder"' not in page(client, "broadcasts:dashboard")
    client.force_login(drafter)
    assert 'data-testid="drill-reminder"' in page(client, "broadcasts:dashboard")


# --- 7. say the truth, in Japanese ------------------------------------------------------------


def test_the_history_shows_actions_in_japanese(client, supervisor, reviewer):
    audit_record(verb="login", actor=reviewer, data={"ip": "192.0.2.1"})
    audit_record(verb="permission_changed", actor=supervisor, data={})
    broadcast = BroadcastFactory(author=reviewer)
    audit_record(verb="send_started", actor=None, broadcast=broadcast)
    client.force_login(supervisor)
    verified(client)
    response = client.get(reverse("broadcasts:history"))
    verbs = [row["verb"] for row in response.context["rows"]]
    assert "ログイン" in verbs
    assert "権限変更" in verbs
    assert "配信開始" in verbs
    text = without_tags(response.content.decode())
    for code in ("login", "permission_changed", "send_started"):
        assert re.search(rf"(?<![\w/]){code}(?![\w/])", text) is None, code


def _recorded_verbs() -> set[str]:
    """Every literal ``verb=...`` the product passes to ``audit_record`` (or a transition)."""
    verbs: set[str] = set()
    for path in PRODUCT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "audit_record":
                continue
            for keyword in node.keywords:
                if keyword.arg != "verb":
                    continue
                for value in ast.walk(keyword.value):
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        verbs.add(value.value)
    return verbs


def test_every_audited_action_has_a_japanese_label():
    from broadcasts.models.audit import VERB_LABELS
    from broadcasts.services.lifecycle import TRANSITIONS

    verbs = _recorded_verbs() | set(TRANSITIONS)
    assert {"login", "permission_changed", "send_started", "create"} <= verbs
    missing = sorted(v for v in verbs if v not in VERB_LABELS)
    assert not missing, f"audit verbs without a Japanese label: {missing}"
    for verb, label in VERB_LABELS.items():
        assert re.search(r"[A-Za-z_]", label) is None, (verb, label)


def test_no_jargon_on_the_checklist_or_the_progress(client, drafter, reviewer):
    draft = BroadcastFactory(author=drafter, categories=["childcare_education"])
    client.force_login(drafter)
    html = without_tags(page(client, "broadcasts:detail", draft.pk))
    assert "validate" not in html.lower()
    sending = BroadcastFactory(
        author=drafter,
        status=S.SENDING,
        deliveries_total=4,
        deliveries_accepted=1,
        sending_started_at=NOW,
        scheduled_for=NOW,
        categories=["childcare_education"],
    )
    client.force_login(reviewer)
    for html in (
        page(client, "broadcasts:detail", sending.pk),
        page(client, "broadcasts:dashboard_part", "sending"),
        page(client, "broadcasts:list"),
    ):
        assert "リクエスト受付済み" not in html
        assert "受付済みリクエスト" not in html


def test_one_withdraw_button_on_a_pending_emergency(client, drafter, followers):
    emergency = emergency_draft(drafter)
    client.force_login(drafter)
    html = page(client, "broadcasts:detail", emergency.pk)
    buttons = re.findall(r"<button[^>]*>([^<]*)</button>", html)
    withdraws = [b for b in buttons if "取り下げ" in b]
    assert len(withdraws) == 1, withdraws


def test_a_sent_broadcast_never_says_it_is_due(client, drafter, reviewer):
    sent = SentBroadcastFactory(author=drafter, categories=["childcare_education"])
    client.force_login(reviewer)
    assert "送信予定" not in without_tags(page(client, "broadcasts:detail", sent.pk))


def test_the_character_count_is_the_same_in_the_composer_and_the_checklist(client, drafter):
    from .test_views_compose import compose_data

    client.force_login(drafter)
    text = "一行目\r\n二行目\r\n三"  # browsers send line breaks as CRLF
    response = client.post(
        reverse("broadcasts:create"), compose_data([{"kind": "text", "text": text}])
    )
    assert response.status_code == 302
    broadcast = Broadcast.objects.get()
    assert broadcast.messages[0]["text"] == "一行目\n二行目\n三"
    edit = page(client, "broadcasts:edit", broadcast.pk)
    counter = re.search(r"data-kw-count>([\d,]+)<", edit)
    assert counter is not None
    assert counter.group(1) == "9"
    assert "メッセージ1: 9 / 5,000 文字" in without_tags(
        page(client, "broadcasts:detail", broadcast.pk)
    )


def test_the_second_factor_notice_says_the_confirmation_lasts_five_minutes(client, supervisor):
    device = TOTPDevice.objects.create(user=supervisor, name="認証アプリ", confirmed=True)
    client.force_login(supervisor)
    form = client.get(reverse("otp_verify")).content.decode()
    assert "ログインのたびに" in form or "ログイン" in form
    token = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    response = client.post(reverse("otp_verify"), {"token": token, "next": "/"})
    said = " ".join(messages_of(response))
    assert "確認から5分間" in said
    assert "（5分間有効）" not in said
    assert "ログインは" in said


# --- 8. corrections ---------------------------------------------------------------------------


def test_a_second_click_on_correction_opens_the_open_draft(client, drafter, supervisor):
    original = SentBroadcastFactory(author=drafter, categories=["disaster_crime"])
    client.force_login(drafter)
    url = reverse("broadcasts:follow_up", args=[original.pk, "correction"])
    first = client.post(url)
    draft = Broadcast.objects.get(parent=original)
    assert first.url == reverse("broadcasts:edit", args=[draft.pk])
    second = client.post(url)
    assert Broadcast.objects.filter(parent=original).count() == 1
    assert second.url == reverse("broadcasts:edit", args=[draft.pk])
    assert "作成済み" in " ".join(messages_of(second))
    # Once submitted, a click opens it for reading (it is no longer a draft to edit).
    draft.messages = [text_message("【訂正】正しい避難所は柏中学校です。")]
    draft.save()
    services.broadcast_submit(broadcast=draft, actor=drafter)
    third = client.post(url)
    assert Broadcast.objects.filter(parent=original).count() == 1
    assert third.url == reverse("broadcasts:detail", args=[draft.pk])
    # A 取消 is another kind: it gets its own draft.
    client.post(reverse("broadcasts:follow_up", args=[original.pk, "cancellation"]))
    assert Broadcast.objects.filter(parent=original).count() == 2


def test_a_cancelled_correction_does_not_block_a_new_one(client, drafter):
    original = SentBroadcastFactory(author=drafter, categories=["disaster_crime"])
    client.force_login(drafter)
    url = reverse("broadcasts:follow_up", args=[original.pk, "correction"])
    client.post(url)
    old = Broadcast.objects.get(parent=original)
    services.broadcast_cancel(broadcast=old, actor=drafter)
    client.post(url)
    assert Broadcast.objects.filter(parent=original).count() == 2


def test_the_checklist_flags_the_correction_placeholder(drafter):
    original = SentBroadcastFactory(author=drafter, categories=["disaster_crime"])
    draft = services.broadcast_create_follow_up(
        original=original, actor=drafter, kind=Broadcast.Kind.CORRECTION
    )
    results = checks.broadcast_checks(draft, now=NOW, validate_with_line=False)
    assert checks.has_errors(results)
    flagged = [r for r in results if r.level == checks.ERROR]
    assert any("正しい内容を入力してください" in r.detail for r in flagged)


# --- 9. category wording ----------------------------------------------------------------------


def test_compose_shows_each_category_with_its_policy_letter_and_wording(client, drafter):
    client.force_login(drafter)
    html = without_tags(page(client, "broadcasts:create"))
    assert "ア 防災・防犯に関する情報" in html
    assert "ケ 自然災害や緊急事象発生時など市民生活に特に影響を与える緊急情報" in html
    assert "サ その他、市民へ周知する必要性が高い情報として、市が必要と認める情報" in html


def test_lists_keep_the_short_category_labels(client, drafter, reviewer):
    BroadcastFactory(author=drafter, status=S.PENDING_REVIEW, categories=["disaster_crime"])
    client.force_login(reviewer)
    html = without_tags(page(client, "broadcasts:list"))
    assert "防災・防犯" in html
    assert "防災・防犯に関する情報" not in html


def test_every_category_has_its_policy_letter(db):
    from broadcasts.policy import category_wording

    letters = [category_wording(c.code)[0] for c in Category.objects.order_by("sort_order")]
    assert letters == list("アイウエオカキクケコサ")


def test_the_policy_wording_is_the_policy_text():
    from broadcasts.policy import CATEGORY_WORDING, POLICY_FILE

    text = POLICY_FILE.read_text(encoding="utf-8")
    for letter, wording in CATEGORY_WORDING.values():
        assert f"{letter} {wording}" in text
