"""Form fields that refuse, with a form error, primary keys and dates no code can handle.

Django's model choice fields pass the submitted value straight into a query, so a 40-digit
"ID" reached the database and failed there (OverflowError on SQLite, DataError on
PostgreSQL): a 500 instead of 「選べない値です」. Likewise a date filter of 0001-01-01 or
9999-12-31 is a valid ``date`` whose JST midnight (converted to UTC) or next day does not
exist: OverflowError, a 500 instead of a form error."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..schedule import JST

MAX_PK = 2**63 - 1  # BigAutoField
# The dates a filter, a calendar page or a requested send time may name: wide enough for any
# record the service can hold, narrow enough that a day either side still exists.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)
DATE_OUT_OF_RANGE = _("日付は2000年1月1日から2099年12月31日までの間で指定してください。")


def date_in_range(value: dt.date) -> bool:
    return EARLIEST_DATE <= value <= LATEST_DATE


def out_of_range(value: Any) -> bool:
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        return False  # not a number: Django's own validation answers that
    return not 0 < int(text) <= MAX_PK


def valid_ids(values: Any) -> list[int]:
    """The submitted values that can be primary keys (others are dropped)."""
    ids = []
    for value in values or []:
        value = getattr(value, "pk", value)
        try:
            number = int(str(value).strip())
        except ValueError:
            continue
        if 0 < number <= MAX_PK:
            ids.append(number)
    return ids


class SafeModelChoiceField(forms.ModelChoiceField):
    def to_python(self, value: Any) -> Any:
        if value not in self.empty_values and out_of_range(value):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class SafeModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    def _check_values(self, value: Any) -> Any:
        for item in value:
            if out_of_range(item):
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": str(item)[:20]},
                )
        return super()._check_values(value)


class SafeIntegerField(forms.IntegerField):
    """An ID typed into a filter: positive and within the database's integer range."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_PK)
        super().__init__(**kwargs)


class SafeDateField(forms.DateField):
    """A date typed into a filter: between ``EARLIEST_DATE`` and ``LATEST_DATE``."""

    default_error_messages = {"out_of_range": DATE_OUT_OF_RANGE}

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is not None and not date_in_range(value):
            raise ValidationError(self.error_messages["out_of_range"], code="out_of_range")


DATETIME_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class JSTDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` value read and shown as Japan time, whatever the active zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL_FORMAT)
    input_formats = [DATETIME_LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]

    def to_python(self, value: Any) -> dt.datetime | None:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            for fmt in self.input_formats:
                try:
                    naive = dt.datetime.strptime(value, fmt)  # noqa: DTZ007 - made aware below
                except ValueError:
                    continue
                if not date_in_range(naive.date()):
                    # 9999-12-31 23:59 parses, but the send-time arithmetic overflows on it.
                    raise forms.ValidationError(DATE_OUT_OF_RANGE, code="out_of_range")
                return naive.replace(tzinfo=JST)
            raise forms.ValidationError(
                _("日時の形式が正しくありません（例: 2026-12-01 10:00）。"), code="invalid"
            )
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and timezone.is_aware(value):
            return value.astimezone(JST).replace(tzinfo=None)
        return value
