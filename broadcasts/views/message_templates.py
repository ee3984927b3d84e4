"""The templates screen (雛形): the list, each with 「この雛形で作成」, and saving a broadcast's
messages and categories as a new template."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from .. import permissions
from ..forms.fields import valid_ids
from ..forms.review import MessageTemplateForm
from ..models import MessageTemplate
from ..services import BroadcastInvalid, message_template_create_from_broadcast
from .compose import _broadcast_or_404


@require_http_methods(["GET", "POST"])
def templates_view(request: HttpRequest) -> HttpResponse:
    """GET: the templates, each with 「この雛形で作成」. POST (``broadcast`` + ``name``): save a
    broadcast's messages and categories as a new template."""
    if not permissions.can_draft(request.user):
        raise PermissionDenied
    if request.method == "POST":
        ids = valid_ids([request.POST.get("broadcast", "")])
        if not ids:
            raise Http404
        broadcast = _broadcast_or_404(request, ids[0])
        form = MessageTemplateForm(request.POST)
        if form.is_valid():
            try:
                template = message_template_create_from_broadcast(
                    broadcast=broadcast, actor=request.user, name=form.cleaned_data["name"]
                )
            except BroadcastInvalid as exc:
                messages.error(
                    request, "雛形を保存できません: " + "／".join(p.message for p in exc.problems)
                )
            else:
                messages.success(
                    request, gettext("雛形「%(n)s」を保存しました。") % {"n": template.name}
                )
                return redirect("broadcasts:templates")
        else:
            messages.error(request, gettext("雛形の名前を入力してください。"))
        return redirect("broadcasts:detail", pk=broadcast.pk)
    templates = MessageTemplate.objects.select_related("created_by").prefetch_related("categories")
    return render(request, "broadcasts/templates.html", {"templates": templates})
