"""The recipient count over the followers' own columns (issue 16's count speed).

The count the screens show and the recipients the sender reads come from the bit masks and
the language id on each follower row; the choice tables stay the truth. These tests check
the masks against a plain evaluation of the choice tables, for random followers and random
audiences, after citizens chose, changed and removed things through the services; that a
list refuses a 64th option; and that a deleted area's position never carries old choices
into a new area."""

from __future__ import annotations

import importlib
import random
from collections import Counter
from types import SimpleNamespace

import pytest
from django.db import connection

from broadcasts.models import (
    AgeGroup,
    Area,
    Broadcast,
    Category,
    Follower,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    Language,
)
from broadcasts.models.audiences import BASE_LANGUAGE
from broadcasts.models.bits import BIT_POSITIONS
from broadcasts.selectors import audiences as audience_selectors
from broadcasts.selectors.audiences import AudienceSpec
from broadcasts.services import audiences
from broadcasts.services.citizens import followers as follower_services
from broadcasts.services.errors import BroadcastInvalid
from line_sandbox import synthetic_user_id

from ...factories import FollowerFactory

pytestmark = pytest.mark.django_db


# --- the plain evaluation ----------------------------------------------------------------------


def expected(spec: AudienceSpec) -> dict[str, str]:
    """LINE user id → the version they get, read from the choice tables with Python's sets:
    the rules of ``selectors/audiences.py`` written out once more, the slow way."""
    cats: dict[int, set[int]] = {}
    for fid, cid in Follower.categories.through.objects.values_list("follower_id", "category_id"):
        cats.setdefault(fid, set()).add(cid)
    areas: dict[int, set[int]] = {}
    for fid, aid in FollowerArea.objects.values_list("follower_id", "area_id"):
        areas.setdefault(fid, set()).add(aid)
    ages: dict[int, set[int]] = {}
    for fid, gid in FollowerAgeGroup.objects.values_list("follower_id", "age_group_id"):
        ages.setdefault(fid, set()).add(gid)
    language = dict(FollowerLanguage.objects.values_list("follower_id", "language__code"))
    wanted_languages = set(spec.language_codes)
    out: dict[str, str] = {}
    for f in Follower.objects.filter(unfollowed_at=None):
        code = language.get(f.pk)
        version = code if code in spec.variant_codes else BASE_LANGUAGE
        if spec.audience == Broadcast.Audience.STAFF_TEST:  # staff: no narrowing
            if f.is_staff_test_recipient:
                out[f.line_user_id] = version
            continue
        if spec.audience == Broadcast.Audience.SUBSCRIBERS and not (
            cats.get(f.pk, set()) & set(spec.category_ids)
        ):
            continue
        mine = areas.get(f.pk, set())
        if spec.area_ids and not (mine & set(spec.area_ids) or (spec.include_unset and not mine)):
            continue
        mine = ages.get(f.pk, set())
        if spec.age_group_ids and not (
            mine & set(spec.age_group_ids) or (spec.include_unset and not mine)
        ):
            continue
        if wanted_languages and not (
            code in wanted_languages or (code is None and BASE_LANGUAGE in wanted_languages)
        ):
            continue
        out[f.line_user_id] = version
    return out


def streamed(spec: AudienceSpec) -> dict[str, str]:
    """What the sender would send to (small chunks and pages, so the keyset pages turn)."""
    got: Counter[str] = Counter()
    version: dict[str, str] = {}
    for code, chunk in audience_selectors.recipient_stream(spec, chunk_size=7, page_size=13):
        for uid in chunk:
            got[uid] += 1
            version[uid] = code
    assert set(got.values()) <= {1}, "a follower in two requests"
    return version


def assert_agrees(spec: AudienceSpec) -> None:
    want = expected(spec)
    count = audience_selectors.audience_count(spec)
    assert count.total == len(want), spec
    per = Counter(want.values())
    for code in {BASE_LANGUAGE, *spec.variant_codes}:
        assert count.per_variant.get(code, 0) == per.get(code, 0), (spec, code)
    assert streamed(spec) == want, spec


