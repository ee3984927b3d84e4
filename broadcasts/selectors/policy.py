"""Reads for the operating policy's versions (policy 7)."""

from __future__ import annotations

import datetime as dt

from ..models import PolicyVersion


def policy_versions_published() -> list[PolicyVersion]:
    """Every published version, newest 施行日 first (the public page's history)."""
    return list(
        PolicyVersion.objects.filter(status=PolicyVersion.Status.PUBLISHED).order_by(
            "-effective_on", "-id"
        )
    )


def policy_current(*, today: dt.date) -> PolicyVersion | None:
    """The version in force on ``today`` (Japan's date): the published one with the latest
    施行日 not after it."""
    return (
        PolicyVersion.objects.filter(status=PolicyVersion.Status.PUBLISHED, effective_on__lte=today)
        .order_by("-effective_on", "-id")
        .first()
    )


def policy_upcoming(*, today: dt.date) -> list[PolicyVersion]:
    """Published versions whose 施行日 is still to come (announced ahead)."""
    return list(
        PolicyVersion.objects.filter(
            status=PolicyVersion.Status.PUBLISHED, effective_on__gt=today
        ).order_by("effective_on", "id")
    )
