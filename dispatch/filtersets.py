"""One FilterSet per dispatch model, used by the API."""

import django_filters

from dispatch.choices import CommandSlug, CommandStatus, DispatchEventStatus, ExclusionReason, ParticipationStatus
from dispatch.models import Command, DispatchEvent, EventReportDevice, Participation
from texture_portal.filters import FilterSet, IdFilter, IsoDateTimeFilter, UpdatedSinceFilterSet


class DispatchEventFilterSet(UpdatedSinceFilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=DispatchEventStatus.choices)
    program = django_filters.CharFilter(field_name="program__slug", label="Program slug")
    isTest = django_filters.BooleanFilter(field_name="is_test")
    startsAfter = IsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    startsBefore = IsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")

    class Meta:
        model = DispatchEvent
        fields = ["status", "program", "isTest", "startsAfter", "startsBefore", "updatedSince"]


class CommandFilterSet(UpdatedSinceFilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=CommandStatus.choices)
    command = django_filters.ChoiceFilter(field_name="slug", choices=CommandSlug.choices)
    deviceId = IdFilter(field_name="device_id")
    dispatchEventId = IdFilter(field_name="dispatch_event_id")
    batchId = IdFilter(field_name="batch_id")
    completedAfter = IsoDateTimeFilter(
        field_name="completed_at",
        lookup_expr="gte",
        label="Reached its outcome (succeeded, failed, skipped) at or after",
    )

    class Meta:
        model = Command
        fields = ["status", "command", "deviceId", "dispatchEventId", "batchId", "completedAfter", "updatedSince"]


class ParticipationFilterSet(FilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=ParticipationStatus.choices)
    reasonCode = django_filters.MultipleChoiceFilter(
        field_name="reason_code", distinct=False, choices=ExclusionReason.choices
    )
    deviceId = IdFilter(field_name="device_id")
    # the steps a device reached (an event's live counts count the same: `dispatch.selectors`)
    commanded = django_filters.BooleanFilter(
        field_name="commanded_at", lookup_expr="isnull", exclude=True, label="The OEM accepted its command"
    )
    confirmed = django_filters.BooleanFilter(
        field_name="confirmed_at", lookup_expr="isnull", exclude=True, label="Its telemetry confirmed the command"
    )
    restored = django_filters.BooleanFilter(
        field_name="restored_at", lookup_expr="isnull", exclude=True, label="Given back what it had before"
    )

    class Meta:
        model = Participation
        fields = ["status", "reasonCode", "deviceId", "commanded", "confirmed", "restored"]


class EventReportDeviceFilterSet(FilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=ParticipationStatus.choices)
    reasonCode = django_filters.MultipleChoiceFilter(
        field_name="reason_code", distinct=False, choices=ExclusionReason.choices
    )
    deviceId = IdFilter(field_name="device_id")
    commanded = django_filters.BooleanFilter()
    confirmed = django_filters.BooleanFilter()
    hasBaseline = django_filters.BooleanFilter(
        field_name="battery_delivered_kwh", lookup_expr="isnull", exclude=True, label="Measured against a baseline"
    )

    class Meta:
        model = EventReportDevice
        fields = ["status", "reasonCode", "deviceId", "commanded", "confirmed", "hasBaseline"]
