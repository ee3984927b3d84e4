"""The live progress of a send: a fragment the detail page and the list poll (htmx) while
the broadcast is being sent, and which stops polling once it is not."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..models import Broadcast
from .compose import _broadcast_or_404


def progress_context(broadcast: Broadcast, *, compact: bool = False) -> dict[str, object]:
    return {
        "broadcast": broadcast,
        "progress": broadcast.progress_percent,
        "progress_step": broadcast.progress_step,
        "polling": broadcast.status == Broadcast.Status.SENDING,
        "compact": compact,
    }


@require_GET
def progress(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    context = progress_context(broadcast, compact=request.GET.get("compact") == "1")
    return render(request, "broadcasts/_progress.html", context)
