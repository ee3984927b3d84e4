"""Audiences (issue 16): citizens' choices of areas, children's age groups and a language
(inside LINE, through 受信設定 postbacks), a broadcast's audience and language versions, the
recipients of a targeted send per version, and LINE's per-unit statistics for multicasts.

Policy 10: a citizen's choices are made only by their own taps, each can be changed or
removed, and nothing else is recorded about them."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from kashiwa.cache import cache_get_or_none, cache_set_or_skip

from .. import permissions
from ..audience_defaults import FOLLOW_UP_TEXTS
from ..content import (
    CORRECTION_PLACEHOLDER,
    DRILL_MARKER,
    Problem,
    check_messages,
    message_texts,
)
from ..line.errors import LineError, LinePermanentError, LineQuotaExceededError
from ..line.gateway import LineGateway, UnitStats, get_gateway
from ..models import (
    AgeGroup,
    AggregationUnit,
    Area,
    Broadcast,
    BroadcastAudience,
    BroadcastVariant,
    Delivery,
    Follower,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    Language,
    LineFeatureRefusal,
    User,
)
from ..models.audiences import (
    AGGREGATION_UNIT_PATTERN,
    AGGREGATION_UNITS_PER_MONTH,
    BASE_LANGUAGE,
)
from ..models.bits import BitPositioned, bits_free, no_free_bit_message
from ..schedule import jst_date
from ..selectors import audiences as audience_selectors
from .audit import audit_record
from .errors import BroadcastInvalid, BroadcastPermissionDenied, InvalidTransition

logger = logging.getLogger(__name__)

QUICK_REPLY_MAX = 13
AREAS_PER_PAGE = 10

# --- the lists (admin) ------------------------------------------------------------------------


def choice_save(*, choice: Area | AgeGroup | Language, actor: User) -> None:
    """Save an area, age group or language from the admin, with an audit row. Options are
    never deleted (broadcasts and citizens refer to them): ``is_active`` hides one. 日本語,
    every broadcast's base, stays active."""
    if isinstance(choice, Language) and choice.code == BASE_LANGUAGE and not choice.is_active:
        raise BroadcastInvalid(
            [Problem("is_active", "日本語は外せません（すべての配信の基本です）。")]
        )
    model = type(choice)
    if choice.pk is None and isinstance(choice, BitPositioned) and not bits_free(model):
        raise BroadcastInvalid([Problem("bit", no_free_bit_message(model))])
    before = (
        model.objects.filter(pk=choice.pk)
        .values("code", "label", "sort_order", "is_active")
        .first()
        if choice.pk
        else None
    )
    _choice_insert_or_update(choice)
    audit_record(
        verb="audience_choice_saved",
        actor=actor,
        data={
            "model": model._meta.model_name,
            "id": choice.pk,
            "before": before,
            "after": {
                "code": choice.code,
                "label": choice.label,
                "sort_order": choice.sort_order,
                "is_active": choice.is_active,
            },
        },
    )


def _choice_insert_or_update(choice: Area | AgeGroup | Language) -> None:
    """Save the option. Two administrators adding options at the same instant can both be
    given the lowest free 集計番号; the database's unique index refuses the second, which
    then takes the next free number (a savepoint per try, so the caller's transaction
    stays usable). A clash that persists (the same code saved twice at once) is a clear
    error, not a server error."""
    new = choice.pk is None
    for _ in range(3):
        try:
            with transaction.atomic():
                choice.save()
            return
        except IntegrityError:
            if not new:
                break
            choice.pk = None
            if isinstance(choice, BitPositioned):
                choice.bit = None  # take the next free number on the next try
    raise BroadcastInvalid(
        [
            Problem(
                "code",
                "ほかの方が同時に同じ一覧を変更したため保存できませんでした。"
                "一覧を確かめて、もう一度保存してください。",
            )
        ]
    )


