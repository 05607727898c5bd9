"""Fleet API bodies (camelCase). Read-only: contacts, sites and devices are written by import and sync."""

from rest_framework import serializers

from fleet.choices import GridServicesStatus
from fleet.models import Contact, Device, TelemetryReading
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
