"""The real URLconf plus stand-ins for the nav pages other areas have not added yet.

Lets the navigation tests check the full role-aware menu whether or not ``broadcasts:list``,
``broadcasts:create``, ``broadcasts:review_queue`` and ``broadcasts:calendar`` exist yet."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path

from broadcasts import urls as broadcasts_urls
from kashiwa import urls as project_urls

NAV_URL_NAMES = ("list", "create", "review_queue", "calendar")


def _stub(request: HttpRequest) -> HttpResponse:
    return HttpResponse("stub page for navigation tests")


_existing = {getattr(p, "name", None) for p in broadcasts_urls.urlpatterns}
_broadcasts_patterns: list[URLPattern | URLResolver] = [
    *broadcasts_urls.urlpatterns,
    *(
        path(f"nav-stub/{name}/", _stub, name=name)
        for name in NAV_URL_NAMES
        if name not in _existing
    ),
]

urlpatterns = [
    *(p for p in project_urls.urlpatterns if getattr(p, "app_name", None) != "broadcasts"),
    path("", include((_broadcasts_patterns, "broadcasts"))),
]
