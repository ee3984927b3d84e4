"""History and audit: every ``BroadcastEvent`` (who did what, when), searchable and filterable,
paginated, and exportable as CSV (issue 6). A fixed number of queries per page and a
streamed export, whatever the size of the log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from ..forms.fields import SafeDateField, SafeIntegerField, SafeModelChoiceField
from ..models import Broadcast, User
from ..models.audit import VERB_LABELS, verb_label
from ..schedule import JST
from ..selectors import dashboard as dash
from .paging import CappedPaginator
from .stats import csv_response

PAGE_SIZE = 50


def status_label(value: str) -> str:
    try:
        return str(Broadcast.Status(value).label)
    except ValueError:
        return value


class HistoryFilterForm(forms.Form):
    q = forms.CharField(label=_("キーワード（件名・コメント）"), required=False, max_length=100)
    verb = forms.ChoiceField(label=_("操作"), required=False)
    actor = SafeModelChoiceField(
        label=_("操作した人"), required=False, queryset=User.objects.none(), empty_label=_("すべて")
    )
    broadcast = SafeIntegerField(label=_("配信ID"), required=False)
    date_from = SafeDateField(
        label=_("開始日"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = SafeDateField(
        label=_("終了日"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["verb"].choices = [("", gettext("すべて")), *VERB_LABELS.items()]
        # Staff accounts are few; the list is one query.
        self.fields["actor"].queryset = User.objects.order_by("last_name", "first_name", "id")
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select" if is_select else "form-control"


def _check(request: HttpRequest) -> None:
    if not request.user.has_perm("broadcasts.view_broadcastevent"):
        raise PermissionDenied


def _filters(request: HttpRequest) -> tuple[HistoryFilterForm, dict[str, Any]]:
    form = HistoryFilterForm(request.GET or None)
    return form, (form.cleaned_data if form.is_valid() else {})


@require_GET
def history(request: HttpRequest) -> HttpResponse:
    _check(request)
    form, filters = _filters(request)
    page = CappedPaginator(dash.events_filtered(filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [
        {
            "event": e,
            "verb": verb_label(e.verb),
            "from": status_label(e.from_status),
            "to": status_label(e.to_status),
        }
        for e in page.object_list
    ]
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "broadcasts/history.html",
        {"form": form, "page": page, "rows": rows, "querystring": params.urlencode()},
    )


CSV_HEADER = [
    "日時（日本時間）",
    "操作",
    "操作コード",
    "操作した人",
    "配信ID",
    "件名",
    "変更前",
    "変更後",
    "コメント",
]


def _csv_rows(events: Any) -> Iterator[list[Any]]:
    for e in events.iterator(chunk_size=2000):
        yield [
            e.created_at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S"),
            verb_label(e.verb),
            e.verb,
            str(e.actor) if e.actor else "システム",
            e.broadcast_id or "",
            e.broadcast.title if e.broadcast else "",
            status_label(e.from_status),
            status_label(e.to_status),
            e.comment,
        ]


@require_GET
def history_csv(request: HttpRequest) -> Any:
    _check(request)
    _form, filters = _filters(request)
    events: Any = dash.events_filtered(filters)
    return csv_response("kashiwa-line-audit-log.csv", CSV_HEADER, _csv_rows(events))