def random_spec(rng: random.Random) -> AudienceSpec:
    categories = list(Category.objects.values_list("pk", flat=True))
    areas = list(Area.objects.values_list("pk", flat=True))
    ages = list(AgeGroup.objects.values_list("pk", flat=True))
    codes = sorted(Language.objects.values_list("code", flat=True))

    def some(items: list, most: int) -> tuple:
        return tuple(sorted(rng.sample(items, rng.randint(0, min(most, len(items))))))

    audience = rng.choice(
        [Broadcast.Audience.SUBSCRIBERS] * 4
        + [Broadcast.Audience.ALL, Broadcast.Audience.STAFF_TEST]
    )
    return AudienceSpec(
        audience=audience,
        category_ids=some(categories, 4) or (rng.choice(categories),),
        area_ids=some(areas, 5),
        age_group_ids=some(ages, 3),
        language_codes=some(codes, 4),
        include_unset=rng.random() < 0.5,
        variant_codes=some([c for c in codes if c != BASE_LANGUAGE], 3),
    )


def citizens_choose(rng: random.Random, n: int) -> list[Follower]:
    """n followers who follow, choose, change and remove things through the services, as
    their taps would; some block the account, some come back."""
    categories = list(Category.objects.values_list("code", flat=True))
    areas = list(Area.objects.values_list("code", flat=True))
    ages = list(AgeGroup.objects.values_list("code", flat=True))
    languages = list(Language.objects.values_list("code", flat=True))
    followers = []
    for i in range(n):
        uid = synthetic_user_id(760_000 + rng.randrange(10**6) * 1000 + i)
        follower = follower_services.follower_follow(line_user_id=uid)
        if rng.random() < 0.3:
            follower_services.subscription_set_all(follower=follower, subscribed=False)
        for _ in range(rng.randint(0, 4)):
            follower_services.subscription_set(
                follower=follower,
                category_code=rng.choice(categories),
                subscribed=rng.random() < 0.6,
            )
        for _ in range(rng.choice((0, 0, 1, 2, 4))):
            audiences.follower_area_set(
                follower=follower, code=rng.choice(areas), chosen=rng.random() < 0.75
            )
        for _ in range(rng.choice((0, 1, 3))):
            audiences.follower_age_group_set(
                follower=follower, code=rng.choice(ages), chosen=rng.random() < 0.75
            )
        roll = rng.random()
        if roll < 0.4:
            audiences.follower_language_set(follower=follower, code=rng.choice(languages))
        if roll < 0.1:
            audiences.follower_language_set(follower=follower, code=None)
        if rng.random() < 0.05:
            audiences.follower_choices_clear(follower=follower, dimension="area")
        if rng.random() < 0.05:
            audiences.follower_choices_clear(follower=follower, dimension="age")
        if rng.random() < 0.1:
            follower_services.follower_unfollow(line_user_id=uid)
            if rng.random() < 0.5:
                follower_services.follower_follow(line_user_id=uid)
        if rng.random() < 0.05:
            Follower.objects.filter(pk=follower.pk).update(is_staff_test_recipient=True)
        followers.append(follower)
    return followers


def masks_from_tables() -> dict[int, tuple[int, int, int, int | None]]:
    """Each follower's masks and language id, computed in Python from the choice tables."""
    bit = {
        "c": dict(Category.objects.values_list("pk", "bit")),
        "a": dict(Area.objects.values_list("pk", "bit")),
        "g": dict(AgeGroup.objects.values_list("pk", "bit")),
    }
    out = {pk: [0, 0, 0, None] for pk in Follower.objects.values_list("pk", flat=True)}
    for fid, cid in Follower.categories.through.objects.values_list("follower_id", "category_id"):
        out[fid][0] |= 1 << bit["c"][cid]
    for fid, aid in FollowerArea.objects.values_list("follower_id", "area_id"):
        out[fid][1] |= 1 << bit["a"][aid]
    for fid, gid in FollowerAgeGroup.objects.values_list("follower_id", "age_group_id"):
        out[fid][2] |= 1 << bit["g"][gid]
    for fid, lid in FollowerLanguage.objects.values_list("follower_id", "language_id"):
        out[fid][3] = lid
    return {pk: tuple(v) for pk, v in out.items()}  # type: ignore[misc]


def masks_stored() -> dict[int, tuple[int, int, int, int | None]]:
    return {
        pk: (c, a, g, lang)
        for pk, c, a, g, lang in Follower.objects.values_list(
            "pk", "category_bits", "area_bits", "age_group_bits", "language_id"
        )
    }


