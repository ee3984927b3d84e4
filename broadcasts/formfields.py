"""Form fields that refuse, with a form error, primary keys no database can hold.

Django's model choice fields pass the submitted value straight into a query, so a 40-digit
"ID" reached the database and failed there (OverflowError on SQLite, DataError on
PostgreSQL): a 500 instead of 「選べない値です」."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

MAX_PK = 2**63 - 1  # BigAutoField


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
