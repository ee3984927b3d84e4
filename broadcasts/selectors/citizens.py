"""Who a broadcast reaches: the active followers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from ..models import Follower


def followers_active() -> QuerySet[Follower]:
    return Follower.objects.filter(unfollowed_at__isnull=True)


def followers_for_audience(
    audience: str, category_ids: Iterable[int], after: int = 0
) -> QuerySet[Follower]:
    """Who a broadcast reaches. ALL is sent with the broadcast API, so this is an estimate
    from our follower table; the others are exactly the multicast recipients. The same query
    builder as a targeted audience's (``audiences.followers_for_spec``), without narrowing.

    ``after``: only followers with a higher ``id`` (a block of a send's rows, sending/build.py)."""
    from .audiences import AudienceSpec, followers_for_spec

    return followers_for_spec(
        AudienceSpec(audience=audience, category_ids=tuple(sorted(category_ids))), after=after
    )


def recipient_count(audience: str, category_ids: Iterable[int]) -> int:
    return followers_for_audience(audience, category_ids).count()


def recipient_ids_stream(
    audience: str, category_ids: Iterable[int], chunk_size: int = 500
) -> Iterator[list[str]]:
    """Recipient LINE user IDs in chunks, streamed from the database (never all at once)."""
    rows = (
        followers_for_audience(audience, category_ids)
        .order_by("id")
        .values_list("line_user_id", flat=True)
        .iterator(chunk_size=2000)
    )
    chunk: list[str] = []
    for user_id in rows:
        chunk.append(user_id)
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
