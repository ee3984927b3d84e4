"""The personal data the app keeps (policy 10), generated from the models' declarations
(``models/personal_data.py``), with the purge jobs and their last runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models

from ..models import BroadcastEvent
from ..models.personal_data import PersonalData
from .moderation import moderation_settings

#: models of the frameworks the app uses, declared here (they are not ours to annotate)
THIRD_PARTY: dict[str, PersonalData] = {
    "sessions.Session": PersonalData(
        subject="職員",
        fields=("session_data",),
        purpose="ログイン中の職員のセッション",
        retention="最長12時間（操作がなければ30分で失効）。期限切れの行は clearsessions で削除",
    ),
    "axes.AccessAttempt": PersonalData(
        subject="職員",
        fields=("username", "ip_address", "user_agent"),
        purpose="パスワードの誤入力の回数（ログイン制限）",
        retention="ログインに成功するか、管理者が解除するまで",
    ),
    "axes.AccessLog": PersonalData(
        subject="職員",
        fields=("username", "ip_address", "user_agent"),
        purpose="ログインの記録（django-axes）",
        retention="削除の仕組みはありません（axes_reset_logs で古いものを削除できます）",
    ),
    "axes.AccessFailureLog": PersonalData(
        subject="職員",
        fields=("username", "ip_address", "user_agent"),
        purpose="ログイン失敗の記録（django-axes）",
        retention="削除の仕組みはありません（axes_reset_failure_logs で古いものを削除できます）",
    ),
}

#: field names that hold personal data wherever they appear (the test checks declarations)
PERSONAL_FIELD_NAMES = frozenset(
    {
        "line_user_id",
        "recipients",
        "email",
        "first_name",
        "last_name",
        "username",
        "ip_address",
        "user_agent",
        "session_data",
        "display_name",
        "phone",
        "address",
    }
)


@dataclass(frozen=True)
class PurgeRun:
    at: dt.datetime
    deleted: int


@dataclass(frozen=True)
class PersonalDataRow:
    model: type[models.Model]
    declaration: PersonalData
    table: str
    fields: list[str]
    retention: str
    rows: int
    purge_schedule: str
    last_runs: list[PurgeRun]

    @property
    def name(self) -> str:
        return str(self.model._meta.verbose_name)

    @property
    def label(self) -> str:
        """``broadcasts.CitizenMessage``: for templates, which would call ``model`` (a class)."""
        return self.model._meta.label


def declaration_of(model: type[models.Model]) -> PersonalData | None:
    own = model.__dict__.get("personal_data")
    if isinstance(own, PersonalData):
        return own
    return THIRD_PARTY.get(model._meta.label)


def _schedule_text(beat: str) -> str:
    entry = settings.CELERY_BEAT_SCHEDULE.get(beat)
    if entry is None:
        return "（定期実行に登録されていません）"
    schedule: Any = entry.get("schedule")
    if isinstance(schedule, dt.timedelta):
        hours, rest = divmod(int(schedule.total_seconds()), 3600)
        if hours and not rest:
            return f"{hours}時間ごと"
        return f"{int(schedule.total_seconds() // 60)}分ごと"
    return str(schedule)


def purge_runs(job: str, *, limit: int = 3) -> list[PurgeRun]:
    """The last runs of a purge job, from its audit rows, newest first."""
    events = BroadcastEvent.objects.filter(verb="data_purged", data__job=job).order_by(
        "-created_at", "-id"
    )[:limit]
    return [PurgeRun(at=e.created_at, deleted=int(e.data.get("deleted", 0))) for e in events]


def personal_data_inventory() -> list[PersonalDataRow]:
    """Every model that declares personal data: what, where (table), how long, the purge job
    and its last runs. Citizens' data first."""
    retention_days = moderation_settings().retention_days
    rows = []
    for model in apps.get_models():
        declaration = declaration_of(model)
        if declaration is None:
            continue
        fields = []
        for name in declaration.fields:
            field = model._meta.get_field(name)
            fields.append(str(getattr(field, "verbose_name", name)))
        rows.append(
            PersonalDataRow(
                model=model,
                declaration=declaration,
                table=model._meta.db_table,
                fields=fields,
                retention=declaration.retention.format(retention_days=retention_days),
                rows=model._default_manager.count(),
                purge_schedule=_schedule_text(declaration.purge_beat)
                if declaration.purge_beat
                else "",
                last_runs=purge_runs(declaration.purge_job) if declaration.purge_job else [],
            )
        )
    rows.sort(key=lambda r: (r.declaration.subject != "市民", r.model._meta.label))
    return rows