# --- the count and the stream equal the plain evaluation ---------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_count_and_recipients_equal_the_choice_tables_for_random_followers(seed):
    rng = random.Random(seed)
    # a few more areas than the sample, so masks use higher positions too
    for i in range(rng.randint(3, 12)):
        Area.objects.create(code=f"extra-{seed}-{i}", label=f"追加地区{i}", sort_order=50 + i)
    citizens_choose(rng, 150)
    assert masks_stored() == masks_from_tables()
    for _ in range(25):
        assert_agrees(random_spec(rng))


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_rebuild_and_the_migration_copy_the_choice_tables_written_in_bulk(seed):
    """Choices loaded in bulk (an import, the bench) bypass the services: the rebuild service
    and migration 0016's own SQL both make the rows agree with the tables again."""
    rng = random.Random(seed)
    followers = [FollowerFactory() for _ in range(150)]
    categories = list(Category.objects.all())
    areas, ages = list(Area.objects.all()), list(AgeGroup.objects.all())
    languages = list(Language.objects.all())
    for f in followers:
        f.categories.set(rng.sample(categories, rng.randint(0, 3)))
        for area in rng.sample(areas, rng.choice((0, 1, 1, 2))):
            FollowerArea.objects.create(follower=f, area=area)
        for group in rng.sample(ages, rng.choice((0, 1, 2))):
            FollowerAgeGroup.objects.create(follower=f, age_group=group)
        if rng.random() < 0.4:
            FollowerLanguage.objects.create(follower=f, language=rng.choice(languages))
    assert masks_stored() != masks_from_tables()  # written around the services
    audiences.followers_bits_rebuild()
    assert masks_stored() == masks_from_tables()
    for _ in range(10):
        assert_agrees(random_spec(rng))

    Follower.objects.update(category_bits=0, area_bits=0, age_group_bits=0, language=None)
    migration = importlib.import_module("broadcasts.migrations.0016_follower_choice_bits")
    migration.masks_fill(None, SimpleNamespace(connection=connection))
    assert masks_stored() == masks_from_tables()


def test_rebuild_of_some_followers_leaves_the_others():
    a, b = FollowerFactory(categories=["disaster_crime"]), FollowerFactory()
    chuo = Area.objects.get(code="sample-chuo")
    FollowerArea.objects.create(follower=a, area=chuo)
    FollowerArea.objects.create(follower=b, area=chuo)
    audiences.followers_bits_rebuild(follower_ids=[a.pk])
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.area_bits == 1 << chuo.bit
    assert b.area_bits == 0


# --- each change reaches the row -------------------------------------------------------------


def area_count(area: Area, *, include_unset: bool = False) -> int:
    return audience_selectors.audience_count(
        AudienceSpec(audience="all", area_ids=(area.pk,), include_unset=include_unset)
    ).total


def test_choosing_changing_and_removing_update_the_count():
    follower = follower_services.follower_follow(line_user_id=synthetic_user_id(761_001))
    chuo, hokubu = Area.objects.get(code="sample-chuo"), Area.objects.get(code="sample-hokubu")
    assert (area_count(chuo), area_count(chuo, include_unset=True)) == (0, 1)

    audiences.follower_area_set(follower=follower, code="sample-chuo", chosen=True)
    assert (area_count(chuo), area_count(hokubu), area_count(hokubu, include_unset=True)) == (
        1,
        0,
        0,
    )
    audiences.follower_area_set(follower=follower, code="sample-hokubu", chosen=True)
    audiences.follower_area_set(follower=follower, code="sample-chuo", chosen=False)
    assert (area_count(chuo), area_count(hokubu)) == (0, 1)
    audiences.follower_choices_clear(follower=follower, dimension="area")
    assert (area_count(hokubu), area_count(hokubu, include_unset=True)) == (0, 1)

    en_only = AudienceSpec(audience="all", language_codes=("en",), variant_codes=("en",))
    audiences.follower_language_set(follower=follower, code="en")
    assert audience_selectors.audience_count(en_only).per_variant == {"ja": 0, "en": 1}
    audiences.follower_language_set(follower=follower, code="zh")
    assert audience_selectors.audience_count(en_only).total == 0
    audiences.follower_language_set(follower=follower, code=None)
    ja = AudienceSpec(audience="all", language_codes=(BASE_LANGUAGE,))
    assert audience_selectors.audience_count(ja).total == 1

    disaster = Category.objects.get(code="disaster_crime")
    subscribers = AudienceSpec(audience="subscribers", category_ids=(disaster.pk,))
    assert audience_selectors.audience_count(subscribers).total == 1  # a new friend: all
    follower_services.subscription_set(
        follower=follower, category_code="disaster_crime", subscribed=False
    )
    assert audience_selectors.audience_count(subscribers).total == 0
    follower_services.subscription_set_all(follower=follower, subscribed=True)
    assert audience_selectors.audience_count(subscribers).total == 1

    follower_services.follower_unfollow(line_user_id=follower.line_user_id)
    assert audience_selectors.audience_count(subscribers).total == 0
    follower_services.follower_follow(line_user_id=follower.line_user_id)  # comes back
    assert audience_selectors.audience_count(subscribers).total == 1
    assert masks_stored() == masks_from_tables()


