"""Reads of the fleet used by telemetry jobs and the device page."""

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Device, TelemetryReading


def device_telemetry_series(*, device: Device, since: datetime | None = None) -> QuerySet[TelemetryReading]:
    """The device's readings since `since` (default: the last day), oldest first, for the chart."""
    since = since or timezone.now() - timedelta(days=1)
    return (
        TelemetryReading.objects.filter(workspace_id=device.workspace_id, device=device, measured_at__gte=since)
        .order_by("measured_at")
        .only("measured_at", "charge_percentage", "charge_rate_w", "grid_power_w", "solar_power_w", "charger_wattage_w")
    )


def devices_stale(*, channel: str, stale_since: datetime) -> QuerySet[Device]:
    """Devices on the workspace, of one OEM channel, with no reading since `stale_since`."""
    from django.db.models import Q

    return Device.objects.filter(state=DeviceState.ON_WORKSPACE, manufacturer__integration_channel=channel).filter(
        Q(last_seen_at__lt=stale_since) | Q(last_seen_at__isnull=True, state_changed_at__lt=stale_since)
    )
