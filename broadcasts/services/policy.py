"""Versions of the operating policy (policy 7): admins edit drafts and publish them; a
published version is shown on the public page from its 施行日, and publishing creates the
announcement to followers as a broadcast waiting for approval (承認待ち), so that a 広報担当
checks and approves it like any other send (four eyes: the admin who published it is its
author and cannot approve it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from ..citizen_defaults import policy_url
from ..content import Problem
from ..models import Broadcast, BroadcastContributor, Category, PolicyVersion, User
from ..permissions import BroadcastPermissionDenied, can_administer
from ..policy import sections_from_text, wareki
from .audit import audit_record
from .errors import BroadcastInvalid
from .lifecycle import broadcast_snapshot, compute_hash, transition, validate_for_review

ANNOUNCEMENT_CATEGORY = "municipal"  # 市政


def _require_admin(actor: User) -> None:
    if not can_administer(actor):
        raise BroadcastPermissionDenied("運用ポリシーを変更できるのは管理者だけです。")


def _data(version: PolicyVersion) -> dict[str, Any]:
    return {
        "title": version.title,
        "enacted_on": version.enacted_on.isoformat() if version.enacted_on else None,
        "amended_on": version.amended_on.isoformat() if version.amended_on else None,
        "effective_on": version.effective_on.isoformat() if version.effective_on else None,
        "summary": version.summary,
        "status": version.status,
        "body_length": len(version.body or ""),
    }


def policy_version_problems(version: PolicyVersion) -> list[Problem]:
    problems = []
    if not (version.body or "").strip() or not sections_from_text(
        version.body, title=version.title
    ):
        problems.append(
            Problem("body", "本文を入力してください（「1 目的」のような見出しの行が必要です）。")
        )
    if not (version.summary or "").strip():
        problems.append(Problem("summary", "変更の概要を入力してください。"))
    if version.enacted_on and version.effective_on and version.effective_on < version.enacted_on:
        problems.append(Problem("effective_on", "施行日は制定日より後にしてください。"))
    if version.amended_on and version.enacted_on and version.amended_on < version.enacted_on:
        problems.append(Problem("amended_on", "改正日は制定日より後にしてください。"))
    return problems


@transaction.atomic
def policy_version_save(*, version: PolicyVersion, actor: User) -> PolicyVersion:
    """Save a draft. A published version is the city's record: it is never changed (a change
    is a new version)."""
    _require_admin(actor)
    created = version.pk is None
    before = None
    if not created:
        stored = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        if stored.status != PolicyVersion.Status.DRAFT:
            raise BroadcastInvalid(
                [Problem("status", "公開済みの版は変更できません。新しい版を作成してください。")]
            )
        before = _data(stored)
    version.status = PolicyVersion.Status.DRAFT
    problems = policy_version_problems(version)
    if problems:
        raise BroadcastInvalid(problems)
    version.save()
    audit_record(
        verb="policy_version_created" if created else "policy_version_changed",
        actor=actor,
        data={"id": version.pk, "before": before, "after": _data(version)},
    )
    return version


@transaction.atomic
def policy_version_delete(*, version: PolicyVersion, actor: User) -> None:
    _require_admin(actor)
    if version.status != PolicyVersion.Status.DRAFT:
        raise BroadcastInvalid([Problem("status", "公開済みの版は削除できません。")])
    data = {"id": version.pk, "before": _data(version)}
    version.delete()
    audit_record(verb="policy_version_deleted", actor=actor, data=data)


def announcement_text(version: PolicyVersion, *, url: str) -> str:
    changed = f"{wareki(version.amended_on)}に改正し、" if version.amended_on else ""
    return (
        "【柏市公式 LINE アカウント運用ポリシー改正のお知らせ】\n"
        f"運用ポリシーを{changed}{wareki(version.effective_on)}から施行します。\n"
        f"変更の概要：{version.summary}\n\n"
        f"全文と変更履歴はこちらでご覧いただけます。\n{url}"
    )


@transaction.atomic
def policy_version_publish(
    *, version: PolicyVersion, actor: User, now: dt.datetime
) -> PolicyVersion:
    """Publish a draft: from its 施行日 the public page shows it (earlier: announced as
    upcoming), and an announcement broadcast waits for a 広報担当's approval."""
    _require_admin(actor)
    version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != PolicyVersion.Status.DRAFT:
        raise BroadcastInvalid([Problem("status", "この版はすでに公開されています。")])
    problems = policy_version_problems(version)
    if problems:
        raise BroadcastInvalid(problems)
    announcement = _announcement_create(version=version, actor=actor, now=now)
    version.status = PolicyVersion.Status.PUBLISHED
    version.published_at = now
    version.published_by = actor
    version.announcement = announcement
    version.save(update_fields=["status", "published_at", "published_by", "announcement"])
    audit_record(
        verb="policy_version_published",
        actor=actor,
        broadcast=announcement,
        data={"id": version.pk, "after": _data(version)},
    )
    return version


def _announcement_create(*, version: PolicyVersion, actor: User, now: dt.datetime) -> Broadcast:
    """The announcement as a broadcast in 承認待ち, authored by the admin who published.

    Written here rather than through ``broadcast_create``/``broadcast_submit``: those let
    only drafters write and submit, and 管理者 (DX推進課) are not drafters. The row gets
    what they give it: a contributor row (four eyes), the content hash, the audit rows."""
    categories = list(Category.objects.filter(code=ANNOUNCEMENT_CATEGORY))
    broadcast = Broadcast.objects.create(
        title=f"運用ポリシー改正のお知らせ（{wareki(version.effective_on)}施行）"[:120],
        messages=[{"type": "text", "text": announcement_text(version, url=policy_url())}],
        audience=Broadcast.Audience.ALL,
        priority=Broadcast.Priority.NORMAL,
        division=actor.division,
        author=actor,
    )
    broadcast.categories.set(categories)
    BroadcastContributor.objects.get_or_create(
        broadcast=broadcast, user=actor, defaults={"first_contributed_at": now}
    )
    codes = [c.code for c in categories]
    broadcast.content_hash = compute_hash(broadcast, codes)
    broadcast.save(update_fields=["content_hash"])
    audit_record(
        verb="create",
        actor=actor,
        broadcast=broadcast,
        to_status=broadcast.status,
        comment="運用ポリシーの公開により作成",
        data={"after": broadcast_snapshot(broadcast, codes), "policy_version": version.pk},
    )
    validate_for_review(broadcast)
    broadcast.submitted_at = now
    transition(broadcast, "submit", actor=actor, fields=["submitted_at"])
    return broadcast
