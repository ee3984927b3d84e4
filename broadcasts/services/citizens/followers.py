"""Followers and their 受信設定 (category subscriptions), and the postbacks that change them."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import parse_qs

from django.db import connection, transaction
from django.utils import timezone

from ...models import (
    Category,
    Follower,
)
from ...models.bits import mask_of
from .. import audiences

logger = logging.getLogger(__name__)


QUICK_REPLY_MAX = 13


def follower_follow(
    *, line_user_id: str, at: dt.datetime | None = None, category_ids: list[int] | None = None
) -> Follower:
    """A citizen added the account (or unblocked it): see ``followers_follow``."""
    follows = {line_user_id: at or timezone.now()}
    return followers_follow(follows=follows, category_ids=category_ids)[line_user_id]


@transaction.atomic(savepoint=False)
def followers_follow(
    *, follows: dict[str, dt.datetime], category_ids: list[int] | None = None
) -> dict[str, Follower]:
    """Citizens added the account (or unblocked it), each at its own time. New followers get
    every category (``category_ids``: all of them, if the caller has read them already); a
    returning follower keeps the choices they made before. Many at once cost a few
    statements, not a few per citizen (a burst of follow events).

    Inside a caller's transaction this adds no savepoint (a webhook batch is one transaction):
    if another transaction creates one of these followers meanwhile, the unique index fails
    the caller's transaction, and a webhook batch is then done again event by event, finding
    the row."""
    followers = {
        f.line_user_id: f
        for f in Follower.objects.select_for_update().filter(line_user_id__in=list(follows))
    }
    for line_user_id, follower in followers.items():
        at = follows[line_user_id]
        if follower.unfollowed_at is None or follower.unfollowed_at <= at:
            follower.followed_at = at
            follower.unfollowed_at = None
            follower.save(update_fields=["followed_at", "unfollowed_at"])
    if category_ids is None and any(u not in followers for u in follows):
        category_ids = list(Category.objects.values_list("pk", flat=True))
    category_bits = mask_of(
        Category.objects.filter(pk__in=category_ids or []).values_list("bit", flat=True)
    )
    new = [
        Follower(line_user_id=u, followed_at=at, category_bits=category_bits)
        for u, at in follows.items()
        if u not in followers
    ]
    if new:
        created = Follower.objects.bulk_create(new)
        if any(f.pk is None for f in created):  # a database that does not return new ids
            created = list(Follower.objects.filter(line_user_id__in=[f.line_user_id for f in new]))
        _subscribe_everything(created, category_ids or [])
        followers.update((f.line_user_id, f) for f in created)
    return followers


def _subscribe_everything(followers: list[Follower], category_ids: list[int] | None) -> None:
    """New followers get every category (``category_ids``, or all of them): one
    ``INSERT … SELECT`` the database expands, not a row built here per follower and
    category (a burst of 100 follows × 11 categories)."""
    if not followers:
        return
    through = Follower.categories.through
    table = connection.ops.quote_name(through._meta.db_table)
    follower_col = connection.ops.quote_name(through._meta.get_field("follower").column)
    category_col = connection.ops.quote_name(through._meta.get_field("category").column)
    follower_ids = [f.pk for f in followers]
    sql = (
        f"INSERT INTO {table} ({follower_col}, {category_col}) "  # noqa: S608 - our names
        f"SELECT f.id, c.id FROM {connection.ops.quote_name(Follower._meta.db_table)} f "
        f"CROSS JOIN {connection.ops.quote_name(Category._meta.db_table)} c "
        f"WHERE f.id IN ({', '.join(['%s'] * len(follower_ids))})"
    )
    params: list[int] = list(follower_ids)
    if category_ids is not None:
        if not category_ids:
            return
        sql += f" AND c.id IN ({', '.join(['%s'] * len(category_ids))})"
        params += category_ids
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def follower_unfollow(*, line_user_id: str, at: dt.datetime | None = None) -> None:
    """A citizen blocked the account. Only an unfollow newer than the last follow counts."""
    at = at or timezone.now()
    Follower.objects.filter(line_user_id=line_user_id, followed_at__lte=at).update(unfollowed_at=at)


def follower_ensure(*, line_user_id: str, at: dt.datetime | None = None) -> Follower:
    """The follower row for someone who can talk to us (and so is a friend)."""
    follower = Follower.objects.filter(line_user_id=line_user_id).first()
    if follower is None or follower.unfollowed_at is not None:
        follower = follower_follow(line_user_id=line_user_id, at=at)
    return follower


def subscription_set(*, follower: Follower, category_code: str, subscribed: bool) -> bool:
    """Add or remove one category. False if there is no such category."""
    category = Category.objects.filter(code=category_code).first()
    if category is None:
        return False
    mask = mask_of([category.bit])
    with transaction.atomic():
        if subscribed:
            follower.categories.add(category)
            audiences.follower_mask_change(follower=follower, field="category_bits", add=mask)
        else:
            follower.categories.remove(category)
            audiences.follower_mask_change(follower=follower, field="category_bits", remove=mask)
    return True


def subscription_set_all(*, follower: Follower, subscribed: bool) -> None:
    categories = list(Category.objects.all()) if subscribed else []
    with transaction.atomic():
        follower.categories.set(categories)
        follower.category_bits = mask_of(c.bit for c in categories)
        follower.save(update_fields=["category_bits"])


def postback_handle(
    *, line_user_id: str, data: str, at: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Postbacks from the rich menu and the 受信設定 quick replies. Returns the reply."""
    params = {k: v[0] for k, v in parse_qs(data, keep_blank_values=True).items()}
    action = params.get("action", "")
    if action in audiences.POSTBACK_ACTIONS:
        follower = follower_ensure(line_user_id=line_user_id, at=at)
        return audiences.postback_handle(follower=follower, params=params)
    if action not in {
        "show_subscriptions",
        "subscribe",
        "unsubscribe",
        "subscribe_all",
        "unsubscribe_all",
    }:
        logger.info("unknown postback ignored")
        return []
    follower = follower_ensure(line_user_id=line_user_id, at=at)
    notice = ""
    if action in ("subscribe", "unsubscribe"):
        code = params.get("category", "")
        subscribed = action == "subscribe"
        if subscription_set(follower=follower, category_code=code, subscribed=subscribed):
            label = Category.objects.get(code=code).label
            notice = f"「{label}」を{'受け取る' if subscribed else '受け取らない'}設定にしました。"
        else:
            notice = "そのカテゴリは見つかりませんでした。"
    elif action in ("subscribe_all", "unsubscribe_all"):
        subscribed = action == "subscribe_all"
        subscription_set_all(follower=follower, subscribed=subscribed)
        notice = (
            "すべてのカテゴリを受け取る設定にしました。"
            if subscribed
            else "すべてのカテゴリを受け取らない設定にしました。"
        )
    return subscription_menu_messages(follower, notice=notice)


