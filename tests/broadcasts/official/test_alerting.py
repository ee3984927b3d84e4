"""Official information at night reaches a person (issues 13 + 15): a JMA emergency draft is
submitted through the same service as a person's, so every 承認者 is alerted by LINE and
e-mail at once, and the same message polled again alerts nobody twice."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail

from broadcasts import roles
from broadcasts.models import Alert, AlertRound, Broadcast
from broadcasts.services import notifications
from broadcasts.services.official import official_message_ingest
from tests.broadcasts.notifications.conftest import link_line, staff
from tests.broadcasts.sending.helpers import jst

from .samples import QUAKE_5_MINUS, sample

QUAKE_AT = jst(2026, 7, 17, 2, 17)


def ingest(now: dt.datetime):
    return official_message_ingest(
        data=sample(QUAKE_5_MINUS), source="file", url=QUAKE_5_MINUS, now=now
    )


@pytest.mark.django_db
def test_a_jma_emergency_draft_alerts_every_supervisor_once(
    line_sandbox, django_capture_on_commit_callbacks
):
    boss = staff("boss", roles.SUPERVISOR)
    deputy = staff("deputy", roles.SUPERVISOR)
    reviewer = staff("reviewer", roles.REVIEWER)
    boss_line = link_line(line_sandbox, boss, 830_001, now=QUAKE_AT)

    with django_capture_on_commit_callbacks(execute=False):
        broadcast = ingest(QUAKE_AT).message.broadcast
    assert broadcast.is_emergency and broadcast.status == Broadcast.Status.PENDING_REVIEW
    alert_round = AlertRound.objects.get(broadcast=broadcast)
    sent = notifications.approval_alerts_deliver(
        round_id=alert_round.pk, now_fn=lambda: QUAKE_AT + dt.timedelta(seconds=2)
    )
    assert sent == 3  # boss: LINE and e-mail; deputy: e-mail
    pushes = [
        m["text"]
        for d in line_sandbox.deliveries(endpoint="push", user_id=boss_line)
        for m in d.messages
    ]
    assert len(pushes) == 1 and pushes[0].startswith("【緊急配信の承認依頼】")
    assert sorted(a for m in mail.outbox for a in m.to) == [boss.email, deputy.email]
    assert reviewer.email not in {a for m in mail.outbox for a in m.to}

    # The feed lists the same message again a minute later: no new draft, no new alert.
    with django_capture_on_commit_callbacks(execute=False):
        ingest(QUAKE_AT + dt.timedelta(minutes=1))
    assert AlertRound.objects.filter(broadcast=broadcast).count() == 1
    assert Alert.objects.filter(round__broadcast=broadcast).count() == 3
