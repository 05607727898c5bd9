"""Filter pieces shared by every app's `filtersets.py` (camelCase query names, as in the API)."""

import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, normalized to UTC before it reaches the database (which refuses offsets beyond ±15:59);
    a value that leaves the calendar in UTC is a validation error, not a server error."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("Date and time out of range.", code="invalid") from exc


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class UpdatedSinceFilterSet(django_filters.FilterSet):
    """Every FilterSet answers `updatedSince` (ISO 8601): rows changed at or after that time."""

    updatedSince = IsoDateTimeFilter(
        field_name="last_updated", lookup_expr="gte", label="Changed at or after (ISO 8601)"
    )


MAX_ID = 2**63 - 1  # bigint: larger values are no id at all (and would overflow the database driver)


class IdFilter(django_filters.NumberFilter):
    """An object id (a positive 64-bit integer); anything else is a 400, never a database error."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)
