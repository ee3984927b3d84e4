"""「受信した防災情報」: every official message received, the rule it matched or why it was
ignored, and the draft it made (issue 15)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from ..forms.official import OfficialFilterForm
from ..models import OfficialMessage
from ..permissions import BroadcastPermissionDenied, can_administer, can_review
from ..selectors import official as selectors

RAW_SHOWN_CHARS = 20_000


def _allowed(request: HttpRequest) -> None:
    user = request.user
    if not (can_review(user) or can_administer(user)):
        raise BroadcastPermissionDenied(
            "受信した防災情報を見られるのは広報担当・承認者・管理者です。"
        )


@require_GET
def official_list(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    form = OfficialFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    rows = selectors.official_messages(
        outcome=filters.get("outcome", ""),
        kind=filters.get("kind", ""),
        rule=filters.get("rule", ""),
        drafted=bool(filters.get("drafted")),
    )
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "broadcasts/official/list.html",
        {"form": form, "page": page, "rows": page.object_list, "querystring": query.urlencode()},
    )


@require_GET
def official_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _allowed(request)
    message = get_object_or_404(OfficialMessage.objects.select_related("rule", "broadcast"), pk=pk)
    raw = message.raw
    return render(
        request,
        "broadcasts/official/detail.html",
        {
            "message": message,
            "raw": raw[:RAW_SHOWN_CHARS],
            "raw_truncated": len(raw) > RAW_SHOWN_CHARS,
        },
    )
