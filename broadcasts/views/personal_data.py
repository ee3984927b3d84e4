"""個人情報の取扱い (policy 10) for 管理者: what the app keeps, where, for how long, and the
purge jobs with their last runs, generated from the models' declarations."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..permissions import BroadcastPermissionDenied, can_administer
from ..selectors.personal_data import personal_data_inventory


@require_GET
def personal_data(request: HttpRequest) -> HttpResponse:
    if not can_administer(request.user):
        raise BroadcastPermissionDenied("個人情報の取扱いを見られるのは管理者だけです。")
    return render(request, "broadcasts/personal_data.html", {"rows": personal_data_inventory()})