# --- 63 options per list, and a deleted option's position ---------------------------------------


def test_a_64th_area_is_refused_with_a_clear_message(admin_user):
    for i in range(BIT_POSITIONS - Area.objects.count()):
        audiences.choice_save(
            choice=Area(code=f"many-{i}", label=f"地区{i}", sort_order=i), actor=admin_user
        )
    assert sorted(Area.objects.values_list("bit", flat=True)) == list(range(BIT_POSITIONS))
    with pytest.raises(BroadcastInvalid) as refused:
        audiences.choice_save(choice=Area(code="one-more", label="もう一つ"), actor=admin_user)
    assert "63件まで" in refused.value.problems[0].message
    assert not Area.objects.filter(code="one-more").exists()


def test_two_areas_added_at_the_same_instant_both_get_a_number(admin_user, monkeypatch):
    """Two administrators adding an area at once are both given the lowest free number; the
    unique index refuses the second, which takes the next one instead of a server error.
    (Played here by handing the second save the number the first has just taken.)"""
    first = Area(code="race-a", label="同時A")
    audiences.choice_save(choice=first, actor=admin_user)
    take = Area._bit_take
    handed: list[int] = []

    def stale_then_fresh() -> int:
        bit = first.bit if not handed else take()
        handed.append(bit)
        return bit

    monkeypatch.setattr(Area, "_bit_take", staticmethod(stale_then_fresh))
    second = Area(code="race-b", label="同時B")
    audiences.choice_save(choice=second, actor=admin_user)
    assert handed[0] == first.bit and len(handed) == 2
    second.refresh_from_db()
    assert second.bit is not None and second.bit != first.bit
    assert Area.objects.filter(code="race-b").count() == 1


def test_the_same_code_saved_twice_at_once_is_a_clear_error(admin_user):
    audiences.choice_save(choice=Area(code="twice", label="一回目"), actor=admin_user)
    with pytest.raises(BroadcastInvalid) as refused:
        audiences.choice_save(choice=Area(code="twice", label="二回目"), actor=admin_user)
    assert "もう一度保存してください" in refused.value.problems[0].message
    assert list(Area.objects.filter(code="twice").values_list("label", flat=True)) == ["一回目"]


def test_the_admin_refuses_a_64th_age_group_on_the_form(client, admin_user):
    client.force_login(admin_user)
    for i in range(BIT_POSITIONS - AgeGroup.objects.count()):
        AgeGroup.objects.create(code=f"g{i}", label=f"区分{i}")
    response = client.post(
        "/admin/broadcasts/agegroup/add/",
        {"code": "one-more", "label": "もう一つ", "sort_order": 0, "is_active": "on"},
    )
    assert response.status_code == 200
    assert "63件まで" in response.content.decode()
    assert not AgeGroup.objects.filter(code="one-more").exists()
    page = client.get(f"/admin/broadcasts/agegroup/{AgeGroup.objects.first().pk}/change/")
    assert "集計番号" in page.content.decode()


def test_a_deleted_areas_position_comes_back_empty(admin_user):
    chuo, hokubu = Area.objects.get(code="sample-chuo"), Area.objects.get(code="sample-hokubu")
    followers = [
        follower_services.follower_follow(line_user_id=synthetic_user_id(762_000 + i))
        for i in range(4)
    ]
    for f in followers[:3]:
        audiences.follower_area_set(follower=f, code="sample-chuo", chosen=True)
    audiences.follower_area_set(follower=followers[0], code="sample-hokubu", chosen=True)
    freed = chuo.bit

    audiences.choice_delete(choice=chuo, actor=admin_user)
    assert not Follower.objects.filter(area_bits__gt=0).exclude(pk=followers[0].pk).exists()
    assert masks_stored() == masks_from_tables()
    assert area_count(hokubu) == 1  # the other area's choices are untouched

    new = Area.objects.create(code="new-area", label="新しい地区")
    assert new.bit == freed  # the lowest free position, reused only now the row is gone
    assert area_count(new) == 0
    # the two who chose only 中央 now count as "not set"
    assert area_count(new, include_unset=True) == 3


