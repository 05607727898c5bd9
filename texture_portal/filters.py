"""Filter pieces shared by every app's `filtersets.py` (camelCase query names, as in the API)."""

import django_filters
from django import forms


class UpdatedSinceFilterSet(django_filters.FilterSet):
    """Every FilterSet answers `updatedSince` (ISO 8601): rows changed at or after that time."""

    updatedSince = django_filters.IsoDateTimeFilter(
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
