"""Policy versions (policy 7): admins publish a version; the public page shows it with its
dates and history from its 施行日; publishing creates the announcement for approval."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from broadcasts import permissions
from broadcasts.citizen_defaults import policy_url
from broadcasts.models import Broadcast, BroadcastEvent, PolicyVersion, StandardReply
from broadcasts.policy import POLICY_FILE, wareki
from broadcasts.services import citizens
from broadcasts.services.errors import BroadcastInvalid, BroadcastPermissionDenied
from broadcasts.services.policy import policy_version_publish, policy_version_save

pytestmark = pytest.mark.django_db

PUBLISHED_AT = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)  # 3/1(月) 10:00 JST


def new_version(admin_user, *, effective: dt.date = dt.date(2027, 4, 1)) -> PolicyVersion:
    body = POLICY_FILE.read_text(encoding="utf-8").replace(
        "原則として、開庁日の8時30分から17時15分までとする。",
        "原則として、開庁日の8時00分から17時15分までとする。",
    )
    return policy_version_save(
        version=PolicyVersion(
            body=body,
            enacted_on=dt.date(2021, 8, 15),
            amended_on=dt.date(2027, 2, 20),
            effective_on=effective,
            summary="情報配信時間の開始を8時00分に改めました",
        ),
        actor=admin_user,
    )


def test_wareki():
    assert wareki(dt.date(2021, 8, 15)) == "令和3年8月15日"
    assert wareki(dt.date(2019, 5, 1)) == "令和元年5月1日"
    assert wareki(dt.date(2019, 4, 30)) == "平成31年4月30日"


def test_the_seeded_version_is_the_one_in_force(client, time_machine):
    time_machine.move_to(PUBLISHED_AT, tick=False)
    html = client.get(reverse("broadcasts:public_policy")).content.decode()
    assert "令和3年8月15日" in html and "令和5年3月17日" in html
    assert "（現行版）" in html


def test_a_new_version_shows_on_the_public_page_from_its_effective_date_with_history(
    client, admin_user, time_machine
):
    version = new_version(admin_user)
    policy_version_publish(version=version, actor=admin_user, now=PUBLISHED_AT)

    # published, not yet in force: announced, the old text still applies
    time_machine.move_to(dt.datetime(2027, 3, 31, 14, 59, tzinfo=dt.UTC), tick=False)
    html = client.get(reverse("broadcasts:public_policy")).content.decode()
    assert "令和9年4月1日</time> から施行します" in html
    assert "開庁日の8時30分から17時15分まで" in html

    # 4/1 00:00 JST: the new version is in force, with its dates, and the history lists both
    time_machine.move_to(dt.datetime(2027, 3, 31, 15, 0, tzinfo=dt.UTC), tick=False)
    html = client.get(reverse("broadcasts:public_policy")).content.decode()
    assert "開庁日の8時00分から17時15分まで" in html
    assert "開庁日の8時30分から" not in html
    assert '<dt>改正</dt><dd><time datetime="2027-02-20">令和9年2月20日</time>' in html
    assert '<dt>施行</dt><dd><time datetime="2027-04-01">令和9年4月1日</time>' in html
    history = html.split('data-testid="policy-history"')[1].split("</tbody>")[0]
    assert history.index("令和9年4月1日") < history.index("令和5年3月17日")
    assert "情報配信時間の開始を8時00分に改めました" in history
    account = client.get(reverse("broadcasts:public_account")).content.decode()
    assert "運用ポリシー（令和9年4月1日施行）" in account


def test_publishing_creates_an_announcement_waiting_for_a_reviewers_approval(admin_user, reviewer):
    version = new_version(admin_user)
    version = policy_version_publish(version=version, actor=admin_user, now=PUBLISHED_AT)
    announcement = version.announcement
    assert announcement.status == Broadcast.Status.PENDING_REVIEW
    assert announcement.author == admin_user
    text = announcement.messages[0]["text"]
    assert "運用ポリシー改正のお知らせ" in text
    assert "令和9年2月20日に改正し、令和9年4月1日から施行します" in text
    assert policy_url() in text
    assert [c.code for c in announcement.categories.all()] == ["municipal"]
    # four eyes: the admin who published cannot approve it; a 広報担当 can
    assert not permissions.can_approve(admin_user, announcement)
    assert permissions.can_approve(reviewer, announcement)
    verbs = list(
        BroadcastEvent.objects.filter(broadcast=announcement)
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["create", "submit", "policy_version_published"]


def test_a_published_version_cannot_be_changed_or_published_again(admin_user):
    version = new_version(admin_user)
    version = policy_version_publish(version=version, actor=admin_user, now=PUBLISHED_AT)
    with pytest.raises(BroadcastInvalid):
        policy_version_publish(version=version, actor=admin_user, now=PUBLISHED_AT)
    version.summary = "こっそり変更"
    with pytest.raises(BroadcastInvalid):
        policy_version_save(version=version, actor=admin_user)
    assert Broadcast.objects.count() == 1


def test_only_admins_manage_versions(admin_user, reviewer):
    version = new_version(admin_user)
    with pytest.raises(BroadcastPermissionDenied):
        policy_version_publish(version=version, actor=reviewer, now=PUBLISHED_AT)
    with pytest.raises(BroadcastPermissionDenied):
        policy_version_save(version=version, actor=reviewer)


def test_bad_dates_are_refused(admin_user):
    with pytest.raises(BroadcastInvalid, match="施行日は制定日より後"):
        policy_version_save(
            version=PolicyVersion(
                body="1 目的\n本文",
                enacted_on=dt.date(2027, 1, 1),
                effective_on=dt.date(2026, 1, 1),
                summary="x",
            ),
            actor=admin_user,
        )


def test_the_follow_greeting_links_to_the_policy():
    greeting = citizens.standard_reply_messages(StandardReply.Kind.GREETING)
    assert policy_url() in greeting[0]["text"]
    assert policy_url().endswith(reverse("broadcasts:public_policy"))


def test_the_admin_publish_action(client, admin_user):
    version = new_version(admin_user)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:broadcasts_policyversion_changelist"),
        {"action": "publish", "_selected_action": [version.pk]},
        follow=True,
    )
    assert response.status_code == 200
    version.refresh_from_db()
    assert version.status == PolicyVersion.Status.PUBLISHED
    assert "承認待ち" in response.content.decode()
