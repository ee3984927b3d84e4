"""Targeted sends (issue 16): categories × areas × age groups × language, one language
version per follower, approval bound to the audience, aggregation units and their
statistics. Everything about who received what is read from the LINE sandbox's log."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

import pytest
from django.core.cache import cache

from broadcasts import services
from broadcasts.models import (
    AgeGroup,
    AggregationUnit,
    Area,
    Broadcast,
    BroadcastAudience,
    Category,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    Language,
    LineFeatureRefusal,
)
from broadcasts.selectors import audiences as audience_selectors
from broadcasts.services import audiences, insight
from line_sandbox.state import synthetic_user_id

from ..sending.helpers import approve, jst, make_followers

S = Broadcast.Status
MULTICAST = "/v2/bot/message/multicast"
NOW = jst(2026, 12, 1, 10, 0)
JA, EN, ZH = (
    "子育て支援センターからのお知らせです。",
    "Notice from the childcare centre.",
    "育儿支援中心的通知。",
)


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def in_window(time_machine):
    time_machine.move_to(NOW, tick=True)
    return NOW


@pytest.fixture
def town(db, line_sandbox):
    """60 followers of 子育て・教育 in the sandbox and the app: by index, area
    chuo/hokubu/none, age 0–2 for every other one, language en/zh/ko/none by index % 4."""
    ids = [synthetic_user_id(20_000 + i) for i in range(60)]
    line_sandbox.state.add_followers(user_ids=ids)
    followers = make_followers(ids, ["childcare_education"])
    chuo, hokubu = Area.objects.get(code="sample-chuo"), Area.objects.get(code="sample-hokubu")
    baby = AgeGroup.objects.get(code="age-0-2")
    langs = {c: Language.objects.get(code=c) for c in ("en", "zh", "ko")}
    for i, f in enumerate(followers):
        if i % 3 == 0:
            FollowerArea.objects.create(follower=f, area=chuo)
        elif i % 3 == 1:
            FollowerArea.objects.create(follower=f, area=hokubu)
        if i % 2 == 0:
            FollowerAgeGroup.objects.create(follower=f, age_group=baby)
        code = {0: "en", 1: "zh", 2: "ko"}.get(i % 4)
        if code:
            FollowerLanguage.objects.create(follower=f, language=langs[code])
    audiences.followers_bits_rebuild()  # the choices were written in bulk, not through the services
    return ids


def drafted(
    author,
    *,
    areas=(),
    ages=(),
    languages=(),
    include_unset=True,
    variants=None,
    priority=Broadcast.Priority.NORMAL,
) -> Broadcast:
    broadcast = services.broadcast_create(
        author=author,
        title="お知らせ",
        categories=list(Category.objects.filter(code="childcare_education")),
        messages=[{"type": "text", "text": JA}],
        audience=Broadcast.Audience.SUBSCRIBERS,
        priority=priority,
        emergency_reason="避難指示の発令" if priority == Broadcast.Priority.EMERGENCY else "",
        requested_at=None,
    )
    audiences.broadcast_targeting_set(
        broadcast=broadcast,
        actor=author,
        areas=list(Area.objects.filter(code__in=areas)),
        age_groups=list(AgeGroup.objects.filter(code__in=ages)),
        languages=list(Language.objects.filter(code__in=languages)),
        include_unset=include_unset,
        variants={code: [{"type": "text", "text": t}] for code, t in (variants or {}).items()},
    )
    return broadcast


def submitted_and_approved(broadcast: Broadcast, author, approver) -> Broadcast:
    services.broadcast_submit(broadcast=broadcast, actor=author)
    return approve(broadcast, approver, now=NOW)


def send_now(broadcast: Broadcast):
    assert broadcast.pk in services.broadcasts_dispatch_due(now=broadcast.scheduled_for).claimed
    return services.broadcast_send(broadcast_id=broadcast.pk, sleep=no_sleep)


def received(sandbox) -> dict[str, list[str]]:
    """Per follower, the texts they received (from the sandbox's log)."""
    got: dict[str, list[str]] = {}
    for delivery in sandbox.state.deliveries(endpoint="multicast"):
        for uid in delivery.recipients:
            got.setdefault(uid, []).append(delivery.messages[0]["text"])
    return got


# --- counts ---------------------------------------------------------------------------------


def test_three_dimension_count_and_per_version_counts(town, drafter):
    b = drafted(
        drafter,
        areas=["sample-chuo"],
        ages=["age-0-2"],
        languages=[],
        include_unset=False,
        variants={"en": EN, "zh": ZH},
    )
    spec = audience_selectors.audience_spec(b)
    count = audience_selectors.audience_count(spec)
    # chuo (i%3==0) and age 0–2 (i%2==0): i % 6 == 0 → 10 followers
    expected = [i for i in range(60) if i % 6 == 0]
    assert count.total == len(expected) == 10
    by_lang = Counter({0: "en", 1: "zh", 2: "ko"}.get(i % 4, "ja") for i in expected)
    assert count.per_variant == {
        "en": by_lang["en"],
        "zh": by_lang["zh"],
        "ja": by_lang["ko"] + by_lang["ja"],
    }
    # with followers who chose no area / no age included: chuo or no area (i % 3 in 0, 2),
    # and age 0–2 or no age (everyone here: odd i chose no age group)
    b2 = drafted(drafter, areas=["sample-chuo"], ages=["age-0-2"])
    loose = audience_selectors.audience_count(audience_selectors.audience_spec(b2)).total
    assert loose == len([i for i in range(60) if i % 3 in (0, 2)]) == 40
    # a language filter: English readers only
    b3 = drafted(drafter, languages=["en"])
    assert audience_selectors.audience_count(audience_selectors.audience_spec(b3)).total == 15


def test_a_citizen_who_chose_nothing_still_gets_what_they_got_before(
    town, drafter, reviewer, line_sandbox, in_window
):
    b = submitted_and_approved(drafted(drafter), drafter, reviewer)  # no targeting at all
    assert send_now(b).status == "sent"
    assert set(received(line_sandbox)) == set(town)
    assert all(texts == [JA] for texts in received(line_sandbox).values())


# --- per-language delivery -----------------------------------------------------------------


def test_each_follower_gets_their_language_or_japanese_exactly_once(
    town, drafter, reviewer, line_sandbox, in_window
):
    b = submitted_and_approved(drafted(drafter, variants={"en": EN, "zh": ZH}), drafter, reviewer)
    assert send_now(b).status == "sent"
    got = received(line_sandbox)
    assert set(got) == set(town)
    for i, uid in enumerate(town):
        want = {0: EN, 1: ZH}.get(i % 4, JA)  # ko and no language: Japanese
        assert got[uid] == [want], (i, got[uid])
    versions = Counter(b.deliveries.values_list("language_code", flat=True))
    assert versions == {"en": 1, "zh": 1, "": 1}


def test_a_500_after_acceptance_leaves_every_follower_exactly_one_version(
    town, drafter, reviewer, line_sandbox, in_window
):
    line_sandbox.state.set_fault(MULTICAST, 500, mode="accept_then_fail", count=2)
    line_sandbox.state.set_fault(MULTICAST, 503, count=1)
    b = submitted_and_approved(drafted(drafter, variants={"en": EN, "zh": ZH}), drafter, reviewer)
    assert send_now(b).status == "sent"
    got = received(line_sandbox)
    assert set(got) == set(town)
    assert {len(texts) for texts in got.values()} == {1}
    assert b.deliveries.filter(http_status=409).count() == 2


def test_area_targeting_reaches_only_those_areas(town, drafter, reviewer, line_sandbox, in_window):
    b = submitted_and_approved(
        drafted(drafter, areas=["sample-hokubu"], include_unset=False), drafter, reviewer
    )
    assert send_now(b).status == "sent"
    assert set(received(line_sandbox)) == {uid for i, uid in enumerate(town) if i % 3 == 1}


def test_an_emergency_targets_areas_with_the_typed_count(
    town, drafter, supervisor, line_sandbox, in_window
):
    b = drafted(
        drafter, areas=["sample-chuo"], include_unset=False, priority=Broadcast.Priority.EMERGENCY
    )
    services.broadcast_submit(broadcast=b, actor=drafter)
    confirmation = services.EmergencyConfirmation(typed_count="60", second_factor_verified_at=NOW)
    with pytest.raises(services.BroadcastInvalid, match="受信者数が一致しません"):
        services.broadcast_approve(broadcast=b, actor=supervisor, now=NOW, emergency=confirmation)
    confirmation = services.EmergencyConfirmation(typed_count="20", second_factor_verified_at=NOW)
    services.broadcast_approve(broadcast=b, actor=supervisor, now=NOW, emergency=confirmation)
    b.refresh_from_db()
    assert send_now(b).status == "sent"
    assert set(received(line_sandbox)) == {uid for i, uid in enumerate(town) if i % 3 == 0}


# --- approval binds the audience -----------------------------------------------------------


def test_editing_the_audience_after_approval_voids_the_approval(town, drafter, reviewer):
    b = submitted_and_approved(drafted(drafter, areas=["sample-chuo"]), drafter, reviewer)
    assert b.status == S.SCHEDULED
    audiences.broadcast_targeting_set(
        broadcast=b,
        actor=reviewer,
        areas=list(Area.objects.all()),
        age_groups=[],
        languages=[],
        include_unset=True,
        variants={},
    )
    b.refresh_from_db()
    assert b.status == S.PENDING_REVIEW
    assert not b.approved_hash and b.approved_by is None
    # The reviewer who edited it has written part of it: they may no longer approve it.
    with pytest.raises(services.BroadcastPermissionDenied):
        approve(b, reviewer, now=NOW)


def test_a_version_changed_behind_the_services_back_is_not_sent(
    town, drafter, reviewer, line_sandbox, in_window
):
    b = submitted_and_approved(drafted(drafter, variants={"en": EN}), drafter, reviewer)
    b.variants.filter(language__code="en").update(messages=[{"type": "text", "text": "Edited"}])
    assert send_now(b).status == "needs_attention"
    assert line_sandbox.state.deliveries(endpoint="multicast") == []


def test_an_audience_changed_behind_the_services_back_is_not_sent(
    town, drafter, reviewer, line_sandbox, in_window
):
    b = submitted_and_approved(drafted(drafter, areas=["sample-chuo"]), drafter, reviewer)
    BroadcastAudience.objects.get(broadcast=b).areas.add(Area.objects.get(code="sample-nanbu"))
    assert send_now(b).status == "needs_attention"
    assert line_sandbox.state.deliveries(endpoint="multicast") == []


def test_a_version_with_a_drill_marker_or_placeholder_cannot_be_submitted(town, drafter):
    b = drafted(drafter, variants={"en": "【訓練】 drill"})
    with pytest.raises(services.BroadcastInvalid, match="英語版"):
        services.broadcast_submit(broadcast=b, actor=drafter)


# --- follow-ups ----------------------------------------------------------------------------


def test_corrections_carry_the_same_audience_and_languages(
    town, drafter, reviewer, supervisor, line_sandbox, in_window
):
    b = submitted_and_approved(
        drafted(drafter, areas=["sample-chuo"], variants={"en": EN, "zh": ZH}), drafter, reviewer
    )
    assert send_now(b).status == "sent"
    b.refresh_from_db()
    for kind in (Broadcast.Kind.CORRECTION, Broadcast.Kind.CANCELLATION):
        follow_up = services.broadcast_create_follow_up(original=b, actor=drafter, kind=kind)
        assert audience_selectors.audience_spec(follow_up).area_ids == (
            Area.objects.get(code="sample-chuo").pk,
        )
        texts = {v.language.code: v.messages[0]["text"] for v in follow_up.variants.all()}
        assert set(texts) == {"en", "zh"}
        assert follow_up.content_hash == services.compute_hash(follow_up)
        if kind == Broadcast.Kind.CORRECTION:
            assert texts["en"].startswith("[Correction]")
            # The placeholder must be replaced in every language before review.
            with pytest.raises(services.BroadcastInvalid, match="英語版"):
                services.broadcast_submit(broadcast=follow_up, actor=drafter)
        else:
            assert texts["zh"].startswith("【撤销】")


# --- aggregation units and their statistics ----------------------------------------------------


def test_every_multicast_carries_the_broadcasts_unit_and_stats_come_per_unit(
    town, drafter, reviewer, line_sandbox, in_window
):
    line_sandbox.state.configure(insight_delay_days=0, insight_privacy_threshold=0)
    b = submitted_and_approved(drafted(drafter, variants={"en": EN}), drafter, reviewer)
    assert send_now(b).status == "sent"
    unit = f"kashiwa_b{b.pk}"
    multicasts = line_sandbox.state.deliveries(endpoint="multicast")
    assert len(multicasts) == 2
    assert {d.aggregation_units for d in multicasts} == {(unit,)}
    assert AggregationUnit.objects.get(broadcast=b).name == unit

    b.refresh_from_db()
    stats = insight.broadcast_stats_fetch(broadcast=b, now=NOW + dt.timedelta(hours=1))
    assert stats.raw["source"] == "line_unit"
    assert stats.delivered == 60
    assert stats.unique_impression is not None and 0 < stats.unique_impression <= 60
    assert any(
        r.path == "/v2/bot/insight/message/event/aggregation" and r.status == 200
        for r in line_sandbox.requests()
    )


def test_when_line_refuses_units_the_send_goes_on_and_it_is_recorded_once(
    town, drafter, reviewer, line_sandbox, in_window
):
    line_sandbox.state.configure(aggregation_units_allowed=False)
    first = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(first).status == "sent"
    second = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(second).status == "sent"
    assert all(d.aggregation_units == () for d in line_sandbox.state.deliveries())
    assert LineFeatureRefusal.objects.count() == 1
    assert AggregationUnit.objects.get(broadcast=second).skipped_reason
    first.refresh_from_db()
    stats = insight.broadcast_stats_fetch(broadcast=first, now=NOW + dt.timedelta(hours=1))
    assert stats.raw["source"] == "app"
    assert stats.delivered == 60


MULTICAST = "/v2/bot/message/multicast"
USAGE = "/v2/bot/message/aggregation/info"


def test_a_multicast_refused_for_its_unit_goes_once_more_without_it_under_its_retry_key(
    town, drafter, reviewer, line_sandbox, in_window
):
    # LINE's usage endpoint is down as the send starts, so the send gets a unit; then LINE
    # refuses the unit on the multicast itself (403: units need a corporate application).
    line_sandbox.state.set_fault(USAGE, 500, count=None)
    line_sandbox.state.configure(aggregation_units_allowed=False)
    b = submitted_and_approved(drafted(drafter, variants={"en": EN}), drafter, reviewer)
    assert send_now(b).status == "sent"

    accepted = line_sandbox.state.deliveries(endpoint="multicast")
    assert all(d.aggregation_units == () for d in accepted)
    got = Counter(uid for d in accepted for uid in d.recipients)
    assert set(got) == set(town) and set(got.values()) == {1}  # everyone once
    refused = [r for r in line_sandbox.requests() if r.path == MULTICAST and r.status == 403]
    assert 1 <= len(refused) <= 2  # the requests already in flight, each retried once
    assert {r.retry_key for r in refused} <= {d.retry_key for d in accepted}
    assert LineFeatureRefusal.objects.count() == 1
    unit = AggregationUnit.objects.get(broadcast=b)
    assert unit.name == "" and "受け付けませんでした" in unit.skipped_reason
    b.refresh_from_db()
    assert b.deliveries_accepted == b.deliveries_total == 2

    # the next send does not try the unit again
    second = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(second).status == "sent"
    assert [r for r in line_sandbox.requests() if r.status == 403] == refused
    assert LineFeatureRefusal.objects.count() == 1


def test_a_multicast_refused_for_the_months_units_goes_without_and_is_not_a_refusal(
    town, drafter, reviewer, line_sandbox, in_window
):
    """LINE's own count of unit names is used up (another system on the channel): a 400
    naming the units. This send goes without; units are not switched off for later sends."""
    with line_sandbox.state.lock:
        line_sandbox.state.aggregation_units_per_month = 0
    b = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(b).status == "sent"
    accepted = line_sandbox.state.deliveries(endpoint="multicast")
    assert len(accepted) == 1 and accepted[0].aggregation_units == ()
    assert sorted(accepted[0].recipients) == sorted(town)
    refused = [r for r in line_sandbox.requests() if r.path == MULTICAST and r.status == 400]
    assert [r.retry_key for r in refused] == [accepted[0].retry_key]
    assert not LineFeatureRefusal.objects.exists()
    assert "受け付けませんでした" in AggregationUnit.objects.get(broadcast=b).skipped_reason


def test_a_message_refused_by_line_is_not_retried_without_the_unit(
    town, drafter, reviewer, line_sandbox, in_window
):
    line_sandbox.state.set_fault(MULTICAST, 400, count=None)
    b = submitted_and_approved(drafted(drafter), drafter, reviewer)
    send_now(b)
    b.refresh_from_db()
    assert b.status != "sent"
    assert line_sandbox.state.deliveries(endpoint="multicast") == []
    assert AggregationUnit.objects.get(broadcast=b).name == f"kashiwa_b{b.pk}"
    assert not LineFeatureRefusal.objects.exists()


def test_the_months_unit_limit_is_respected(
    town, drafter, reviewer, line_sandbox, in_window, monkeypatch
):
    # LINE allows 1,000 unit names a month; with a limit of 1 the second send goes without.
    monkeypatch.setattr(audiences, "AGGREGATION_UNITS_PER_MONTH", 1)
    first = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(first).status == "sent"
    AggregationUnit.objects.filter(broadcast=first).delete()  # forget ours: LINE's count decides
    cache.clear()  # ten minutes later: LINE's count is read again
    second = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(second).status == "sent"
    unit = AggregationUnit.objects.get(broadcast=second)
    assert unit.name == "" and "上限" in unit.skipped_reason
    last = line_sandbox.state.deliveries(endpoint="multicast")[-1]
    assert last.aggregation_units == ()
    assert not LineFeatureRefusal.objects.exists()


def test_lines_unit_count_is_read_once_in_ten_minutes_and_ours_count_on_top(
    town, drafter, reviewer, line_sandbox, in_window, monkeypatch
):
    """LINE is asked for the month's unit names once (not inside every send's locked
    preparation); until it is asked again, the units we make count on top of its figure."""
    from broadcasts.line.gateway import get_gateway

    monkeypatch.setattr(audiences, "AGGREGATION_UNITS_PER_MONTH", 2)
    # Another tool of the account has used one unit name this month.
    get_gateway().multicast(
        to=[town[0]],
        messages=[{"type": "text", "text": "別ツール"}],
        retry_key=uuid.uuid4(),
        notification_disabled=False,
        aggregation_unit="other_tool",
    )
    first = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(first).status == "sent"
    assert AggregationUnit.objects.get(broadcast=first).name == f"kashiwa_b{first.pk}"
    second = submitted_and_approved(drafted(drafter), drafter, reviewer)
    assert send_now(second).status == "sent"
    # LINE's 1 (read at the first send) + our 1 made since = the limit of 2.
    unit = AggregationUnit.objects.get(broadcast=second)
    assert unit.name == "" and "上限" in unit.skipped_reason
    asked = [r for r in line_sandbox.requests() if r.path == "/v2/bot/message/aggregation/info"]
    assert len(asked) == 1
