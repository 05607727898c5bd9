"""Filter pieces shared by every app's `filtersets.py` (camelCase query names, as in the API)."""

import django_filters


class UpdatedSinceFilterSet(django_filters.FilterSet):
    """Every FilterSet answers `updatedSince` (ISO 8601): rows changed at or after that time."""

    updatedSince = django_filters.IsoDateTimeFilter(
        field_name="last_updated", lookup_expr="gte", label="Changed at or after (ISO 8601)"
    )
