"""Statistics: how sends landed (LINE's numbers), per broadcast, over time and by category,
and a CSV of sends and their numbers for the city's reports (issue 6).

LINE's numbers are fetched in the background (``tasks/insight.py``) into ``BroadcastStats`` and
``DailyStats``; these pages read only those rows. A fixed number of queries per page: the
totals, the per-day and per-category figures are SQL aggregates, the table is paginated."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from ..csvsafe import csv_safe_row
from ..forms.fields import SafeDateField
from ..models import Broadcast, BroadcastStats
from ..schedule import JST, jst_date
from ..selectors.stats import DELIVERED, per_category, per_day, percent, sent_between
from ..templatetags.kashiwa import display_date, jst

PAGE_SIZE = 50
DEFAULT_DAYS = 30
MAX_DAYS = 731


class StatsRangeForm(forms.Form):
    date_from = SafeDateField(
        label="開始日", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = SafeDateField(
        label="終了日", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("開始日は終了日より前にしてください。")
        if start and end and (end - start).days > MAX_DAYS:
            raise forms.ValidationError("期間は2年以内で指定してください。")
        return data


def _range(request: HttpRequest) -> tuple[StatsRangeForm, dt.date, dt.date]:
    today = jst_date(timezone.now())
    form = StatsRangeForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    end = data.get("date_to") or today
    start = data.get("date_from") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if (end - start).days > MAX_DAYS:
        # A start date alone runs to today: keep that range as short as a typed one.
        form.add_error(None, gettext("期間は2年以内で指定してください。"))
        start = end - dt.timedelta(days=MAX_DAYS)
    return form, start, end


def _check(request: HttpRequest) -> None:
    if not request.user.has_perm("broadcasts.view_broadcast"):
        raise PermissionDenied


# --- pages -------------------------------------------------------------------------------------


@require_GET
def stats_overview(request: HttpRequest) -> HttpResponse:
    _check(request)
    form, start, end = _range(request)
    # Drills reach staff only: left out of the totals unless asked for (?drills=1).
    drills = request.GET.get("drills") == "1"
    qs = sent_between(start, end, include_drills=drills)
    totals = qs.order_by().aggregate(
        sends=Count("id"),
        delivered=Sum(DELIVERED),
        impressions=Sum("stats__unique_impression"),
        known=Sum(DELIVERED, filter=Q(stats__unique_impression__isnull=False)),
        clicks=Sum("stats__unique_click"),
    )
    page = Paginator(qs.reverse(), PAGE_SIZE).get_page(request.GET.get("page"))
    # the day in the reader's language (the selector's label is the schedule's Japanese one)
    days = [
        {**d, "label": display_date(d["date"])} for d in per_day(start, end, include_drills=drills)
    ]
    categories = per_category(start, end, include_drills=drills)
    chart = {
        "days": {
            "labels": [d["label"] for d in days],
            "sends": [d["sends"] for d in days],
            "delivered": [d["delivered"] for d in days],
            "followers": [d["followers"] for d in days],
        },
        "categories": {
            "labels": [c["category"].label for c in categories],
            "colors": [c["category"].color for c in categories],
            "sends": [c["sends"] for c in categories],
            "delivered": [c["delivered"] for c in categories],
        },
    }
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "broadcasts/stats.html",
        {
            "form": form,
            "start": start,
            "end": end,
            "totals": totals,
            "open_rate": percent(totals["impressions"], totals["known"]),
            "page": page,
            "rows": [_row(b) for b in page.object_list],
            "days": days,
            "categories": categories,
            "chart": chart,
            "querystring": params.urlencode(),
            "range_query": f"date_from={start.isoformat()}&date_to={end.isoformat()}"
            + ("&drills=1" if drills else ""),
            "include_drills": drills,
            "drills_toggle": _drills_toggle(request, drills),
        },
    )


def _drills_toggle(request: HttpRequest, drills: bool) -> str:
    """The query string that shows (or hides again) drills in the figures."""
    params = request.GET.copy()
    params.pop("page", None)
    if drills:
        params.pop("drills", None)
    else:
        params["drills"] = "1"
    return params.urlencode()


def _row(b: Broadcast) -> dict[str, Any]:
    stats: BroadcastStats | None = getattr(b, "stats", None)
    delivered = stats.delivered if stats and stats.delivered is not None else b.recipient_count
    return {
        "broadcast": b,
        "stats": stats,
        "delivered": delivered,
        "open_rate": percent(stats.unique_impression if stats else None, delivered),
    }


CSV_HEADER = [
    "配信ID",
    "件名",
    "カテゴリ",
    "配信対象",
    "優先度",
    "種別",
    "担当課",
    "起案者",
    "配信完了日時（日本時間）",
    "宛先数",
    "配信数（LINE）",
    "開封数",
    "開封率（%）",
    "クリック数",
    "LINE 集計取得日時",
]


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(start: dt.date, end: dt.date, *, drills: bool = False) -> Iterator[list[Any]]:
    qs = sent_between(start, end, include_drills=drills)
    for b in qs.iterator(chunk_size=1000):
        row = _row(b)
        stats = row["stats"]
        yield [
            b.pk,
            b.title,
            "・".join(c.label for c in b.categories.all()),
            b.get_audience_display(),
            b.get_priority_display(),
            b.get_kind_display(),
            b.division or "",
            b.author,
            b.sent_at.astimezone(JST).strftime("%Y-%m-%d %H:%M") if b.sent_at else "",
            b.recipient_count if b.recipient_count is not None else "",
            row["delivered"] if row["delivered"] is not None else "",
            stats.unique_impression if stats and stats.unique_impression is not None else "",
            row["open_rate"] if row["open_rate"] is not None else "",
            stats.unique_click if stats and stats.unique_click is not None else "",
            stats.fetched_at.astimezone(JST).strftime("%Y-%m-%d %H:%M") if stats else "",
        ]


def csv_response(filename: str, header: list[str], rows: Iterator[list[Any]]) -> Any:
    """A streamed CSV in UTF-8 with a BOM, so Excel opens the Japanese text correctly. Every
    export goes through here, so every cell is made safe here: text a spreadsheet would run
    as a formula gets a leading ``'`` (``csvsafe``, OWASP CSV injection)."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield "\ufeff" + writer.writerow(csv_safe_row(header))
        for row in rows:
            yield writer.writerow(csv_safe_row(row))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