@transaction.atomic
def choice_delete(*, choice: Area | AgeGroup, actor: User) -> None:
    """Delete an area or age group no broadcast refers to, with an audit row (not offered
    in the admin, which only retires options; for the system's operators). Citizens who
    chose it lose that choice, and its position is cleared from every follower's mask
    before the row goes, so an option created later in that position starts with nobody."""
    model = type(choice)
    if BroadcastAudience.objects.filter(**{_AUDIENCE_FIELD[model]: choice}).exists():
        raise BroadcastInvalid(
            [
                Problem(
                    "id",
                    f"この{model._meta.verbose_name}を対象にした配信があるため削除できません。"
                    "「選択肢に表示する」を外してください。",
                )
            ]
        )
    chosen_by = _CHOICE_TABLE[model].objects.filter(**{_CHOICE_FIELD[model]: choice}).count()
    if choice.bit is not None:
        mask = 1 << choice.bit
        field = model.BITS_FIELD
        Follower.objects.alias(hit=F(field).bitand(mask)).filter(hit__gt=0).update(
            **{field: F(field).bitand(~mask)}
        )
    data = {"model": model._meta.model_name, "id": choice.pk, "code": choice.code}
    choice.delete()
    audit_record(verb="audience_choice_deleted", actor=actor, data={**data, "chosen_by": chosen_by})


_AUDIENCE_FIELD: dict[type, str] = {Area: "areas", AgeGroup: "age_groups"}
_CHOICE_TABLE: dict[type, Any] = {Area: FollowerArea, AgeGroup: FollowerAgeGroup}
_CHOICE_FIELD: dict[type, str] = {Area: "area", AgeGroup: "age_group"}


# --- a citizen's choices ---------------------------------------------------------------------
#
# Each write keeps the follower's own row in step with the choice tables: a bit set or
# cleared in one UPDATE (``mask | bit``, ``mask & ~bit``: two taps at once both land), the
# language id copied. ``followers_bits_rebuild`` recomputes everything from the tables.


def follower_mask_change(*, follower: Follower, field: str, add: int = 0, remove: int = 0) -> None:
    """Set ``add``'s bits and clear ``remove``'s in one of the follower's masks."""
    value: Any = F(field)
    if add:
        value = value.bitor(add)
    if remove:
        value = value.bitand(~remove)
    Follower.objects.filter(pk=follower.pk).update(**{field: value})
    follower.refresh_from_db(fields=[field])


def follower_area_set(*, follower: Follower, code: str, chosen: bool) -> Area | None:
    """Choose or remove one area. ``None`` if there is no such (active) area."""
    return _follower_choice_set(follower, Area, FollowerArea, "area", "area_bits", code, chosen)


def follower_age_group_set(*, follower: Follower, code: str, chosen: bool) -> AgeGroup | None:
    """Choose or remove one age group. ``None`` if there is no such (active) group."""
    return _follower_choice_set(
        follower, AgeGroup, FollowerAgeGroup, "age_group", "age_group_bits", code, chosen
    )


def _follower_choice_set(
    follower: Follower,
    model: Any,
    through: Any,
    column: str,
    field: str,
    code: str,
    chosen: bool,
) -> Any:
    """The choice row and the follower row's mask (``field``) change together."""
    option = model.objects.filter(code=code, is_active=True).first()
    if option is None:
        return None
    mask = 1 << option.bit if option.bit is not None else 0
    with transaction.atomic():
        if chosen:
            through.objects.get_or_create(follower=follower, **{column: option})
            follower_mask_change(follower=follower, field=field, add=mask)
        else:
            through.objects.filter(follower=follower, **{column: option}).delete()
            follower_mask_change(follower=follower, field=field, remove=mask)
    return option


def follower_language_set(*, follower: Follower, code: str | None) -> Language | None:
    """Set the follower's language; ``None`` removes it (they get 日本語, as before)."""
    if code is None:
        with transaction.atomic():
            FollowerLanguage.objects.filter(follower=follower).delete()
            Follower.objects.filter(pk=follower.pk).update(language=None)
        follower.language_id = None
        return None
    language = Language.objects.filter(code=code, is_active=True).first()
    if language is None:
        return None
    with transaction.atomic():
        FollowerLanguage.objects.update_or_create(
            follower=follower, defaults={"language": language}
        )
        Follower.objects.filter(pk=follower.pk).update(language=language)
    follower.language_id = language.pk
    return language


def follower_choices_clear(*, follower: Follower, dimension: str) -> None:
    """Remove every choice in one dimension (``area``, ``age`` or ``language``)."""
    model = {"area": FollowerArea, "age": FollowerAgeGroup, "language": FollowerLanguage}[dimension]
    column = {"area": "area_bits", "age": "age_group_bits", "language": "language"}[dimension]
    with transaction.atomic():
        model.objects.filter(follower=follower).delete()
        value = None if dimension == "language" else 0
        Follower.objects.filter(pk=follower.pk).update(**{column: value})
    follower.refresh_from_db(fields=[column])


