"""Ordinary submissions: reviewers get one e-mail digest, never a LINE message."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail

from broadcasts import services
from broadcasts.models import Alert, AlertRound
from broadcasts.services import notifications
from tests.broadcasts.notifications.conftest import NIGHT, link_line, submit

pytestmark = pytest.mark.django_db


def later(minutes: int):
    instant = NIGHT + dt.timedelta(minutes=minutes)
    return lambda: instant


def test_ordinary_submissions_reach_each_reviewer_as_one_digest(team, line_sandbox, night):
    reviewer_line = link_line(line_sandbox, team["reviewer"], 830_001)
    first = submit(team["drafter"], emergency=False, title="手賀沼花火大会のお知らせ")
    second = submit(team["drafter"], emergency=False, title="市民まつりのお知らせ")
    assert {r.kind for r in AlertRound.objects.all()} == {AlertRound.Kind.REVIEW}
    # nothing goes out at submission: not by LINE, not by e-mail, not from the beat backstop
    assert notifications.approval_alerts_tick(now_fn=later(1)).sent == 0
    assert mail.outbox == []
    assert line_sandbox.deliveries(endpoint="push") == []

    assert notifications.review_digests_send(now_fn=later(15)) == 3  # reviewer, boss, deputy
    [digest] = [m for m in mail.outbox if m.to == ["reviewer@city.kashiwa.lg.jp"]]
    assert digest.subject == "【承認待ち】2 件の配信が承認を待っています"
    assert "手賀沼花火大会のお知らせ" in digest.body and "市民まつりのお知らせ" in digest.body
    assert f"/broadcasts/{first.pk}/" in digest.body and f"/broadcasts/{second.pk}/" in digest.body
    # the admin does not review; the drafter wrote them
    assert not [m for m in mail.outbox if "admin@" in m.to[0] or "drafter@" in m.to[0]]
    assert line_sandbox.deliveries(user_id=reviewer_line) == []

    # The next digest has only what is new.
    mail.outbox.clear()
    assert notifications.review_digests_send(now_fn=later(30)) == 0
    third = submit(team["drafter"], emergency=False, title="健康診断のお知らせ")
    assert notifications.review_digests_send(now_fn=later(45)) == 3
    [digest] = [m for m in mail.outbox if m.to == ["reviewer@city.kashiwa.lg.jp"]]
    assert digest.subject == "【承認待ち】1 件の配信が承認を待っています"
    assert f"/broadcasts/{third.pk}/" in digest.body


def test_a_digest_leaves_out_what_was_approved_meanwhile(team, line_sandbox, night):
    done = submit(team["drafter"], emergency=False, title="承認済みのお知らせ")
    submit(team["drafter"], emergency=False, title="まだ待っているお知らせ")
    services.broadcast_reject(broadcast=done, actor=team["reviewer"], comment="日付の誤り")
    notifications.review_digests_send(now_fn=later(15))
    [digest] = [m for m in mail.outbox if m.to == ["reviewer@city.kashiwa.lg.jp"]]
    assert "まだ待っているお知らせ" in digest.body
    assert "承認済みのお知らせ" not in digest.body
    assert Alert.objects.filter(round__broadcast=done, status=Alert.Status.SKIPPED).exists()
