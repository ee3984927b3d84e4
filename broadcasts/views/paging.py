"""Pagination for lists that grow without bound (the audit log: a million rows in a few
years; the broadcast list: a hundred thousand). An exact ``COUNT(*)`` of such a table, or of a
search that matches most of it, costs more than the page itself (226 ms of a 325 ms history
page at 1,000,000 rows), so the count stops at ``cap``: past it the page says "1,000 件以上"
and offers the first ``cap`` rows page by page (narrow the search for older ones; the CSV
export has every row)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator

COUNT_CAP = 1_000


class CappedPaginator(Paginator):
    def __init__(
        self, object_list: Any, per_page: int, cap: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.cap = COUNT_CAP if cap is None else cap
        self.capped = False

    @cached_property
    def count(self) -> int:
        """Rows, counted up to ``cap`` (``COUNT(*)`` over a ``LIMIT cap + 1`` subquery)."""
        first = self.object_list[: self.cap + 1]
        counted = first.count() if hasattr(first, "query") else len(first)
        self.capped = counted > self.cap
        return min(counted, self.cap)


class CappedIdPaginator(CappedPaginator):
    """A ``CappedPaginator`` that reads the first ``cap + 1`` ids, in the list's order, once:
    their number is the capped count and a slice of them is the page, whose rows are then read
    by id (the moderation inbox). One ordered scan that stops at ``cap + 1`` matches, instead
    of a count and then an ``OFFSET`` scan over the same matches: for a search, each of those
    re-evaluates the match on every row it reads (bench/moderation). Every page lies within
    the cap, so the ids hold every row a page can show."""

    @cached_property
    def ids(self) -> list[Any]:
        return list(self.object_list.values_list("pk", flat=True)[: self.cap + 1])

    @cached_property
    def count(self) -> int:
        self.capped = len(self.ids) > self.cap
        return min(len(self.ids), self.cap)

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = self.ids[bottom:top]
        rows = {row.pk: row for row in self.object_list.filter(pk__in=ids)} if ids else {}
        # a row removed between the two reads (the retention purge) is left out
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)
