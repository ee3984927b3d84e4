"""Audiences (issue 16): the screen that narrows a broadcast to areas × age groups × language
and holds its language versions, and the live recipient count beside "all friends".

Thin views: the form validates, ``services.audiences.broadcast_targeting_set`` writes (an
edit after approval returns the broadcast to review), domain errors become form errors."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from .. import permissions
from ..forms.audiences import TargetingForm, first_text
from ..forms.fields import valid_ids
from ..models import AgeGroup, Area, Broadcast, BroadcastAudience, Category, Language
from ..models.audiences import BASE_LANGUAGE
from ..selectors import audiences as audience_selectors
from ..services import BroadcastInvalid, InvalidTransition
from ..services import audiences as audience_services
from ..services.insight import line_quota_cached
from .compose import _broadcast_or_404


def _initial(broadcast: Broadcast) -> dict[str, Any]:
    target = BroadcastAudience.objects.filter(broadcast=broadcast).first()
    initial: dict[str, Any] = {"include_unset": True}
    if target is not None:
        initial.update(
            areas=list(target.areas.all()),
            age_groups=list(target.age_groups.all()),
            languages=list(target.languages.all()),
            include_unset=target.include_unset,
        )
    for variant in broadcast.variants.select_related("language"):
        initial[f"variant_{variant.language.code}"] = first_text(variant.messages)
    return initial


@require_http_methods(["GET", "POST"])
def audience_edit(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = _broadcast_or_404(request, pk)
    if not permissions.can_edit(request.user, broadcast):
        raise PermissionDenied
    form = TargetingForm(request.POST or None, initial=_initial(broadcast))
    if request.method == "POST" and form.is_valid():
        try:
            audience_services.broadcast_targeting_set(
                broadcast=broadcast,
                actor=request.user,
                areas=list(form.cleaned_data["areas"]),
                age_groups=list(form.cleaned_data["age_groups"]),
                languages=list(form.cleaned_data["languages"]),
                include_unset=form.cleaned_data["include_unset"],
                variants=form.variants(broadcast.messages),
            )
        except BroadcastInvalid as exc:
            for problem in exc.problems:
                field = problem.field.replace("variants.", "variant_")
                form.add_error(field if field in form.fields else None, problem.message)
        except InvalidTransition:
            form.add_error(None, gettext("この状態の配信は変更できません。"))
        else:
            messages.success(request, gettext("配信対象と言語版を保存しました。"))
            return redirect("broadcasts:detail", pk=broadcast.pk)
    spec = _spec_from_form(form, broadcast) if form.is_bound else None
    return render(
        request,
        "broadcasts/audiences/edit.html",
        {
            "broadcast": broadcast,
            "form": form,
            "count": count_context(spec or audience_selectors.audience_spec(broadcast)),
            "sample_areas": audience_selectors.areas_active().filter(is_sample=True).exists(),
        },
    )


def _spec_from_form(form: TargetingForm, broadcast: Broadcast) -> audience_selectors.AudienceSpec:
    data = form.data
    return _spec(
        audience=broadcast.audience,
        category_ids=[c.pk for c in broadcast.categories.all()],
        area_ids=valid_ids(data.getlist("areas")),
        age_group_ids=valid_ids(data.getlist("age_groups")),
        language_ids=valid_ids(data.getlist("languages")),
        include_unset=bool(data.get("include_unset")),
        variant_codes=[
            lang.code
            for lang in form.variant_languages
            if str(data.get(f"variant_{lang.code}", "")).strip()
        ],
    )


def _spec(
    *,
    audience: str,
    category_ids: list[int],
    area_ids: list[int],
    age_group_ids: list[int],
    language_ids: list[int],
    include_unset: bool,
    variant_codes: list[str],
) -> audience_selectors.AudienceSpec:
    return audience_selectors.AudienceSpec(
        audience=audience if audience in Broadcast.Audience.values else Broadcast.Audience.ALL,
        category_ids=tuple(
            sorted(Category.objects.filter(pk__in=category_ids).values_list("pk", flat=True))
        ),
        area_ids=tuple(sorted(Area.objects.filter(pk__in=area_ids).values_list("pk", flat=True))),
        age_group_ids=tuple(
            sorted(AgeGroup.objects.filter(pk__in=age_group_ids).values_list("pk", flat=True))
        ),
        language_codes=tuple(
            sorted(Language.objects.filter(pk__in=language_ids).values_list("code", flat=True))
        ),
        include_unset=include_unset,
        variant_codes=tuple(
            sorted(Language.objects.filter(code__in=variant_codes).values_list("code", flat=True))
        ),
    )


def count_context(spec: audience_selectors.AudienceSpec) -> dict[str, Any]:
    """The numbers shown next to "all friends": recipients, per language version, the
    messages this send consumes and what is left of the month's quota."""
    count = audience_selectors.audience_count(spec)
    labels = dict(Language.objects.values_list("code", "label"))
    quota = line_quota_cached()
    cost = count.total
    return {
        "total": count.total,
        "all_friends": audience_selectors.all_friends_count(),
        "narrowed": spec.narrowed,
        "per_variant": [
            {"code": code, "label": labels.get(code, code), "n": n}
            for code, n in sorted(count.per_variant.items(), key=lambda kv: kv[0] != BASE_LANGUAGE)
        ]
        if spec.variant_codes
        else [],
        "cost": cost,
        "quota": quota,
        "over_quota": quota.ok and quota.remaining is not None and cost > quota.remaining,
    }


def compose_spec(*, audience: str, category_ids: list[int]) -> audience_selectors.AudienceSpec:
    """The audience of a broadcast not saved yet, from the compose screen's choices: the
    audience and the categories (areas, age groups, language and versions are set on the
    targeting screen, once the draft is saved, so none narrow yet). Unknown ids and choices
    are dropped, as everywhere."""
    return _spec(
        audience=audience,
        category_ids=category_ids,
        area_ids=[],
        age_group_ids=[],
        language_ids=[],
        include_unset=True,
        variant_codes=[],
    )


@require_GET
def audience_count_new(request: HttpRequest) -> HttpResponse:
    """The count partial for the compose screen of a new, unsaved broadcast: recipients beside
    "all friends" and the messages the send consumes, for its audience and categories as they
    stand. Who may see it: who may draft (the compose screen's own rule); the saved
    broadcast's endpoint asks who may edit that broadcast."""
    if not permissions.can_draft(request.user):
        raise PermissionDenied
    return render(
        request,
        "broadcasts/audiences/_count.html",
        {
            "count": count_context(
                compose_spec(
                    audience=request.GET.get("audience", ""),
                    category_ids=valid_ids(request.GET.getlist("categories")),
                )
            )
        },
    )


@require_GET
def audience_count(request: HttpRequest, pk: int) -> HttpResponse:
    """The count partial for the targeting screen's current (unsaved) choices."""
    broadcast = _broadcast_or_404(request, pk)
    if not permissions.can_edit(request.user, broadcast):
        raise PermissionDenied
    form = TargetingForm(request.GET)
    return render(
        request,
        "broadcasts/audiences/_count.html",
        {"count": count_context(_spec_from_form(form, broadcast))},
    )
