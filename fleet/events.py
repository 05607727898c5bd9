"""The platform events the fleet owns (customer.*, site.*, device.*, alert.*) and the `data` each carries, in the API's
camelCase. Registered with the core events service in `FleetConfig.ready()`."""

from django.db import models

from texture_portal.events.envelope import iso


class FleetEventType(models.TextChoices):
    CUSTOMER_CREATED = "customer.created", "customer.created"
    CUSTOMER_UPDATED = "customer.updated", "customer.updated"
    SITE_CREATED = "site.created", "site.created"
    SITE_UPDATED = "site.updated", "site.updated"
    DEVICE_DISCOVERED = "device.discovered", "device.discovered"
    DEVICE_CONNECTED = "device.connected", "device.connected"
    DEVICE_DISCONNECTED = "device.disconnected", "device.disconnected"
    DEVICE_UPDATED = "device.updated", "device.updated"
    CUSTOMER_DELETED = "customer.deleted", "customer.deleted"
    SITE_DELETED = "site.deleted", "site.deleted"
    # Texture's ALERT_CREATED / ALERT_UPDATED: raised; then every change of status or snooze
    ALERT_CREATED = "alert.created", "alert.created"
    ALERT_UPDATED = "alert.updated", "alert.updated"


STATE_EVENT = {
    # (from, to) of a device state change → the event integrators get
    ("registered", "on_workspace"): FleetEventType.DEVICE_DISCOVERED,
    ("offline", "on_workspace"): FleetEventType.DEVICE_CONNECTED,
    ("on_workspace", "offline"): FleetEventType.DEVICE_DISCONNECTED,
}


def contact_data(contact) -> dict:
    return {
        "id": contact.pk,
        "workspaceId": contact.workspace_id,
        "referenceId": contact.reference_id,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "email": contact.email,
        "phone": contact.phone,
        "updatedAt": iso(contact.last_updated),
    }


def site_data(site) -> dict:
    return {
        "id": site.pk,
        "workspaceId": site.workspace_id,
        "contactId": site.contact_id,
        "siteName": site.site_name,
        "siteReferenceId": site.site_reference_id,
        "address": {
            "streetOne": site.street_one,
            "streetTwo": site.street_two,
            "city": site.city,
            "state": site.state,
            "postalCode": site.postal_code,
            "country": site.country,
        },
        "location": {"latitude": site.latitude, "longitude": site.longitude},
        "updatedAt": iso(site.last_updated),
    }


def device_data(device) -> dict:
    return {
        "id": device.pk,
        "workspaceId": device.workspace_id,
        "systemIdentifier": device.system_identifier,
        "manufacturerSlug": device.manufacturer.slug,
        "deviceType": device.device_type,
        "state": device.state,
        "stateReason": device.state_reason,
        "contactId": device.contact_id,
        "siteId": device.site_id,
        "manufacturerDeviceId": device.oem_device_id,
        "lastSeenAt": iso(device.last_seen_at),
    }


# a reading's columns → the API's names (fleet.api.serializers.TelemetrySerializer); the PostgreSQL ingest
# builds the same object in SQL from this table
TELEMETRY_KEYS = {
    "charge_percentage": "chargePercentage",
    "charge_rate_w": "chargeRate",
    "grid_power_w": "gridPower",
    "solar_power_w": "solarPower",
    "backup_reserve_percent": "backupReserve",
    "charging_state": "chargingState",
    "grid_status": "gridStatus",
    "strategy": "strategy",
    "is_storm_mode_enabled": "isStormModeEnabled",
    "is_storm_mode_active": "isStormModeActive",
    "is_plugged_in": "isPluggedIn",
    "charger_wattage_w": "chargerWattage",
    "charge_limit_percent": "chargeLimit",
    "range_km": "range",
}


def telemetry_data(reading, received_at=None) -> dict | None:
    """A normalized reading (a TelemetryReading, or an adapter's snapshot with `received_at` given) as the
    API's `latestTelemetry` shows it; None for no reading."""
    if reading is None:
        return None
    data = {
        "measuredAt": iso(reading.measured_at),
        "receivedAt": iso(received_at if received_at is not None else reading.received_at),
    }
    for column, key in TELEMETRY_KEYS.items():
        data[key] = getattr(reading, column)
    return data


def device_updated_data(device, reading=None, *, reading_id=None, received_at=None) -> dict:
    """`device.updated`: the device (`device_data`), its state, and its latest normalized reading, so a
    receiver needs no call back. `reading` defaults to the device's `latest_telemetry`."""
    if reading is None and reading_id is None:
        reading = device.latest_telemetry
        reading_id = device.latest_telemetry_id
    return {
        **device_data(device),
        "telemetryId": reading_id if reading_id is not None else getattr(reading, "pk", None),
        "latestTelemetry": telemetry_data(reading, received_at),
    }


def alert_data(alert, changes: dict | None = None) -> dict:
    """An alert as the API shows it (`fleet.api.serializers.AlertSerializer`); `alert.updated` adds what
    changed, {field: [old, new]}."""
    data = {
        "id": alert.pk,
        "workspaceId": alert.workspace_id,
        "type": alert.type,
        "subtype": alert.subtype,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "description": alert.description,
        "cause": alert.cause,
        "subjectLabel": alert.subject_label,
        "subjectRef": alert.subject_ref,
        "siteId": alert.site_id,
        "deviceId": alert.device_id,
        "manufacturerDeviceId": alert.manufacturer_device_id,
        "deviceName": alert.device_name,
        "deviceType": alert.device_type,
        "deviceModel": alert.device_model,
        "deviceSerialNumber": alert.device_serial_number,
        "manufacturer": alert.manufacturer,
        "sourceSystem": alert.source_system,
        "externalId": alert.external_id,
        "raiseCount": alert.raise_count,
        "lastSeenAt": iso(alert.last_seen_at),
        "acknowledgedAt": iso(alert.acknowledged_at),
        "acknowledgedBy": alert.acknowledged_by_label,
        "ignoredAt": iso(alert.ignored_at),
        "ignoredBy": alert.ignored_by_label,
        "resolvedAt": iso(alert.resolved_at),
        "resolvedBy": alert.resolved_by_label,
        "snoozedUntil": iso(alert.snoozed_until),
        "createdAt": iso(alert.created),
        "updatedAt": iso(alert.last_updated),
    }
    if changes is not None:
        data["changes"] = changes
    return data
