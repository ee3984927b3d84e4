"""運用状況 for administrators (issue: operations)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import ops
from ..permissions import BroadcastPermissionDenied, can_administer


@require_GET
def ops_view(request: HttpRequest) -> HttpResponse:
    if not can_administer(request.user):
        raise BroadcastPermissionDenied("運用状況を見られるのは管理者だけです。")
    status = ops.ops_status()
    if request.GET.get("format") == "json":
        return JsonResponse(ops.as_json(status))
    return render(request, "broadcasts/ops.html", {"status": status})
