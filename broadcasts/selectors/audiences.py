"""Audiences (issue 16): whom a broadcast reaches through categories × areas × age groups ×
language, how many that is per language version, and what each follower chose.

Rules, in one place:

* an empty dimension does not narrow;
* a follower who chose nothing in the area (or age-group) dimension is reached by an
  area-targeted (age-targeted) broadcast only if its audience says ``include_unset``;
* a follower's language is the one they chose, 日本語 if none; a language filter keeps
  followers whose language is in it;
* each follower gets exactly one version: the variant in their language if the broadcast
  has one, else the base (日本語). ``recipient_stream`` reads each recipient once, with
  their language, in pages by id, so the partition is complete and disjoint.

The count and the send read the same columns of the follower row (``followers_for_spec``):
the masks and language id the services keep beside the choice tables (``models/bits.py``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Value

from ..models import (
    AgeGroup,
    AggregationUnit,
    Area,
    Broadcast,
    BroadcastAudience,
    Category,
    Follower,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    Language,
    LineFeatureRefusal,
)
from ..models.audiences import BASE_LANGUAGE
from ..models.bits import mask_of
from .citizens import followers_active

AGGREGATION_FEATURE = "custom_aggregation_units"


@dataclass(frozen=True)
class AudienceSpec:
    """Everything that decides who receives a broadcast, by ids and codes."""

    audience: str
    category_ids: tuple[int, ...] = ()
    area_ids: tuple[int, ...] = ()
    age_group_ids: tuple[int, ...] = ()
    language_codes: tuple[str, ...] = ()
    include_unset: bool = True
    variant_codes: tuple[str, ...] = ()
    # The categories' mask when it was read with their ids (the sender's preparation); else
    # ``_masks`` reads it.
    category_mask: int | None = field(default=None, compare=False)

    @property
    def narrowed(self) -> bool:
        """Whether the attribute dimensions narrow the audience at all."""
        return bool(self.area_ids or self.age_group_ids or self.language_codes)

    @property
    def targeted(self) -> bool:
        """Whether the send must be multicasts (our own recipient list): category
        subscribers, any attribute filter, or language versions to route."""
        if self.audience == Broadcast.Audience.STAFF_TEST:
            return False
        return (
            self.audience == Broadcast.Audience.SUBSCRIBERS
            or self.narrowed
            or bool(self.variant_codes)
        )


def audience_spec(broadcast: Broadcast) -> AudienceSpec:
    """The audience of a saved broadcast. A row the sender locked says whether it has
    language versions and audience rows at all (``has_variants``/``has_audience_rows``,
    read with the lock): what it lacks is not asked for, and the spec is kept on that row for
    the rest of the send (a broadcast being sent cannot be edited; its preparation asked
    for the spec three times)."""
    cached: AudienceSpec | None = getattr(broadcast, "_audience_spec", None)
    if cached is not None:
        return cached
    spec = _audience_spec_read(broadcast)
    if hasattr(broadcast, "has_variants"):  # the sender's locked row (send._locked_for_send)
        broadcast._audience_spec = spec  # type: ignore[attr-defined]
    return spec


def categories_read(broadcast: Broadcast) -> list[tuple[int, str, int]]:
    """(id, code, bit) of the broadcast's categories. On the sender's locked row (which
    cannot be edited while it is sent) the reading is kept for the rest of its preparation:
    the approved-hash check, the audience and its mask asked for them in three reads."""
    cached: list[tuple[int, str, int]] | None = getattr(broadcast, "_categories", None)
    if cached is not None:
        return cached
    rows = list(broadcast.categories.order_by().values_list("id", "code", "bit"))
    if hasattr(broadcast, "has_variants"):  # the sender's locked row (send._locked_for_send)
        broadcast._categories = rows  # type: ignore[attr-defined]
    return rows


def _audience_spec_read(broadcast: Broadcast) -> AudienceSpec:
    categories = categories_read(broadcast)
    category_ids = tuple(sorted(pk for pk, _code, _bit in categories))
    category_mask = mask_of([bit for _pk, _code, bit in categories])
    variant_codes = (
        tuple(sorted(broadcast.variants.values_list("language__code", flat=True)))
        if getattr(broadcast, "has_variants", True)
        else ()
    )
    target = (
        BroadcastAudience.objects.filter(broadcast=broadcast).first()
        if getattr(broadcast, "has_audience_rows", True)
        else None
    )
    if target is None:
        return AudienceSpec(
            audience=broadcast.audience,
            category_ids=category_ids,
            variant_codes=variant_codes,
            category_mask=category_mask,
        )
    return AudienceSpec(
        audience=broadcast.audience,
        category_ids=category_ids,
        area_ids=tuple(sorted(target.areas.values_list("id", flat=True))),
        age_group_ids=tuple(sorted(target.age_groups.values_list("id", flat=True))),
        language_codes=tuple(sorted(target.languages.values_list("code", flat=True))),
        include_unset=target.include_unset,
        variant_codes=variant_codes,
        category_mask=category_mask,
    )


def hash_part(broadcast: Broadcast) -> dict[str, Any] | None:
    """What the content hash adds for audiences and language versions; ``None`` when the
    broadcast has neither (so hashes approved before issue 16 stay valid)."""
    if broadcast.pk is None:
        return None
    target = BroadcastAudience.objects.filter(broadcast=broadcast).first()
    variants = {
        v.language.code: v.messages
        for v in broadcast.variants.select_related("language").order_by("language__code")
    }
    areas = sorted(target.areas.values_list("code", flat=True)) if target else []
    ages = sorted(target.age_groups.values_list("code", flat=True)) if target else []
    languages = sorted(target.languages.values_list("code", flat=True)) if target else []
    if not (areas or ages or languages or variants):
        return None
    return {
        "areas": areas,
        "age_groups": ages,
        "languages": languages,
        "include_unset": target.include_unset if target else True,
        "variants": variants,
    }


def _masks(spec: AudienceSpec) -> dict[str, int]:
    """The masks of the audience's categories, areas and age groups (by kind: ``category``,
    ``area``, ``age``), read in one query."""
    known = spec.category_mask is not None and bool(spec.category_ids)
    parts = [
        (kind, model, ids)
        for kind, model, ids in (
            ("category", Category, () if known else spec.category_ids),
            ("area", Area, spec.area_ids),
            ("age", AgeGroup, spec.age_group_ids),
        )
        if ids
    ]
    masks = {"category": (spec.category_mask or 0) if known else 0, "area": 0, "age": 0}
    if not parts:
        return masks
    queries = [
        model.objects.filter(pk__in=list(ids))
        .order_by()
        .annotate(kind=Value(kind))
        .values_list("kind", "bit")
        for kind, model, ids in parts
    ]
    rows = queries[0].union(*queries[1:], all=True) if len(queries) > 1 else queries[0]
    for kind, bit in rows:
        masks[kind] |= mask_of([bit])
    return masks


def _hits(column: str, mask: int) -> Any:
    """``column & mask``: positive when the follower chose one of the mask's options (the
    masks use positions 0–62, so a hit is never negative)."""
    return F(column).bitand(mask)


def followers_for_spec(
    spec: AudienceSpec, languages: dict[int | None, str] | None = None, *, after: int = 0
) -> QuerySet[Follower]:
    """The active followers a broadcast with this audience reaches: the one query builder
    behind the count the screens show and the recipients the sender reads.

    Over the follower row's own columns (``models/bits.py``), one scan with bit tests::

        category_bits & :categories <> 0                      (category subscribers)
        AND (area_bits & :areas <> 0 OR (:include_unset AND area_bits = 0))
        AND (age_group_bits & :ages <> 0 OR (:include_unset AND age_group_bits = 0))
        AND (language_id IN :languages OR (:ja_included AND language_id IS NULL))

    (each line only when that dimension narrows). ``languages``: id → code, if the caller
    has read them already. ``after``: only followers with a higher ``id`` (a block of a
    send's rows, ``sending/build.py``), so each block's scan starts where the last ended."""
    followers = followers_active()
    if after:
        followers = followers.filter(id__gt=after)
    if spec.audience == Broadcast.Audience.STAFF_TEST:
        return followers.filter(is_staff_test_recipient=True)
    masks = _masks(
        spec
        if spec.audience == Broadcast.Audience.SUBSCRIBERS
        else dataclasses.replace(spec, category_ids=())
    )
    if spec.audience == Broadcast.Audience.SUBSCRIBERS:
        followers = followers.alias(category_hit=_hits("category_bits", masks["category"])).filter(
            category_hit__gt=0
        )
    if spec.area_ids:
        chosen = Q(area_hit__gt=0)
        if spec.include_unset:
            chosen |= Q(area_bits=0)
        followers = followers.alias(area_hit=_hits("area_bits", masks["area"])).filter(chosen)
    if spec.age_group_ids:
        chosen = Q(age_hit__gt=0)
        if spec.include_unset:
            chosen |= Q(age_group_bits=0)
        followers = followers.alias(age_hit=_hits("age_group_bits", masks["age"])).filter(chosen)
    if spec.language_codes:
        wanted = set(spec.language_codes)
        language_ids = [
            pk for pk, code in (languages or _language_codes()).items() if code in wanted
        ]
        chosen = Q(language_id__in=language_ids)
        if BASE_LANGUAGE in spec.language_codes:
            chosen |= Q(language_id=None)
        followers = followers.filter(chosen)
    return followers


@dataclass(frozen=True)
class AudienceCount:
    """Recipients in total and per version sent (language code → count; the base is
    ``BASE_LANGUAGE``)."""

    total: int
    per_variant: dict[str, int] = field(default_factory=dict)


def audience_count(spec: AudienceSpec) -> AudienceCount:
    """How many followers the audience reaches, and how many get each version. One
    aggregate query (grouped by the follower row's language id)."""
    codes = _language_codes()
    rows = followers_for_spec(spec, codes).order_by().values("language_id").annotate(n=Count("id"))
    per: dict[str, int] = {BASE_LANGUAGE: 0}
    total = 0
    variants = set(spec.variant_codes)
    for row in rows:
        code = codes.get(row["language_id"])
        key = code if code in variants else BASE_LANGUAGE
        per[key] = per.get(key, 0) + row["n"]
        total += row["n"]
    for code in variants:
        per.setdefault(code, 0)
    return AudienceCount(total=total, per_variant=per)


def _language_codes() -> dict[int | None, str]:
    """Every language, id → code (a handful of rows)."""
    return dict(Language.objects.values_list("pk", "code"))


def broadcast_recipient_count(broadcast: Broadcast) -> int:
    """Who a saved broadcast reaches now (for ALL without narrowing, an estimate from our
    follower table, as ``selectors.recipient_count``)."""
    return followers_for_spec(audience_spec(broadcast)).count()


def all_friends_count() -> int:
    return followers_active().count()


def recipient_stream(
    spec: AudienceSpec, chunk_size: int = 500, page_size: int = 5000
) -> Iterator[tuple[str, list[str]]]:
    """``(version, user ids)`` chunks, each version's chunks filled in follower order.

    The recipients are read with the count's query builder, a page at a time in id order
    (keyset: ``id > last``; no server-side cursor held across the pages), each row with its
    language, so every follower appears in exactly one page and one version."""
    variants = set(spec.variant_codes)
    codes = _language_codes()
    query = followers_for_spec(spec, codes).order_by("id")
    buckets: dict[str, list[str]] = {}
    last = 0
    while True:
        page = list(
            query.filter(id__gt=last).values_list("id", "line_user_id", "language_id")[:page_size]
        )
        for _pk, user_id, language_id in page:
            code = codes.get(language_id)
            key = code if code in variants else BASE_LANGUAGE
            bucket = buckets.setdefault(key, [])
            bucket.append(user_id)
            if len(bucket) == chunk_size:
                yield key, bucket
                buckets[key] = []
        if len(page) < page_size:
            break
        last = page[-1][0]
    for key in sorted(buckets):
        if buckets[key]:
            yield key, buckets[key]


# --- the lists and a follower's choices ----------------------------------------------------


def areas_active() -> QuerySet[Area]:
    return Area.objects.filter(is_active=True)


def age_groups_active() -> QuerySet[AgeGroup]:
    return AgeGroup.objects.filter(is_active=True)


def languages_active() -> QuerySet[Language]:
    return Language.objects.filter(is_active=True)


@dataclass(frozen=True)
class FollowerChoices:
    area_codes: frozenset[str]
    age_group_codes: frozenset[str]
    language_code: str | None


def follower_choices(follower: Follower) -> FollowerChoices:
    language = (
        FollowerLanguage.objects.filter(follower=follower)
        .values_list("language__code", flat=True)
        .first()
    )
    return FollowerChoices(
        area_codes=frozenset(
            FollowerArea.objects.filter(follower=follower).values_list("area__code", flat=True)
        ),
        age_group_codes=frozenset(
            FollowerAgeGroup.objects.filter(follower=follower).values_list(
                "age_group__code", flat=True
            )
        ),
        language_code=language,
    )


# --- aggregation units -----------------------------------------------------------------------


def aggregation_units_used(month: str) -> int:
    """Distinct unit names this app gave multicasts in a JST month (``YYYYMM``)."""
    return (
        AggregationUnit.objects.filter(month=month)
        .exclude(name="")
        .values("name")
        .distinct()
        .count()
    )


def aggregation_refusal() -> LineFeatureRefusal | None:
    """LINE's refusal of custom aggregation units, if it refused (shown on 運用状況)."""
    return LineFeatureRefusal.objects.filter(feature=AGGREGATION_FEATURE).first()


@dataclass(frozen=True)
class UnitOutlook:
    """What a send's unit depends on, read in one statement (it is read inside the send's
    locked preparation): the unit it already has (``None``: none yet; "": it goes without),
    whether LINE refused the feature, and our distinct names of the month."""

    existing: str | None
    refused: bool
    used: int


def aggregation_unit_outlook(broadcast_id: int, month: str) -> UnitOutlook:
    """``used`` counts as ``aggregation_units_used`` does, in the same statement as the rest."""
    units = AggregationUnit._meta.db_table
    refusals = LineFeatureRefusal._meta.db_table
    sql = f"""
        SELECT (SELECT name FROM {units} WHERE broadcast_id = %s),
               EXISTS (SELECT 1 FROM {refusals} WHERE feature = %s),
               (SELECT COUNT(DISTINCT name) FROM {units} WHERE month = %s AND name <> '')
    """  # noqa: S608 - our table names; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [broadcast_id, AGGREGATION_FEATURE, month])
        existing, refused, used = cursor.fetchone()
    return UnitOutlook(existing=existing, refused=bool(refused), used=int(used or 0))


def unit_stats_window(sent_at: dt.datetime) -> tuple[dt.date, dt.date]:
    """The JST days to ask LINE about: the send day and up to 13 days after (LINE allows a
    30-day window; statistics are kept for 14 days)."""
    from ..schedule import jst_date

    start = jst_date(sent_at)
    return start, start + dt.timedelta(days=13)
