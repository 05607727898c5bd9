"""One FilterSet per integrations model exposed through the API."""

import django_filters

from integrations.choices import PlatformEventType
from integrations.destinations import DeliveryAttempt, DeliveryStatus, Destination
from integrations.models import PlatformEvent
from texture_portal.filters import IdFilter, IsoDateTimeFilter, UpdatedSinceFilterSet


class DestinationFilterSet(UpdatedSinceFilterSet):
    isActive = django_filters.BooleanFilter(field_name="is_active")

    class Meta:
        model = Destination
        fields = ["isActive", "updatedSince"]


class DeliveryAttemptFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=DeliveryStatus.choices)
    eventId = IdFilter(field_name="event_id")

    class Meta:
        model = DeliveryAttempt
        fields = ["status", "eventId"]


class PlatformEventFilterSet(django_filters.FilterSet):
    type = django_filters.MultipleChoiceFilter(distinct=False, choices=PlatformEventType.choices)
    since = IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    key = django_filters.CharFilter(field_name="key")

    class Meta:
        model = PlatformEvent
        fields = ["type", "since", "key"]
