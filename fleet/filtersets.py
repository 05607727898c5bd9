"""One FilterSet per fleet model, used by the API (and the query names integrators see)."""

import django_filters
from django.db.models import Exists, OuterRef
from django.utils import timezone

from fleet.choices import AlertSeverity, AlertStatus, AlertType, DeviceState, DeviceType, LastSeen, SocBand
from fleet.models import Alert, Contact, Device, Site, TelemetryReading
from fleet.selectors import alerts_needing_attention_q, last_seen_q, soc_band_q
from programs.models import Enrollment
from texture_portal.filters import FilterSet, IdFilter, IsoDateTimeFilter, UpdatedSinceFilterSet


class ContactFilterSet(UpdatedSinceFilterSet):
    referenceId = django_filters.CharFilter(field_name="reference_id", label="Utility account number (exact)")
    email = django_filters.CharFilter(field_name="email", lookup_expr="iexact")

    class Meta:
        model = Contact
        fields = ["referenceId", "email", "updatedSince"]


class SiteFilterSet(UpdatedSinceFilterSet):
    contactId = IdFilter(field_name="contact_id")
    referenceId = django_filters.CharFilter(field_name="contact__reference_id", label="The contact's account number")
    siteReferenceId = django_filters.CharFilter(field_name="site_reference_id")
    postalCode = django_filters.CharFilter(field_name="postal_code")
    state = django_filters.CharFilter(field_name="state", lookup_expr="iexact")

    class Meta:
        model = Site
        fields = ["contactId", "referenceId", "siteReferenceId", "postalCode", "state", "updatedSince"]


class DeviceFilterSet(UpdatedSinceFilterSet):
    state = django_filters.MultipleChoiceFilter(
        distinct=False, choices=DeviceState.choices, label="Device state (repeatable)"
    )
    deviceType = django_filters.ChoiceFilter(field_name="device_type", choices=DeviceType.choices)
    manufacturer = django_filters.CharFilter(field_name="manufacturer__slug", label="Manufacturer slug")
    referenceId = django_filters.CharFilter(field_name="contact__reference_id", label="The contact's account number")
    systemIdentifier = django_filters.CharFilter(field_name="system_identifier")
    siteId = IdFilter(field_name="site_id")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag name, e.g. feeder:12")
    program = django_filters.CharFilter(method="filter_program", label="Program slug (any enrollment status)")
    socBand = django_filters.ChoiceFilter(
        choices=SocBand.choices,
        method="filter_soc_band",
        label="State of charge of the latest reading: 0-20, 20-50, 50-80 (lower bound included), 80-100, unknown",
    )
    lastSeen = django_filters.ChoiceFilter(
        choices=LastSeen.choices,
        method="filter_last_seen",
        label="Last reported within 15m, 1h or 24h, more than 24 hours ago (older), or never",
    )

    class Meta:
        model = Device
        fields = [
            "state",
            "deviceType",
            "manufacturer",
            "referenceId",
            "systemIdentifier",
            "siteId",
            "tag",
            "program",
            "socBand",
            "lastSeen",
            "updatedSince",
        ]

    def filter_tag(self, queryset, name, value):
        # EXISTS, not a join: a device matches once however its tags are stored.
        through = Device.tags.through
        return queryset.filter(Exists(through.objects.filter(device_id=OuterRef("pk"), devicetag__name=value)))

    def filter_program(self, queryset, name, value):
        return queryset.filter(Exists(Enrollment.objects.filter(device_id=OuterRef("pk"), program__slug=value)))

    def filter_soc_band(self, queryset, name, value):
        return queryset.filter(soc_band_q(value))

    def filter_last_seen(self, queryset, name, value):
        return queryset.filter(last_seen_q(value, now=timezone.now()))


class TelemetryReadingFilterSet(FilterSet):
    since = IsoDateTimeFilter(field_name="measured_at", lookup_expr="gte", label="Measured at or after")
    until = IsoDateTimeFilter(field_name="measured_at", lookup_expr="lt", label="Measured before")

    class Meta:
        model = TelemetryReading
        fields = ["since", "until"]


class AlertFilterSet(UpdatedSinceFilterSet):
    status = django_filters.MultipleChoiceFilter(
        distinct=False, choices=AlertStatus.choices, label="Status (repeatable)"
    )
    severity = django_filters.MultipleChoiceFilter(
        distinct=False, choices=AlertSeverity.choices, label="Severity (repeatable)"
    )
    type = django_filters.MultipleChoiceFilter(distinct=False, choices=AlertType.choices, label="Type (repeatable)")
    subtype = django_filters.CharFilter(field_name="subtype", label="Subtype, e.g. DEVICE_OFFLINE")
    deviceId = IdFilter(field_name="device_id")
    siteId = IdFilter(field_name="site_id")
    createdAfter = IsoDateTimeFilter(field_name="created", lookup_expr="gte", label="Raised at or after (ISO 8601)")
    createdBefore = IsoDateTimeFilter(field_name="created", lookup_expr="lt", label="Raised before (ISO 8601)")
    needsAttention = django_filters.BooleanFilter(
        method="filter_needs_attention", label="Open and not snoozed (true), or the others (false)"
    )

    class Meta:
        model = Alert
        fields = [
            "status",
            "severity",
            "type",
            "subtype",
            "deviceId",
            "siteId",
            "createdAfter",
            "createdBefore",
            "needsAttention",
            "updatedSince",
        ]

    def filter_needs_attention(self, queryset, name, value):
        if value is None:
            return queryset
        attention = alerts_needing_attention_q()
        return queryset.filter(attention) if value else queryset.exclude(attention)
