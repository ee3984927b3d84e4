"""Pagination for lists that grow without bound (the audit log: a million rows in a few
years; the broadcast list: a hundred thousand). An exact ``COUNT(*)`` of such a table, or of a
search that matches most of it, costs more than the page itself (226 ms of a 325 ms history
page at 1,000,000 rows), so the count stops at ``cap``: past it the page says "1,000 件以上"
and offers the first ``cap`` rows page by page (narrow the search for older ones; the CSV
export has every row)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Paginator

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