def followers_bits_rebuild(*, follower_ids: list[int] | None = None) -> None:
    """Recompute the followers' masks and language ids from the choice tables (all
    followers, or only ``follower_ids``): one set-based ``UPDATE … FROM`` per dimension,
    writing only the rows that differ (SQLite ≥ 3.33 and PostgreSQL). For repairs and bulk
    loads; migration 0016 does the same with its own copy of the SQL."""
    from ..models import Category

    follower = Follower._meta.db_table
    where, params = "", []
    if follower_ids is not None:
        if not follower_ids:
            return
        where = f" WHERE f.id IN ({', '.join(['%s'] * len(follower_ids))})"
        params = list(follower_ids)
    dimensions = (
        (
            "category_bits",
            Follower.categories.through._meta.db_table,
            "category_id",
            Category._meta.db_table,
        ),
        ("area_bits", FollowerArea._meta.db_table, "area_id", Area._meta.db_table),
        (
            "age_group_bits",
            FollowerAgeGroup._meta.db_table,
            "age_group_id",
            AgeGroup._meta.db_table,
        ),
    )
    with connection.cursor() as cursor:
        for column, through, option_column, options in dimensions:
            cursor.execute(
                f"UPDATE {follower} SET {column} = s.bits FROM ("  # noqa: S608 - our names
                "SELECT f.id AS fid, CAST(COALESCE(SUM(CAST(1 AS BIGINT) << o.bit), 0) AS BIGINT)"
                f" AS bits FROM {follower} f"
                f" LEFT JOIN {through} c ON c.follower_id = f.id"
                f" LEFT JOIN {options} o ON o.id = c.{option_column}"
                f"{where} GROUP BY f.id) s"
                f" WHERE s.fid = {follower}.id AND {follower}.{column} <> s.bits",
                params,
            )
        cursor.execute(
            f"UPDATE {follower} SET language_id = s.lid FROM ("  # noqa: S608 - our names
            f"SELECT f.id AS fid, c.language_id AS lid FROM {follower} f"
            f" LEFT JOIN {FollowerLanguage._meta.db_table} c ON c.follower_id = f.id{where}) s"
            f" WHERE s.fid = {follower}.id"
            f" AND COALESCE({follower}.language_id, 0) <> COALESCE(s.lid, 0)",
            params,
        )


# --- 受信設定 in LINE: postbacks and the menus they answer with -------------------------------

#: the postback actions this module answers (``action=...`` in the postback data)
POSTBACK_ACTIONS = frozenset({"areas", "area", "ages", "age", "language", "choices"})


def postback_handle(*, follower: Follower, params: dict[str, str]) -> list[dict[str, Any]]:
    """Act on one 受信設定 postback about areas, age groups or language; the reply.

    ``action=areas[&page=N]`` shows the area menu; ``action=area&op=add|remove|clear&code=``
    changes it; ``ages``/``age`` the same for age groups; ``action=language&code=`` sets the
    language (``op=clear`` removes it); ``action=choices`` shows the three menus' entry."""
    action = params.get("action", "")
    op = params.get("op", "")
    code = params.get("code", "")
    notice = ""
    if action == "area":
        if op == "clear":
            follower_choices_clear(follower=follower, dimension="area")
            notice = "地区の設定をすべて解除しました。"
        else:
            area = follower_area_set(follower=follower, code=code, chosen=op == "add")
            notice = (
                "その地区は見つかりませんでした。"
                if area is None
                else f"「{area.label}」を{'追加' if op == 'add' else '解除'}しました。"
            )
        return area_menu_messages(follower, notice=notice, page=_page(params))
    if action == "areas":
        return area_menu_messages(follower, page=_page(params))
    if action == "age":
        if op == "clear":
            follower_choices_clear(follower=follower, dimension="age")
            notice = "子どもの年齢の設定をすべて解除しました。"
        else:
            group = follower_age_group_set(follower=follower, code=code, chosen=op == "add")
            notice = (
                "その年齢区分は見つかりませんでした。"
                if group is None
                else f"「{group.label}」を{'追加' if op == 'add' else '解除'}しました。"
            )
        return age_menu_messages(follower, notice=notice)
    if action == "ages":
        return age_menu_messages(follower)
    if action == "language":
        if op == "clear":
            follower_language_set(follower=follower, code=None)
            notice = "言語の設定を解除しました（日本語でお送りします）。"
        elif code:
            language = follower_language_set(follower=follower, code=code)
            notice = (
                "その言語は見つかりませんでした。"
                if language is None
                else f"言語を「{language.native_label}」にしました。"
            )
        return language_menu_messages(follower, notice=notice)
    return [choices_entry_message()]


