"""One FilterSet per model of the events service exposed through the API (and reused by the admin)."""

import django_filters

from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.types import EVENT_TYPE_CHOICES
from texture_portal.filters import FilterSet, IdFilter, IsoDateTimeFilter, UpdatedSinceFilterSet


class DestinationFilterSet(UpdatedSinceFilterSet):
    isActive = django_filters.BooleanFilter(field_name="is_active")

    class Meta:
        model = Destination
        fields = ["isActive", "updatedSince"]


class DeliveryAttemptFilterSet(FilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=DeliveryStatus.choices)
    eventId = IdFilter(field_name="event_id")

    class Meta:
        model = DeliveryAttempt
        fields = ["status", "eventId"]


class PlatformEventFilterSet(FilterSet):
    type = django_filters.MultipleChoiceFilter(distinct=False, choices=EVENT_TYPE_CHOICES)
    since = IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    key = django_filters.CharFilter(field_name="key")

    class Meta:
        model = PlatformEvent
        fields = ["type", "since", "key"]
