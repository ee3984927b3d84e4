"""Audiences (issue 16): whom a broadcast reaches through categories × areas × age groups ×
language, how many that is per language version, and what each follower chose.

Rules, in one place:

* an empty dimension does not narrow;
* a follower who chose nothing in the area (or age-group) dimension is reached by an
  area-targeted (age-targeted) broadcast only if its audience says ``include_unset``;
* a follower's language is the one they chose, 日本語 if none; a language filter keeps
  followers whose language is in it;
* each follower gets exactly one version: the variant in their language if the broadcast
  has one, else the base (日本語). ``recipient_stream`` reads the recipients and their
  language in one query (one snapshot), so the partition is complete and disjoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet

from ..models import (
    AgeGroup,
    AggregationUnit,
    Area,
    Broadcast,
    BroadcastAudience,
    Follower,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    Language,
    LineFeatureRefusal,
)
from ..models.audiences import BASE_LANGUAGE
from .citizens import followers_for_audience

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
    read with the lock): what it lacks is not asked for."""
    category_ids = tuple(sorted(broadcast.categories.values_list("id", flat=True)))
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
            audience=broadcast.audience, category_ids=category_ids, variant_codes=variant_codes
        )
    return AudienceSpec(
        audience=broadcast.audience,
        category_ids=category_ids,
        area_ids=tuple(sorted(target.areas.values_list("id", flat=True))),
        age_group_ids=tuple(sorted(target.age_groups.values_list("id", flat=True))),
        language_codes=tuple(sorted(target.languages.values_list("code", flat=True))),
        include_unset=target.include_unset,
        variant_codes=variant_codes,
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


def _dimension(through: Any, column: str, ids: Iterable[int], include_unset: bool) -> Q:
    """Followers who chose one of ``ids`` (or, with ``include_unset``, chose nothing in this
    dimension). Uncorrelated ``IN`` subqueries: PostgreSQL hashes each once ("hashed
    SubPlan") and probes it per follower, where an ``OR`` of correlated ``EXISTS`` was run
    per follower (seconds at 100,000 followers; bench/audiences)."""
    chosen = Q(pk__in=through.objects.filter(**{f"{column}__in": list(ids)}).values("follower_id"))
    if not include_unset:
        return chosen
    return chosen | ~Q(pk__in=through.objects.values("follower_id"))


def followers_for_spec(spec: AudienceSpec) -> QuerySet[Follower]:
    """The active followers a broadcast with this audience reaches."""
    followers = followers_for_audience(spec.audience, spec.category_ids)
    if spec.audience == Broadcast.Audience.STAFF_TEST:
        return followers
    if spec.area_ids:
        followers = followers.filter(
            _dimension(FollowerArea, "area_id", spec.area_ids, spec.include_unset)
        )
    if spec.age_group_ids:
        followers = followers.filter(
            _dimension(FollowerAgeGroup, "age_group_id", spec.age_group_ids, spec.include_unset)
        )
    if spec.language_codes:
        language_ids = list(
            Language.objects.filter(code__in=spec.language_codes).values_list("pk", flat=True)
        )
        chosen = Q(
            pk__in=FollowerLanguage.objects.filter(language_id__in=language_ids).values(
                "follower_id"
            )
        )
        if BASE_LANGUAGE in spec.language_codes:
            chosen = chosen | ~Q(pk__in=FollowerLanguage.objects.values("follower_id"))
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
    aggregate query (grouped by chosen language)."""
    rows = (
        followers_for_spec(spec)
        .order_by()
        .values("language_choice__language__code")
        .annotate(n=Count("id"))
    )
    per: dict[str, int] = {BASE_LANGUAGE: 0}
    total = 0
    variants = set(spec.variant_codes)
    for row in rows:
        code = row["language_choice__language__code"]
        key = code if code in variants else BASE_LANGUAGE
        per[key] = per.get(key, 0) + row["n"]
        total += row["n"]
    for code in variants:
        per.setdefault(code, 0)
    return AudienceCount(total=total, per_variant=per)


def broadcast_recipient_count(broadcast: Broadcast) -> int:
    """Who a saved broadcast reaches now (for ALL without narrowing, an estimate from our
    follower table, as ``selectors.recipient_count``)."""
    return followers_for_spec(audience_spec(broadcast)).count()


def all_friends_count() -> int:
    return followers_for_audience(Broadcast.Audience.ALL, ()).count()


def recipient_stream(spec: AudienceSpec, chunk_size: int = 500) -> Iterator[tuple[str, list[str]]]:
    """``(version, user ids)`` chunks, each version's chunks filled in follower order. One
    query: every follower appears once, in exactly one version."""
    variants = set(spec.variant_codes)
    rows = (
        followers_for_spec(spec)
        .order_by("id")
        .values_list("line_user_id", "language_choice__language__code")
        .iterator(chunk_size=2000)
    )
    buckets: dict[str, list[str]] = {}
    for user_id, code in rows:
        key = code if code in variants else BASE_LANGUAGE
        bucket = buckets.setdefault(key, [])
        bucket.append(user_id)
        if len(bucket) == chunk_size:
            yield key, bucket
            buckets[key] = []
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


def unit_stats_window(sent_at: dt.datetime) -> tuple[dt.date, dt.date]:
    """The JST days to ask LINE about: the send day and up to 13 days after (LINE allows a
    30-day window; statistics are kept for 14 days)."""
    from ..schedule import jst_date

    start = jst_date(sent_at)
    return start, start + dt.timedelta(days=13)