def _page(params: dict[str, str]) -> int:
    try:
        return max(int(params.get("page", "1")), 1)
    except ValueError:
        return 1


def _item(label: str, data: str, display: str) -> dict[str, Any]:
    return {
        "type": "action",
        "action": {
            "type": "postback",
            "label": label[:20],
            "data": data,
            "displayText": display[:300],
        },
    }


def choices_entry_message() -> dict[str, Any]:
    """The buttons under 受信設定 that open the three optional menus."""
    return {
        "type": "template",
        "altText": "地区・子どもの年齢・言語の設定（任意）",
        "template": {
            "type": "buttons",
            "text": "地区・子どもの年齢・言語も選べます（任意）。選んだ内容に合うお知らせが届きます。",
            "actions": [
                {
                    "type": "postback",
                    "label": "地区を選ぶ",
                    "data": "action=areas",
                    "displayText": "地区を選ぶ",
                },
                {
                    "type": "postback",
                    "label": "子どもの年齢を選ぶ",
                    "data": "action=ages",
                    "displayText": "子どもの年齢を選ぶ",
                },
                {
                    "type": "postback",
                    "label": "言語 / Language",
                    "data": "action=language",
                    "displayText": "言語 / Language",
                },
            ],
        },
    }


def area_menu_messages(
    follower: Follower, *, notice: str = "", page: int = 1
) -> list[dict[str, Any]]:
    choices = audience_selectors.follower_choices(follower)
    areas = list(audience_selectors.areas_active())
    pages = max((len(areas) + AREAS_PER_PAGE - 1) // AREAS_PER_PAGE, 1)
    page = min(page, pages)
    lines = [notice] if notice else []
    lines.append("【地区】お住まいなど、お知らせを受け取りたい地区を選べます（複数可・任意）。")
    lines += [f"{'✅' if a.code in choices.area_codes else '－'} {a.label}" for a in areas]
    if not choices.area_codes:
        lines.append("いまは地区を選んでいません。")
    items = []
    for area in areas[(page - 1) * AREAS_PER_PAGE : page * AREAS_PER_PAGE]:
        on = area.code in choices.area_codes
        items.append(
            _item(
                f"{'解除' if on else '追加'}：{area.label}",
                f"action=area&op={'remove' if on else 'add'}&code={area.code}&page={page}",
                f"「{area.label}」を{'解除' if on else '追加'}",
            )
        )
    if pages > 1:
        following = page % pages + 1
        items.append(_item("ほかの地区", f"action=areas&page={following}", "ほかの地区"))
    if choices.area_codes:
        items.append(_item("地区をすべて解除", "action=area&op=clear", "地区をすべて解除"))
    items.append(_item("受信設定に戻る", "action=show_subscriptions", "受信設定"))
    return [{"type": "text", "text": "\n".join(lines), "quickReply": {"items": items}}]


def age_menu_messages(follower: Follower, *, notice: str = "") -> list[dict[str, Any]]:
    choices = audience_selectors.follower_choices(follower)
    groups = list(audience_selectors.age_groups_active())
    lines = [notice] if notice else []
    lines.append(
        "【子どもの年齢】子育て・教育のお知らせを年齢に合わせてお送りします（複数可・任意）。"
    )
    lines += [f"{'✅' if g.code in choices.age_group_codes else '－'} {g.label}" for g in groups]
    items = []
    for group in groups[:10]:
        on = group.code in choices.age_group_codes
        items.append(
            _item(
                f"{'解除' if on else '追加'}：{group.label}",
                f"action=age&op={'remove' if on else 'add'}&code={group.code}",
                f"「{group.label}」を{'解除' if on else '追加'}",
            )
        )
    if choices.age_group_codes:
        items.append(_item("年齢をすべて解除", "action=age&op=clear", "年齢をすべて解除"))
    items.append(_item("受信設定に戻る", "action=show_subscriptions", "受信設定"))
    return [{"type": "text", "text": "\n".join(lines), "quickReply": {"items": items}}]


def language_menu_messages(follower: Follower, *, notice: str = "") -> list[dict[str, Any]]:
    choices = audience_selectors.follower_choices(follower)
    languages = list(audience_selectors.languages_active())
    current = next((lang for lang in languages if lang.code == choices.language_code), None)
    lines = [notice] if notice else []
    lines.append("【言語 / Language】お知らせを受け取る言語を選べます（任意）。")
    lines.append(f"いまの設定: {current.native_label}" if current else "いまの設定: なし（日本語）")
    items = [
        _item(
            ("✅ " if lang.code == choices.language_code else "") + lang.native_label,
            f"action=language&code={lang.code}",
            lang.native_label,
        )
        for lang in languages[:11]
    ]
    if choices.language_code:
        items.append(_item("言語の設定を解除", "action=language&op=clear", "言語の設定を解除"))
    items.append(_item("受信設定に戻る", "action=show_subscriptions", "受信設定"))
    return [{"type": "text", "text": "\n".join(lines), "quickReply": {"items": items[:13]}}]


# --- a broadcast's audience and language versions ------------------------------------------


def variants_check(variants: dict[str, list[dict[str, Any]]]) -> list[Problem]:
    """LINE's checks for each language version, with the language named."""
    problems: list[Problem] = []
    labels = dict(Language.objects.values_list("code", "label"))
    for code, messages in sorted(variants.items()):
        if code == BASE_LANGUAGE or code not in labels:
            problems.append(Problem("variants", "その言語は選べません。"))
            continue
        problems += [
            Problem(f"variants.{code}", f"{labels[code]}版: {p.message}")
            for p in check_messages(messages)
        ]
    return problems


@transaction.atomic
def broadcast_targeting_set(
    *,
    broadcast: Broadcast,
    actor: User,
    areas: list[Area],
    age_groups: list[AgeGroup],
    languages: list[Language],
    include_unset: bool,
    variants: dict[str, list[dict[str, Any]]],
) -> Broadcast:
    """Set a broadcast's areas × age groups × languages and its language versions. Part of
    the approved content: a change after approval voids it and returns it to review, as any
    edit does."""
    from . import lifecycle

    broadcast = lifecycle.lock(broadcast.pk)
    if not permissions.can_edit(actor, broadcast):
        raise BroadcastPermissionDenied("この配信を編集する権限がありません。")
    if broadcast.status not in lifecycle.EDITABLE:
        raise InvalidTransition(broadcast.status, "編集")
    if broadcast.audience == Broadcast.Audience.STAFF_TEST and (areas or age_groups or languages):
        raise BroadcastInvalid(
            [Problem("audience", "職員テスト受信者への配信には地区・年齢・言語を指定できません。")]
        )
    problems = variants_check(variants)
    if problems:
        raise BroadcastInvalid(problems)
    before = audience_selectors.hash_part(broadcast)
    snapshot_before = lifecycle.broadcast_snapshot(broadcast)
    target, _ = BroadcastAudience.objects.get_or_create(broadcast=broadcast)
    target.include_unset = include_unset
    target.save(update_fields=["include_unset"])
    target.areas.set(areas)
    target.age_groups.set(age_groups)
    target.languages.set(languages)
    by_code = {lang.code: lang for lang in Language.objects.filter(code__in=list(variants))}
    broadcast.variants.exclude(language__code__in=list(variants)).delete()
    for code, messages in variants.items():
        BroadcastVariant.objects.update_or_create(
            broadcast=broadcast, language=by_code[code], defaults={"messages": messages}
        )
    after = audience_selectors.hash_part(broadcast)
    if before == after:
        return broadcast
    new_hash = lifecycle.compute_hash(broadcast)
    broadcast.content_hash = new_hash
    broadcast.save(update_fields=["content_hash", "updated_at"])
    lifecycle.contributor_add(broadcast, actor, at=broadcast.updated_at)
    audit_record(
        verb="edit",
        actor=actor,
        broadcast=broadcast,
        from_status=broadcast.status,
        to_status=broadcast.status,
        data={
            "changed": ["targeting"],
            "before": snapshot_before,
            "after": lifecycle.broadcast_snapshot(broadcast),
        },
    )
    lifecycle.approval_void_after_edit(broadcast, actor=actor)
    return broadcast


def targeting_copy(*, source: Broadcast, target: Broadcast, kind: str) -> None:
    """A correction or cancellation (訂正・取消) reaches whom the original reached, in the
    same languages: the audience is copied, and each language version gets the follow-up's
    first line in that language (a correction also the placeholder, which blocks review
    until staff write the corrected content). Called inside the creating transaction."""
    from . import lifecycle

    original = BroadcastAudience.objects.filter(broadcast=source).first()
    if original is not None:
        copy = BroadcastAudience.objects.create(
            broadcast=target, include_unset=original.include_unset
        )
        copy.areas.set(original.areas.all())
        copy.age_groups.set(original.age_groups.all())
        copy.languages.set(original.languages.all())
    for variant in source.variants.select_related("language"):
        texts = FOLLOW_UP_TEXTS.get(variant.language.code, {})
        first = texts.get(kind, "")
        if kind == Broadcast.Kind.CORRECTION:
            body = f"{first}\n\n{CORRECTION_PLACEHOLDER}".strip()
        else:
            body = first or CORRECTION_PLACEHOLDER
        BroadcastVariant.objects.create(
            broadcast=target,
            language=variant.language,
            messages=[{"type": "text", "text": body}],
        )
    if original is not None or source.variants.exists():
        target.content_hash = lifecycle.compute_hash(target)
        target.save(update_fields=["content_hash", "updated_at"])


def variants_review_problems(broadcast: Broadcast) -> list[Problem]:
    """What stops review for the language versions: LINE's checks, a correction's
    placeholder left in, or 【訓練】 in a live send's version."""
    problems: list[Problem] = []
    for variant in broadcast.variants.select_related("language"):
        label = variant.language.label
        problems += [
            Problem(f"variants.{variant.language.code}", f"{label}版: {p.message}")
            for p in check_messages(variant.messages)
        ]
        texts = message_texts(variant.messages) if isinstance(variant.messages, list) else []
        if any(CORRECTION_PLACEHOLDER in text for text in texts):
            problems.append(
                Problem(
                    f"variants.{variant.language.code}",
                    f"{label}版に「{CORRECTION_PLACEHOLDER}」が残っています。正しい内容に書き換えてください。",
                )
            )
        if not broadcast.is_drill and any(DRILL_MARKER in text for text in texts):
            problems.append(
                Problem(
                    f"variants.{variant.language.code}",
                    f"{label}版に【訓練】の表示があります。本番の配信には使えません。",
                )
            )
    return problems


# --- sending -------------------------------------------------------------------------------


def broadcast_is_targeted(broadcast: Broadcast) -> bool:
    """Whether the sender must make multicasts from our recipient list for this broadcast.

    The sender's locked row says whether it has audience rows or language versions
    (``has_audience_rows``/``has_variants``): without either, an all-friends or staff-test
    send is not targeted, with no query. Otherwise the audience read here is kept on the
    row (``audience_spec``) for the rest of the send's preparation, not read again."""
    if (
        broadcast.audience != Broadcast.Audience.SUBSCRIBERS
        and not getattr(broadcast, "has_audience_rows", True)
        and not getattr(broadcast, "has_variants", True)
    ):
        return False
    return audience_selectors.audience_spec(broadcast).targeted


def deliveries_create(broadcast: Broadcast, *, now: dt.datetime, chunk_size: int) -> None:
    """Every multicast of a targeted send, one version per request, committed by the
    sender's transaction before the first call. Each follower is in exactly one request."""
    spec = audience_selectors.audience_spec(broadcast)
    batch: list[Delivery] = []
    seq = recipients = 0
    for code, chunk in audience_selectors.recipient_stream(spec, chunk_size):
        seq += 1
        recipients += len(chunk)
        batch.append(
            Delivery(
                broadcast=broadcast,
                seq=seq,
                kind=Delivery.Kind.MULTICAST,
                recipients=chunk,
                recipient_count=len(chunk),
                key_created_at=now,
                language_code="" if code == BASE_LANGUAGE else code,
            )
        )
        if len(batch) >= 20:
            Delivery.objects.bulk_create(batch)
            batch = []
    if batch:
        Delivery.objects.bulk_create(batch)
    broadcast.recipient_count = recipients
    broadcast.deliveries_total = seq
    if seq:
        aggregation_unit_assign(broadcast=broadcast, now=now)


def sending_prepare(broadcast: Broadcast) -> None:
    """Read the language versions and the unit name once, before the sending threads (which
    then only look them up)."""
    has_variants = getattr(broadcast, "has_variants", True)  # known from the send's lock
    broadcast._variant_messages = (  # type: ignore[attr-defined]
        {v.language.code: v.messages for v in broadcast.variants.select_related("language")}
        if has_variants
        else {}
    )
    if getattr(broadcast, "_aggregation_unit_name", None) is None:  # else assigned just now
        broadcast._aggregation_unit_name = (  # type: ignore[attr-defined]
            AggregationUnit.objects.filter(broadcast=broadcast)
            .values_list("name", flat=True)
            .first()
            or ""
        )


def delivery_messages(broadcast: Broadcast, delivery: Delivery) -> list[dict[str, Any]]:
    """The messages of one request: its language version, or the base."""
    if not delivery.language_code:
        return broadcast.messages
    cache: dict[str, list[dict[str, Any]]] | None = getattr(broadcast, "_variant_messages", None)
    if cache is None:
        cache = {v.language.code: v.messages for v in broadcast.variants.select_related("language")}
        broadcast._variant_messages = cache  # type: ignore[attr-defined]
    return cache.get(delivery.language_code, broadcast.messages)


def delivery_aggregation_unit(broadcast: Broadcast) -> str:
    """The unit name the broadcast's multicasts carry ("" for none)."""
    cached = getattr(broadcast, "_aggregation_unit_name", None)
    if cached is None:
        cached = (
            AggregationUnit.objects.filter(broadcast=broadcast)
            .values_list("name", flat=True)
            .first()
            or ""
        )
        broadcast._aggregation_unit_name = cached  # type: ignore[attr-defined]
    return cached


def aggregation_unit_name(broadcast: Broadcast) -> str:
    """``kashiwa_b<id>``: unique per broadcast, within LINE's pattern and 30 characters."""
    name = f"kashiwa_b{broadcast.pk}"
    if not re.fullmatch(AGGREGATION_UNIT_PATTERN, name):  # pragma: no cover - ids are digits
        raise ValueError(name)
    return name


def aggregation_unit_assign(
    *, broadcast: Broadcast, now: dt.datetime, gateway: LineGateway | None = None
) -> str:
    """Give the broadcast's multicasts a custom aggregation unit, unless LINE has refused
    the feature for this account or the month's units (LINE: 1,000) are used up; either
    way the send goes on, without one. Returns the unit's name ("" for none), also kept on
    ``broadcast`` for the sending threads (``delivery_aggregation_unit``)."""
    month = jst_date(now).strftime("%Y%m")
    outlook = audience_selectors.aggregation_unit_outlook(broadcast.pk, month)
    name = outlook.existing
    if name is None:
        reason = _aggregation_unit_unavailable(outlook, month, now, gateway)
        name = "" if reason else aggregation_unit_name(broadcast)
        AggregationUnit.objects.create(
            broadcast=broadcast, name=name, month=month, skipped_reason=reason, created_at=now
        )
    broadcast._aggregation_unit_name = name  # type: ignore[attr-defined]
    return name


# LINE's count of the month's unit names (which other tools of the account use too) is read
# at most once per AGGREGATION_USAGE_TTL_SECONDS and shared through the cache, with our own
# count at that moment: until it is read again, LINE's figure plus the units we have made
# since is the month's use. It was one call to LINE inside every send's locked preparation
# (fifty at the window's opening; an emergency's first request waited for it). A name LINE
# refuses all the same costs one resend of that request without it
# (``aggregation_unit_refused``), never the message.
AGGREGATION_USAGE_TTL_SECONDS = 600


def _aggregation_unit_unavailable(
    outlook: audience_selectors.UnitOutlook,
    month: str,
    now: dt.datetime,
    gateway: LineGateway | None,
) -> str:
    """Why this send gets no unit ("" if it gets one)."""
    full = f"今月の集計単位が上限（{AGGREGATION_UNITS_PER_MONTH:,}）に達しました"
    if outlook.refused:
        return "LINE がこのアカウントでの集計単位の利用を認めていません"
    if outlook.used >= AGGREGATION_UNITS_PER_MONTH:
        return full
    key = f"line-aggregation-units-{month}"
    reading = cache_get_or_none(key)
    if not (isinstance(reading, tuple) and len(reading) == 2):
        try:
            reading = ((gateway or get_gateway()).aggregation_unit_usage(), outlook.used)
        except LinePermanentError as exc:
            aggregation_refusal_record(message=exc.describe(), now=now)
            return "LINE がこのアカウントでの集計単位の利用を認めていません"
        except LineError as exc:
            # LINE unreachable now: the send goes on; the unit only adds statistics.
            logger.warning("aggregation unit usage unavailable: %s", exc.describe())
            return ""
        cache_set_or_skip(key, reading, AGGREGATION_USAGE_TTL_SECONDS)
    line_used, ours_then = reading
    used = line_used + max(outlook.used - ours_then, 0)
    return full if used >= AGGREGATION_UNITS_PER_MONTH else ""


def aggregation_unit_refused(exc: LinePermanentError) -> bool:
    """Whether LINE refused a multicast for its ``customAggregationUnits`` (not for its
    message): a 403 (the account may not use units) or a 400 naming the units (e.g. the
    month's unit names used up on LINE's side)."""
    if isinstance(exc, LineQuotaExceededError):
        return False
    if exc.status == 403:
        return True
    if exc.status != 400:
        return False
    texts = [exc.message] + [f"{d.get('property', '')} {d.get('message', '')}" for d in exc.details]
    return any("aggregation" in text.lower() for text in texts)


def aggregation_unit_drop(broadcast: Broadcast, exc: LinePermanentError) -> None:
    """The send goes on without the unit (called from a sending thread: it only changes the
    send's in-memory state; ``aggregation_unit_drop_record`` writes it down)."""
    broadcast._aggregation_unit_name = ""  # type: ignore[attr-defined]
    broadcast._aggregation_unit_refusal = (exc.status, exc.describe())  # type: ignore[attr-defined]


def aggregation_unit_drop_record(broadcast: Broadcast, *, now: dt.datetime) -> None:
    """Write down, once, that LINE refused the unit during this send: the broadcast's unit
    row says why its statistics come without it, and a 403 (the feature refused for the
    account) is recorded for 運用状況, so later sends do not ask again."""
    refusal = getattr(broadcast, "_aggregation_unit_refusal", None)
    if refusal is None:
        return
    broadcast._aggregation_unit_refusal = None  # type: ignore[attr-defined]
    status, message = refusal
    AggregationUnit.objects.filter(broadcast=broadcast).exclude(name="").update(
        name="", skipped_reason=f"LINE が集計単位を受け付けませんでした（{message}）"[:200]
    )
    if status == 403:
        aggregation_refusal_record(message=message, now=now)


def aggregation_refusal_record(*, message: str, now: dt.datetime) -> None:
    """Remember (once) that LINE refused custom aggregation units; 運用状況 says so."""
    _, created = LineFeatureRefusal.objects.get_or_create(
        feature=audience_selectors.AGGREGATION_FEATURE,
        defaults={"message": message[:300], "refused_at": now},
    )
    if created:
        audit_record(
            verb="line_feature_refused",
            actor=None,
            data={"feature": audience_selectors.AGGREGATION_FEATURE, "message": message[:300]},
        )


# --- statistics per unit -------------------------------------------------------------------


def unit_stats_fetch(
    *, broadcast: Broadcast, gateway: LineGateway, now: dt.datetime
) -> UnitStats | None:
    """LINE's opens and clicks for a targeted send's unit; ``None`` if it has none or LINE
    refuses the feature (recorded once, and the statistics carry on without it)."""
    name = delivery_aggregation_unit(broadcast)
    if not name or broadcast.sent_at is None:
        return None
    start, end = audience_selectors.unit_stats_window(broadcast.sent_at)
    end = min(end, jst_date(now))
    try:
        return gateway.unit_stats(
            unit=name, date_from=start.strftime("%Y%m%d"), date_to=end.strftime("%Y%m%d")
        )
    except LinePermanentError as exc:
        if exc.status in (401, 403):
            aggregation_refusal_record(message=exc.describe(), now=now)
            return None
        raise


def problems_text(problems: list[Problem]) -> str:
    return " ".join(p.message for p in problems)