def test_an_area_deleted_around_the_service_does_not_lend_its_choosers_to_the_next(admin_user):
    """A row deleted without the service (a shell, a cascade) leaves its position set in the
    masks; the next option to take that position clears it first."""
    follower = follower_services.follower_follow(line_user_id=synthetic_user_id(763_001))
    audiences.follower_area_set(follower=follower, code="sample-chuo", chosen=True)
    freed = Area.objects.get(code="sample-chuo").bit
    Area.objects.filter(code="sample-chuo").delete()
    new = Area.objects.create(code="new-area", label="新しい地区")
    assert new.bit == freed
    assert area_count(new) == 0
    assert masks_stored() == masks_from_tables()


def test_an_area_a_broadcast_targets_cannot_be_deleted(admin_user):
    from ...factories import BroadcastFactory

    chuo = Area.objects.get(code="sample-chuo")
    broadcast = BroadcastFactory(categories=["disaster_crime"])
    target = audiences.BroadcastAudience.objects.create(broadcast=broadcast)
    target.areas.set([chuo])
    with pytest.raises(BroadcastInvalid) as refused:
        audiences.choice_delete(choice=chuo, actor=admin_user)
    assert "削除できません" in refused.value.problems[0].message
    assert Area.objects.filter(pk=chuo.pk).exists()


def test_a_count_is_three_queries_whatever_the_audience(django_assert_num_queries):
    """The options' positions (one query for all dimensions), the languages, then one
    aggregate over the followers for the total and the per-version breakdown."""
    rng = random.Random(7)
    citizens_choose(rng, 20)
    spec = AudienceSpec(
        audience="subscribers",
        category_ids=tuple(Category.objects.values_list("pk", flat=True)[:2]),
        area_ids=tuple(Area.objects.values_list("pk", flat=True)[:3]),
        age_group_ids=tuple(AgeGroup.objects.values_list("pk", flat=True)[:2]),
        language_codes=("ja", "en"),
        variant_codes=("en",),
    )
    with django_assert_num_queries(3):
        audience_selectors.audience_count(spec)
    assert_agrees(spec)


@pytest.mark.django_db(transaction=True)
def test_taps_at_the_same_moment_all_land_on_the_row():
    """The attacker's version: one citizen's taps processed by several workers at once. Each
    write sets or clears its own bit in one statement on the locked row (no read-modify-
    write in Python), so none is lost and the row agrees with the choice tables."""
    if connection.vendor != "postgresql":
        pytest.skip("parallel writers need PostgreSQL; SQLite serializes every write anyway")
    import threading

    from django.apps import apps

    from broadcasts.audience_defaults import seed_audiences

    seed_audiences(apps)  # transactional tests flush what the data migrations seeded
    for i in range(12):
        Area.objects.create(code=f"race-{i}", label=f"地区{i}")
    follower = follower_services.follower_follow(line_user_id=synthetic_user_id(764_001))
    codes = list(Area.objects.values_list("code", flat=True))
    workers = 6
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def taps(n: int) -> None:
        mine = codes[n::workers]
        try:
            start.wait()
            row = Follower.objects.get(pk=follower.pk)  # each worker loads the row itself
            for code in mine:
                audiences.follower_area_set(follower=row, code=code, chosen=True)
            for code in mine[::2]:
                audiences.follower_area_set(follower=row, code=code, chosen=False)
            audiences.follower_language_set(follower=row, code="en")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=taps, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    kept = {c for n in range(workers) for c in codes[n::workers][1::2]}
    assert (
        set(FollowerArea.objects.filter(follower=follower).values_list("area__code", flat=True))
        == kept
    )
    assert masks_stored() == masks_from_tables()
    expected_mask = 0
    for bit in Area.objects.filter(code__in=kept).values_list("bit", flat=True):
        expected_mask |= 1 << bit
    follower.refresh_from_db()
    assert follower.area_bits == expected_mask
