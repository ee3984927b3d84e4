"""Emergency and drill alerts: every 承認者 at once by LINE and e-mail, never the author, once
per person and channel even when two workers run, escalated once when nobody opens them."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse

from broadcasts import roles
from broadcasts.models import Alert, AlertRound, Broadcast, BroadcastEvent, Category
from broadcasts.services import notifications
from tests.broadcasts.notifications.conftest import NIGHT, link_line, staff, submit
from tests.broadcasts.sending.helpers import approve

PUSH = "/v2/bot/message/push"


def at(minutes: float = 0, seconds: float = 0):
    instant = NIGHT + dt.timedelta(minutes=minutes, seconds=seconds)
    return lambda: instant


def pushes_to(sandbox, line_user_id: str) -> list[str]:
    return [
        m["text"]
        for d in sandbox.deliveries(endpoint="push", user_id=line_user_id)
        for m in d.messages
    ]


def mails_to(address: str) -> list[mail.EmailMessage]:
    return [m for m in mail.outbox if address in m.to]


@pytest.mark.django_db
def test_an_emergency_alerts_every_supervisor_at_once_but_not_its_author(
    team, line_sandbox, night, django_capture_on_commit_callbacks
):
    boss_line = link_line(line_sandbox, team["boss"], 820_001)
    author = staff("supervisor_author", roles.SUPERVISOR)  # a 承認者 may draft too
    author_line = link_line(line_sandbox, author, 820_002)
    with django_capture_on_commit_callbacks() as callbacks:
        broadcast = submit(author)
    assert len(callbacks) == 1  # the send, enqueued after commit on the emergency queue

    alert_round = AlertRound.objects.get(broadcast=broadcast)
    sent = notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    # boss: LINE + e-mail; deputy (no LINE): e-mail; the author: nothing.
    assert sent == 3
    [text] = pushes_to(line_sandbox, boss_line)
    assert text.startswith("【緊急配信の承認依頼】")
    assert "避難指示（利根川）" in text
    assert reverse("broadcasts:alert_open", args=[broadcast.pk]) in text
    assert pushes_to(line_sandbox, author_line) == []
    assert len(mails_to("boss@city.kashiwa.lg.jp")) == 1
    assert len(mails_to("deputy@city.kashiwa.lg.jp")) == 1
    assert mails_to("supervisor_author@city.kashiwa.lg.jp") == []
    # reviewers and admins are not asked (they cannot approve emergencies)
    assert mails_to("reviewer@city.kashiwa.lg.jp") == mails_to("admin@city.kashiwa.lg.jp") == []
    assert (
        BroadcastEvent.objects.filter(broadcast=broadcast, verb="approval_alerts_sent").count() == 1
    )
    # Run again (a retry, the beat backstop): nothing more.
    assert notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=5)) == 0
    assert notifications.approval_alerts_tick(now_fn=at(seconds=10)).sent == 0
    assert len(pushes_to(line_sandbox, boss_line)) == 1
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_drills_alert_too_and_say_so(team, line_sandbox, night):
    boss_line = link_line(line_sandbox, team["boss"], 820_011)
    broadcast = submit(team["drafter"], drill=True, title="総合防災訓練")
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    [text] = pushes_to(line_sandbox, boss_line)
    assert text.startswith("【訓練】")
    assert "市民には届きません" in text
    [message] = mails_to("boss@city.kashiwa.lg.jp")
    assert message.subject.startswith("【訓練】")


@pytest.mark.django_db
def test_an_alert_for_a_broadcast_approved_meanwhile_is_not_sent(team, line_sandbox, night):
    boss_line = link_line(line_sandbox, team["boss"], 820_021)
    broadcast = submit(team["drafter"])
    approve(broadcast, team["deputy"], now=NIGHT)
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    assert notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1)) == 0
    assert pushes_to(line_sandbox, boss_line) == []
    assert set(alert_round.alerts.values_list("status", flat=True)) == {Alert.Status.SKIPPED}


@pytest.mark.django_db
def test_a_temporary_failure_is_retried_by_the_beat_task(team, line_sandbox, night):
    boss_line = link_line(line_sandbox, team["boss"], 820_031)
    line_sandbox.set_fault(PUSH, 500, count=1)
    broadcast = submit(team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    line_alert = alert_round.alerts.get(channel=Alert.Channel.LINE)
    assert line_alert.status == Alert.Status.PENDING and line_alert.error
    assert notifications.approval_alerts_tick(now_fn=at(seconds=10)).sent == 1
    assert len(pushes_to(line_sandbox, boss_line)) == 1


@pytest.mark.django_db
def test_a_worker_that_died_after_pushing_does_not_make_the_push_twice(team, line_sandbox, night):
    """LINE accepted the push, then the worker died before recording it: the next worker
    pushes again with the same retry key, and LINE answers 409 (already accepted)."""
    boss_line = link_line(line_sandbox, team["boss"], 820_041)
    broadcast = submit(team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    Alert.objects.filter(round=alert_round, channel=Alert.Channel.LINE).update(
        status=Alert.Status.SENDING, sent_at=None, claimed_at=NIGHT
    )
    # Not before the claim is stale…
    assert notifications.approval_alerts_tick(now_fn=at(minutes=1)).sent == 0
    # …then taken over.
    assert notifications.approval_alerts_tick(now_fn=at(minutes=2, seconds=10)).sent == 1
    assert len(pushes_to(line_sandbox, boss_line)) == 1
    assert alert_round.alerts.get(channel=Alert.Channel.LINE).status == Alert.Status.SENT


@pytest.mark.django_db
def test_an_e_mail_resent_after_a_worker_died_carries_the_same_message_id(
    team, line_sandbox, night
):
    """The mail server accepted the e-mail, then the worker died before recording it: SMTP
    has no retry key, so the copy sent by the next worker carries the first one's Message-ID
    (the alert's own), which mail systems show once."""
    broadcast = submit(team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    address = team["boss"].email
    first = mails_to(address)
    assert len(first) == 1
    Alert.objects.filter(round=alert_round, channel=Alert.Channel.EMAIL).update(
        status=Alert.Status.SENDING, sent_at=None, claimed_at=NIGHT
    )
    assert notifications.approval_alerts_tick(now_fn=at(minutes=2, seconds=10)).sent >= 1
    again = mails_to(address)
    assert len(again) == 2
    ids = {m.extra_headers["Message-ID"] for m in again}
    assert len(ids) == 1
    # Each alert has its own: another supervisor's e-mail is another message.
    others = {m.extra_headers["Message-ID"] for m in mail.outbox if address not in m.to}
    assert others and not (others & ids)


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_alert_each_person_once_per_channel(line_sandbox, time_machine):
    time_machine.move_to(NIGHT, tick=False)
    boss = staff("boss", roles.SUPERVISOR)
    deputy = staff("deputy", roles.SUPERVISOR)
    drafter = staff("drafter", roles.DRAFTER)
    lines = [link_line(line_sandbox, boss, 820_051), link_line(line_sandbox, deputy, 820_052)]
    # LINE answers slowly: the second worker arrives while the first is still sending.
    line_sandbox.set_fault(PUSH, mode="latency", latency_ms=300, count=None)
    broadcast = submit(drafter)
    round_id = AlertRound.objects.get(broadcast=broadcast).pk
    start = threading.Barrier(2)
    results: list[int] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(
                notifications.approval_alerts_deliver(round_id=round_id, now_fn=at(seconds=1))
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 4] or sum(results) == 4
    for line_user_id in lines:
        assert len(pushes_to(line_sandbox, line_user_id)) == 1
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "boss@city.kashiwa.lg.jp",
        "deputy@city.kashiwa.lg.jp",
    ]


@pytest.mark.django_db
def test_unopened_alerts_escalate_once_after_the_configured_minutes(
    team, line_sandbox, night, settings
):
    settings.ALERT_ESCALATION_MINUTES = 5
    admin_line = link_line(line_sandbox, team["admin"], 820_061)
    boss_line = link_line(line_sandbox, team["boss"], 820_062)
    broadcast = submit(team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    mail.outbox.clear()

    assert notifications.approval_alerts_tick(now_fn=at(minutes=4, seconds=59)).escalated == []
    assert pushes_to(line_sandbox, admin_line) == []
    result = notifications.approval_alerts_tick(now_fn=at(minutes=5))
    assert result.escalated == [alert_round.pk]
    [admin_text] = pushes_to(line_sandbox, admin_line)
    assert admin_text.startswith("【至急・未対応】")
    assert len(pushes_to(line_sandbox, boss_line)) == 2  # the first alert and the escalation
    escalated_to = sorted(a for m in mail.outbox for a in m.to)
    assert escalated_to == [
        "admin@city.kashiwa.lg.jp",
        "boss@city.kashiwa.lg.jp",
        "deputy@city.kashiwa.lg.jp",
    ]  # every 承認者 and 管理者; not the drafter, not the 広報担当
    # Once only, however often the beat runs.
    for minutes in (5, 6, 30):
        assert notifications.approval_alerts_tick(now_fn=at(minutes=minutes)).escalated == []
    assert len(pushes_to(line_sandbox, admin_line)) == 1
    assert len(mail.outbox) == 3
    assert BroadcastEvent.objects.filter(verb="approval_alerts_escalated").count() == 1
    alert_round.refresh_from_db()
    assert alert_round.escalated_at == NIGHT + dt.timedelta(minutes=5)


@pytest.mark.django_db
def test_the_escalation_time_is_configurable(team, line_sandbox, night, settings):
    settings.ALERT_ESCALATION_MINUTES = 2
    submit(team["drafter"])
    assert notifications.approval_alerts_tick(now_fn=at(minutes=1, seconds=59)).escalated == []
    assert len(notifications.approval_alerts_tick(now_fn=at(minutes=2)).escalated) == 1


@pytest.mark.django_db
def test_opening_the_link_stops_the_escalation_and_shows_on_the_broadcast(
    client, team, line_sandbox, night
):
    link_line(line_sandbox, team["boss"], 820_071)
    broadcast = submit(team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))

    client.force_login(team["boss"])
    response = client.get(reverse("broadcasts:alert_open", args=[broadcast.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("broadcasts:emergency_approve", args=[broadcast.pk])
    assert alert_round.alerts.filter(recipient=team["boss"], opened_at__isnull=False).count() == 2
    assert notifications.approval_alerts_tick(now_fn=at(minutes=10)).escalated == []

    page = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    panel = page.split('data-testid="alerts-panel"', 1)[1].split("</section>", 1)[0]
    assert "boss" in panel and "deputy" in panel
    assert panel.count("開封 11/29(日) 23:00") == 2  # boss's LINE and e-mail
    assert "未開封" in panel  # deputy's e-mail
    assert "LINE" in panel and "メール" in panel


@pytest.mark.django_db
def test_an_unalerted_persons_visit_does_not_count_as_opened(client, team, line_sandbox, night):
    broadcast = submit(team["drafter"])
    client.force_login(team["reviewer"])  # not alerted: reviewers cannot approve emergencies
    response = client.get(reverse("broadcasts:alert_open", args=[broadcast.pk]))
    assert response["Location"] == reverse("broadcasts:detail", args=[broadcast.pk])
    assert AlertRound.objects.get(broadcast=broadcast).first_opened_at is None
    assert len(notifications.approval_alerts_tick(now_fn=at(minutes=5)).escalated) == 1


@pytest.mark.django_db
def test_a_resubmission_alerts_again(team, line_sandbox, time_machine):
    time_machine.move_to(NIGHT, tick=False)
    broadcast = submit(team["drafter"])
    from broadcasts import services

    services.broadcast_withdraw(broadcast=broadcast, actor=team["drafter"])
    time_machine.move_to(NIGHT + dt.timedelta(minutes=1), tick=False)
    services.broadcast_submit(
        broadcast=Broadcast.objects.get(pk=broadcast.pk), actor=team["drafter"]
    )
    rounds = list(AlertRound.objects.filter(broadcast=broadcast).order_by("submitted_at"))
    assert len(rounds) == 2
    # the first round's alerts are not sent any more: that submission was withdrawn
    assert notifications.approval_alerts_deliver(round_id=rounds[0].pk, now_fn=at(minutes=1)) == 0
    assert notifications.approval_alerts_deliver(round_id=rounds[1].pk, now_fn=at(minutes=1)) == 2


@pytest.mark.django_db
def test_opening_the_approval_screen_without_the_link_counts_too(client, team, line_sandbox, night):
    broadcast = submit(team["drafter"])
    client.force_login(team["deputy"])
    page = client.get(reverse("broadcasts:emergency_approve", args=[broadcast.pk]))
    assert page.status_code == 200
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    assert alert_round.first_opened_at == NIGHT
    assert (
        BroadcastEvent.objects.filter(verb="approval_alert_opened", actor=team["deputy"]).count()
        == 1
    )
    client.get(reverse("broadcasts:emergency_approve", args=[broadcast.pk]))  # again: no new row
    assert BroadcastEvent.objects.filter(verb="approval_alert_opened").count() == 1
    assert notifications.approval_alerts_tick(now_fn=at(minutes=6)).escalated == []


@pytest.mark.django_db
def test_when_no_supervisor_can_be_reached_the_admins_are_alerted_at_the_next_tick(
    line_sandbox, night
):
    drafter = staff("drafter", roles.DRAFTER)
    staff("boss", roles.SUPERVISOR, email=False)  # neither LINE nor e-mail
    staff("admin", roles.ADMIN)
    broadcast = submit(drafter)
    assert not Alert.objects.filter(round__broadcast=broadcast).exists()
    result = notifications.approval_alerts_tick(now_fn=at(seconds=10))
    assert len(result.escalated) == 1
    assert [m.to for m in mail.outbox] == [["admin@city.kashiwa.lg.jp"]]


@pytest.mark.django_db
def test_a_supervisor_who_edited_the_emergency_is_not_alerted(team, line_sandbox, night):
    """Whoever wrote part of it cannot approve it (four eyes), so an alert would only cost
    the minutes in which someone who can approve is being looked for."""
    from broadcasts import services

    boss_line = link_line(line_sandbox, team["boss"], 820_081)
    draft = services.broadcast_create(
        author=team["drafter"],
        title="避難指示（利根川）",
        categories=list(Category.objects.filter(code="disaster_crime")),
        messages=[{"type": "text", "text": "【柏市】避難指示を発令しました。"}],
        priority=Broadcast.Priority.EMERGENCY,
        emergency_reason="利根川が氾濫危険水位を超過",
    )
    services.broadcast_update(
        broadcast=draft,
        actor=team["boss"],
        title=draft.title,
        categories=list(draft.categories.all()),
        messages=[{"type": "text", "text": "【柏市】利根川の避難指示を発令しました。"}],
        audience=draft.audience,
        requested_at=None,
        priority=draft.priority,
        emergency_reason=draft.emergency_reason,
        notification_disabled=False,
    )
    broadcast = services.broadcast_submit(broadcast=draft, actor=team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1))
    assert pushes_to(line_sandbox, boss_line) == []
    assert [m.to for m in mail.outbox] == [["deputy@city.kashiwa.lg.jp"]]


@pytest.mark.django_db
def test_a_mail_server_that_fails_is_tried_once_per_round_and_the_beat_sends_later(
    team, line_sandbox, night, settings
):
    """Pushes go first and are unaffected; after the first SMTP failure the round's other
    e-mails are not tried (a hung mail server would hold the emergency worker once per
    person), and the beat task sends them once the server answers."""
    boss_line = link_line(line_sandbox, team["boss"], 820_091)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    broadcast = submit(team["drafter"])
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    assert notifications.approval_alerts_deliver(round_id=alert_round.pk, now_fn=at(seconds=1)) == 1
    assert len(pushes_to(line_sandbox, boss_line)) == 1
    emails = alert_round.alerts.filter(channel=Alert.Channel.EMAIL)
    assert set(emails.values_list("status", flat=True)) == {Alert.Status.PENDING}
    errors = sorted(emails.values_list("error", flat=True))
    assert "ConnectionRefusedError" in errors[0] or "ConnectionRefusedError" in errors[1]
    assert any("メールサーバーに接続できませんでした" in e for e in errors)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notifications.approval_alerts_tick(now_fn=at(seconds=10)).sent == 2
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "boss@city.kashiwa.lg.jp",
        "deputy@city.kashiwa.lg.jp",
    ]
    assert len(pushes_to(line_sandbox, boss_line)) == 1
