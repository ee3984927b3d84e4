"""Public notices shown on the citizens' public page."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from ...models import (
    PublicNotice,
    User,
)
from ..audit import audit_record

logger = logging.getLogger(__name__)


def _notice_data(notice: PublicNotice) -> dict[str, Any]:
    return {"title": notice.title, "body": notice.body, "is_published": notice.is_published}


@transaction.atomic
def public_notice_save(*, notice: PublicNotice, actor: User) -> PublicNotice:
    """Save a notice; publishing stamps ``published_at`` (shown on the public page)."""
    previous = PublicNotice.objects.filter(pk=notice.pk).first() if notice.pk else None
    if notice.is_published and (previous is None or not previous.is_published):
        notice.published_at = timezone.now()
    notice.save()
    audit_record(
        verb="public_notice_saved",
        actor=actor,
        data={
            "id": notice.pk,
            "before": _notice_data(previous) if previous else None,
            "after": _notice_data(notice),
        },
    )
    return notice


@transaction.atomic
def public_notice_delete(*, notice: PublicNotice, actor: User) -> None:
    data = {"id": notice.pk, "before": _notice_data(notice)}
    notice.delete()
    audit_record(verb="public_notice_deleted", actor=actor, data=data)
