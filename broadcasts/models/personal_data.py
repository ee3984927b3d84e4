"""What personal data a model keeps, declared on the model itself (policy 10).

A model that stores personal data has a class attribute ``personal_data = PersonalData(...)``;
the admins' personal-data page (``views/personal_data.py``) is generated from these, and
``tests/broadcasts/moderation/test_personal_data.py`` fails when a model has a field that
looks like personal data (a LINE user ID, a name, an e-mail or IP address, ...) without a
declaration, so the page stays true as the app grows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonalData:
    #: whose data: 「市民」 or 「職員」
    subject: str
    #: the fields that hold it (field names of the model)
    fields: tuple[str, ...]
    #: why it is kept, in a sentence
    purpose: str
    #: how long, in words; ``{retention_days}`` is replaced by the city's setting
    retention: str
    #: the beat schedule entry that deletes it, if any (settings.CELERY_BEAT_SCHEDULE)
    purge_beat: str = ""
    #: the ``job`` of that purge's ``data_purged`` audit rows (its last runs)
    purge_job: str = ""