def subscription_menu_messages(follower: Follower, *, notice: str = "") -> list[dict[str, Any]]:
    """The citizen's current choices and a quick-reply menu to change them."""
    chosen = set(follower.categories.values_list("pk", flat=True))
    categories = list(Category.objects.all())
    lines = [notice] if notice else []
    lines.append("【受信設定】現在の設定です（✅ 受け取る／－ 受け取らない）")
    lines += [f"{'✅' if c.pk in chosen else '－'} {c.label}" for c in categories]
    lines.append("下のボタンで変更できます。")
    items = []
    for c in categories:
        on = c.pk in chosen
        items.append(
            _postback_item(
                label=f"{'停止' if on else '受信'}：{c.label}"[:20],
                data=f"action={'unsubscribe' if on else 'subscribe'}&category={c.code}",
                display=f"「{c.label}」を{'受け取らない' if on else '受け取る'}",
            )
        )
    items.append(_postback_item("すべて受け取る", "action=subscribe_all", "すべて受け取る"))
    items.append(_postback_item("すべて停止", "action=unsubscribe_all", "すべて受け取らない"))
    menu = {"type": "text", "text": "\n".join(lines), "quickReply": {"items": items[:13]}}
    # LINE shows quick replies only on the last message of a reply: the menu goes last.
    return [audiences.choices_entry_message(), menu]


def _postback_item(label: str, data: str, display: str) -> dict[str, Any]:
    return {
        "type": "action",
        "action": {"type": "postback", "label": label, "data": data, "displayText": display},
    }
