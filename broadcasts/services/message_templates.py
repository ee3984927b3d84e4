"""Reusable message templates (雛形), e.g. 広報かしわ発行のお知らせ."""

from __future__ import annotations

from django.db import transaction

from .. import permissions
from ..content import Problem, check_messages
from ..models import Broadcast, MessageTemplate, User
from .errors import BroadcastInvalid, BroadcastPermissionDenied


@transaction.atomic
def message_template_create_from_broadcast(
    *, broadcast: Broadcast, actor: User, name: str
) -> MessageTemplate:
    """Save a broadcast's messages and categories as a template anyone drafting can start from."""
    if not permissions.can_draft(actor):
        raise BroadcastPermissionDenied("雛形を保存する権限がありません。")
    if not name.strip():
        raise BroadcastInvalid([Problem("name", "雛形の名前を入力してください。")])
    problems = check_messages(broadcast.messages)
    if problems:
        raise BroadcastInvalid(problems)
    template = MessageTemplate.objects.create(
        name=name.strip(), messages=broadcast.messages, created_by=actor
    )
    template.categories.set(broadcast.categories.all())
    return template