def stats_csv(request: HttpRequest) -> Any:
    _check(request)
    _form, start, end = _range(request)
    return csv_response(
        f"kashiwa-line-sends-{start:%Y%m%d}-{end:%Y%m%d}.csv",
        CSV_HEADER,
        _csv_rows(start, end, drills=request.GET.get("drills") == "1"),
    )


def _enqueue(task: Any, *args: Any) -> None:
    transaction.on_commit(lambda: task.delay(*args))


@require_POST
def stats_refresh(request: HttpRequest) -> HttpResponse:
    _check(request)
    from .. import tasks

    _enqueue(tasks.refresh_insight)
    messages.success(
        request,
        gettext("LINE から最新の数値を取得しています。しばらくしてから再読み込みしてください。"),
    )
    return redirect(reverse("broadcasts:stats") + "?" + request.POST.get("query", ""))


def _broadcast(request: HttpRequest, pk: int) -> Broadcast:
    _check(request)
    broadcast = get_object_or_404(
        Broadcast.objects.select_related("author", "division").prefetch_related("categories"),
        pk=pk,
    )
    if broadcast.status == Broadcast.Status.DRAFT and broadcast.author_id != request.user.pk:
        raise PermissionDenied
    return broadcast


@require_GET
def broadcast_stats(request: HttpRequest, pk: int) -> HttpResponse:
    """One broadcast's numbers: a page, or (for htmx) the panel alone to embed elsewhere."""
    broadcast = _broadcast(request, pk)
    stats = BroadcastStats.objects.filter(broadcast=broadcast).first()
    row = _row_with(broadcast, stats)
    context = {"broadcast": broadcast, **row, "sent_at": broadcast.sent_at}
    if broadcast.sent_at:
        context["sent_label"] = jst(broadcast.sent_at)
    template = "broadcasts/stats_panel.html"
    if not request.headers.get("HX-Request"):
        template = "broadcasts/stats_broadcast.html"
    return render(request, template, context)


def _row_with(b: Broadcast, stats: BroadcastStats | None) -> dict[str, Any]:
    delivered = stats.delivered if stats and stats.delivered is not None else b.recipient_count
    return {
        "stats": stats,
        "delivered": delivered,
        "open_rate": percent(stats.unique_impression if stats else None, delivered),
        "click_rate": percent(stats.unique_click if stats else None, delivered),
    }


@require_POST
def broadcast_stats_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast(request, pk)
    if broadcast.status != Broadcast.Status.SENT:
        messages.error(request, gettext("配信済みの配信だけ LINE の数値を取得できます。"))
    else:
        from .. import tasks

        _enqueue(tasks.refresh_broadcast_stats, broadcast.pk)
        messages.success(
            request,
            gettext(
                "LINE から最新の数値を取得しています。しばらくしてから再読み込みしてください。"
            ),
        )
    return redirect("broadcasts:broadcast_stats", pk=pk)
