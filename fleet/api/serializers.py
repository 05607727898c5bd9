"""Fleet API bodies (camelCase). Read-only: contacts, sites and devices are written by import and sync; alerts are
raised by the portal's rules, and integrators change their status and snooze."""

from rest_framework import serializers

from fleet.choices import AlertSeverity, AlertStatus, AlertType, GridServicesStatus
from fleet.models import Alert, Contact, Device, TelemetryReading
from texture_portal.api.serializers import TimestampedSerializer


class ContactSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    referenceId = serializers.CharField(source="reference_id")
    firstName = serializers.CharField(source="first_name")
    lastName = serializers.CharField(source="last_name")
    email = serializers.EmailField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)

    class Meta:
        model = Contact


class AddressSerializer(serializers.Serializer):
    streetOne = serializers.CharField(source="street_one")
    streetTwo = serializers.CharField(source="street_two", allow_blank=True)
    city = serializers.CharField()
    state = serializers.CharField()
    postalCode = serializers.CharField(source="postal_code")
    country = serializers.CharField()


class SiteSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    contactId = serializers.IntegerField(source="contact_id")
    siteName = serializers.CharField(source="site_name", allow_blank=True)
    siteReferenceId = serializers.CharField(source="site_reference_id", allow_blank=True)
    address = AddressSerializer(source="*")
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    timezone = serializers.CharField(allow_blank=True)


class TelemetrySerializer(serializers.Serializer):
    measuredAt = serializers.DateTimeField(source="measured_at")
    receivedAt = serializers.DateTimeField(source="received_at")
    chargePercentage = serializers.FloatField(source="charge_percentage", allow_null=True)
    chargeRate = serializers.FloatField(source="charge_rate_w", allow_null=True, help_text="W, + discharging")
    gridPower = serializers.FloatField(source="grid_power_w", allow_null=True, help_text="W, + importing")
    solarPower = serializers.FloatField(source="solar_power_w", allow_null=True, help_text="W")
    backupReserve = serializers.FloatField(source="backup_reserve_percent", allow_null=True)
    chargingState = serializers.CharField(source="charging_state")
    gridStatus = serializers.CharField(source="grid_status")
    strategy = serializers.CharField(allow_blank=True)
    isStormModeEnabled = serializers.BooleanField(source="is_storm_mode_enabled", allow_null=True)
    isStormModeActive = serializers.BooleanField(source="is_storm_mode_active", allow_null=True)
    isPluggedIn = serializers.BooleanField(source="is_plugged_in", allow_null=True)
    chargerWattage = serializers.FloatField(source="charger_wattage_w", allow_null=True)
    chargeLimit = serializers.FloatField(source="charge_limit_percent", allow_null=True)
    range = serializers.FloatField(source="range_km", allow_null=True, help_text="km")

    class Meta:
        model = TelemetryReading


class DeviceSerializer(TimestampedSerializer):
    """Reads the manufacturer, contact and latest reading from the selector's joins and tags from one
    prefetch: a page costs the same number of queries whatever its size."""

    id = serializers.IntegerField(read_only=True)
    systemIdentifier = serializers.CharField(source="system_identifier")
    manufacturerSlug = serializers.CharField(source="manufacturer.slug")
    deviceType = serializers.CharField(source="device_type")
    name = serializers.CharField(allow_blank=True)
    state = serializers.CharField()
    stateChangedAt = serializers.DateTimeField(source="state_changed_at")
    stateReason = serializers.CharField(source="state_reason", allow_blank=True)
    contactId = serializers.IntegerField(source="contact_id")
    referenceId = serializers.CharField(source="contact.reference_id")
    siteId = serializers.IntegerField(source="site_id")
    tags = serializers.SerializerMethodField()
    manufacturerDeviceId = serializers.CharField(source="oem_device_id", allow_blank=True)
    lastSeenAt = serializers.DateTimeField(source="last_seen_at", allow_null=True)
    gridServicesStatus = serializers.ChoiceField(
        source="grid_services_status",
        choices=GridServicesStatus.choices,
        help_text="The device's grid-services enrollment as its OEM's API last showed it (`unknown` until one does).",
    )
    gridServicesCheckedAt = serializers.DateTimeField(
        source="grid_services_checked_at", allow_null=True, help_text="When the OEM's API last showed it."
    )
    latestTelemetry = TelemetrySerializer(source="latest_telemetry", allow_null=True)

    class Meta:
        model = Device

    def get_tags(self, device) -> list[str]:
        return sorted(tag.name for tag in device.tags.all())


class AlertSerializer(TimestampedSerializer):
    """An alert in Texture's shape. Every field is a column of the alert itself (the device snapshot included),
    so a page costs the same number of queries whatever its size."""

    id = serializers.IntegerField(read_only=True)
    workspaceId = serializers.IntegerField(source="workspace_id")
    type = serializers.ChoiceField(choices=AlertType.choices)
    subtype = serializers.CharField(allow_blank=True, help_text="E.g. DEVICE_OFFLINE, COMMAND_FAILED.")
    severity = serializers.ChoiceField(choices=AlertSeverity.choices)
    status = serializers.ChoiceField(choices=AlertStatus.choices)
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    cause = serializers.CharField(help_text="What raised it; at most one alert per cause is not resolved.")
    subjectLabel = serializers.CharField(
        source="subject_label", allow_blank=True, help_text="What it is about when that is not a device or site."
    )
    subjectRef = serializers.CharField(
        source="subject_ref", allow_blank=True, help_text="That subject as `kind:id`, e.g. `dispatch_event:77`."
    )
    siteId = serializers.IntegerField(source="site_id", allow_null=True)
    deviceId = serializers.IntegerField(source="device_id", allow_null=True)
    manufacturerDeviceId = serializers.CharField(source="manufacturer_device_id", allow_blank=True)
    deviceName = serializers.CharField(source="device_name", allow_blank=True)
    deviceType = serializers.CharField(source="device_type", allow_blank=True)
    deviceModel = serializers.CharField(source="device_model", allow_blank=True)
    deviceSerialNumber = serializers.CharField(source="device_serial_number", allow_blank=True)
    manufacturer = serializers.CharField(allow_blank=True)
    sourceSystem = serializers.CharField(source="source_system")
    externalId = serializers.CharField(source="external_id", allow_blank=True)
    raiseCount = serializers.IntegerField(source="raise_count", help_text="Times its cause was raised while live.")
    lastSeenAt = serializers.DateTimeField(source="last_seen_at", help_text="When its cause was last raised.")
    acknowledgedAt = serializers.DateTimeField(source="acknowledged_at", allow_null=True)
    acknowledgedBy = serializers.CharField(source="acknowledged_by_label", allow_blank=True)
    ignoredAt = serializers.DateTimeField(source="ignored_at", allow_null=True)
    ignoredBy = serializers.CharField(source="ignored_by_label", allow_blank=True)
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)
    resolvedBy = serializers.CharField(
        source="resolved_by_label", allow_blank=True, help_text="`system` when the portal saw its cause clear."
    )
    snoozedUntil = serializers.DateTimeField(source="snoozed_until", allow_null=True)

    class Meta:
        model = Alert


class AlertStatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=AlertStatus.choices,
        help_text="OPEN → ACKNOWLEDGED | IGNORED | RESOLVED; ACKNOWLEDGED → IGNORED | RESOLVED; "
        "IGNORED → OPEN | RESOLVED. RESOLVED is final.",
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class AlertSnoozeSerializer(serializers.Serializer):
    until = serializers.DateTimeField(
        allow_null=True, help_text="End of the snooze (at most 30 days ahead); null ends a snooze now."
    )
