"""「受信した防災情報」, the draft's source panel, 運用状況 and the rules' admin."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from broadcasts.models import BroadcastEvent, OfficialFeed, OfficialMessage, OfficialRule, User
from broadcasts.permissions import SYSTEM_AUTHOR_USERNAME
from broadcasts.services.official import official_message_ingest
from tests.broadcasts.sending.helpers import jst, make_followers

from .samples import HEAVY_RAIN, sample
from .test_jma import XXE

NIGHT = jst(2026, 7, 15, 3, 13)


def ingest(data: bytes, url: str = "x.xml"):
    return official_message_ingest(
        data=data, source=OfficialMessage.Source.FILE, url=url, now=NIGHT
    ).message


def test_the_list_shows_what_was_received_the_rule_and_the_draft(client, reviewer):
    make_followers(["U" + "1" * 32], ["disaster_crime"])
    drafted = ingest(sample(HEAVY_RAIN))
    refused = ingest(XXE, url="evil.xml")
    ignored = ingest(sample("15_15_01_220314_VPWW54.xml"))
    client.force_login(reviewer)
    page = client.get(reverse("broadcasts:official_list")).content.decode()
    assert "受信した防災情報" in page
    assert "気象警報（柏市）→ 防災・防犯の登録者へ" in page
    assert "柏市：大雨警報（発表）" in page
    assert reverse("broadcasts:detail", args=[drafted.broadcast_id]) in page
    assert "危険な XML" in page
    assert "対象地域が含まれていません。" in page
    only_refused = client.get(reverse("broadcasts:official_list"), {"outcome": "refused"})
    rows = only_refused.content.decode()
    assert f'data-official="{refused.pk}"' in rows
    assert f'data-official="{drafted.pk}"' not in rows
    only_drafts = client.get(
        reverse("broadcasts:official_list"), {"drafted": "on"}
    ).content.decode()
    assert f'data-official="{drafted.pk}"' in only_drafts
    assert f'data-official="{ignored.pk}"' not in only_drafts
    unmatched = client.get(
        reverse("broadcasts:official_list"), {"rule": "unmatched"}
    ).content.decode()
    assert (
        f'data-official="{ignored.pk}"' in unmatched
        and f'data-official="{drafted.pk}"' not in unmatched
    )


def test_a_bad_filter_is_not_an_error(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("broadcasts:official_list"), {"outcome": "nonsense", "page": "x"})
    assert response.status_code == 200


def test_a_drafter_may_not_see_the_list(client, drafter):
    client.force_login(drafter)
    assert client.get(reverse("broadcasts:official_list")).status_code == 403


def test_the_draft_shows_its_source_message(client, supervisor):
    make_followers(["U" + "1" * 32], ["disaster_crime"])
    message = ingest(sample(HEAVY_RAIN))
    client.force_login(supervisor)
    detail = client.get(reverse("broadcasts:detail", args=[message.broadcast_id])).content.decode()
    assert "この下書きのもとになった防災情報（自動起案）" in detail
    assert reverse("broadcasts:official_detail", args=[message.pk]) in detail
    assert "自動起案（防災情報）" in detail  # the author shown is the system, not a person
    source = client.get(reverse("broadcasts:official_detail", args=[message.pk])).content.decode()
    assert "銚子地方気象台" in source
    assert "&lt;Report" in source  # the raw message, escaped


def test_ops_shows_a_failing_feed(client, admin_user):
    OfficialFeed.objects.create(
        url="https://www.data.jma.go.jp/developer/xml/feed/extra.xml",
        last_error="HTTP 503: https://www.data.jma.go.jp/developer/xml/feed/extra.xml",
        last_error_at=dt.datetime(2026, 7, 15, 3, 0, tzinfo=dt.UTC),
        consecutive_failures=3,
    )
    client.force_login(admin_user)
    page = client.get(reverse("broadcasts:ops")).content.decode()
    assert 'data-testid="official-feed-problems"' in page
    assert "3 回連続" in page and "HTTP 503" in page
    assert 'data-testid="ops-problem"' in page
    as_json = client.get(reverse("broadcasts:ops"), {"format": "json"}).json()
    assert as_json["official_feed_problems"][0]["failures"] == 3


def test_a_rule_edited_in_the_admin_is_audited_and_checked(client, admin_user):
    rule = OfficialRule.objects.get(kind="earthquake", min_intensity="4")
    client.force_login(admin_user)
    url = reverse("admin:broadcasts_officialrule_change", args=[rule.pk])
    form = {
        "name": rule.name,
        "kind": rule.kind,
        "area_codes": "341、1221700",
        "names": "",
        "min_intensity": "3",
        "priority": rule.priority,
        "category": rule.category_id,
        "audience": rule.audience,
        "template": "{見出し}{誤字}",
        "enabled": "on",
        "sort_order": rule.sort_order,
    }
    refused = client.post(url, form)
    assert refused.status_code == 200
    assert "使えない差し込み {誤字} があります" in refused.content.decode()
    form["template"] = "【{見出し}】{内容}"
    saved = client.post(url, form)
    assert saved.status_code == 302
    rule.refresh_from_db()
    assert (rule.min_intensity, rule.area_codes) == ("3", "341,1221700")
    event = BroadcastEvent.objects.get(verb="official_rule_changed")
    assert event.actor == admin_user
    assert event.data["before"]["min_intensity"] == "4"


def test_the_system_author_cannot_be_given_a_password_in_the_admin(client, admin_user):
    system = User.objects.get(username=SYSTEM_AUTHOR_USERNAME)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[system.pk]),
        {"password1": "a-long-password-2026!", "password2": "a-long-password-2026!"},
    )
    assert response.status_code == 302
    system.refresh_from_db()
    assert not system.has_usable_password() and not system.is_active
