"""`device.updated` carries the device, its state and its latest normalized reading (a receiver needs no call
back), whichever path announces it: telemetry ingest (set-based), a service change, an import."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fleet import services
from fleet.events import device_updated_data
from fleet.models import Device
from integrations.adapters.base import TelemetrySnapshot
from tests.factories import DeviceFactory, SiteFactory, TelemetryReadingFactory, WorkspaceFactory
from texture_portal.events.models import PlatformEvent

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 22, 4, 5, tzinfo=UTC)


def updated_events(workspace):
    return list(PlatformEvent.objects.filter(workspace=workspace, type="device.updated").order_by("id"))


def test_ingest_announces_the_device_and_its_new_reading():
    device = DeviceFactory(state="on_workspace", name="Garage")
    snapshot = TelemetrySnapshot(measured_at=AT, charge_percentage=71.5, charge_rate_w=-1500.0, grid_status="importing")
    services.telemetry_ingest(workspace_id=device.workspace_id, readings=[(device.pk, snapshot)])
    (event,) = updated_events(device.workspace)
    stored = Device.objects.select_related("manufacturer", "latest_telemetry").get(pk=device.pk)
    assert event.data == device_updated_data(stored)
    data = event.data
    assert (data["id"], data["state"], data["manufacturerSlug"], data["systemIdentifier"]) == (
        device.pk,
        "on_workspace",
        "tesla",
        device.system_identifier,
    )
    assert data["telemetryId"] == stored.latest_telemetry_id and data["lastSeenAt"] == "2026-11-22T04:05:00Z"
    telemetry = data["latestTelemetry"]
    assert telemetry["measuredAt"] == "2026-11-22T04:05:00Z" and telemetry["chargePercentage"] == 71.5
    assert telemetry["chargeRate"] == -1500.0 and telemetry["gridStatus"] == "importing"
    assert set(telemetry) == {
        "measuredAt",
        "receivedAt",
        "chargePercentage",
        "chargeRate",
        "gridPower",
        "solarPower",
        "backupReserve",
        "chargingState",
        "gridStatus",
        "strategy",
        "isStormModeEnabled",
        "isStormModeActive",
        "isPluggedIn",
        "chargerWattage",
        "chargeLimit",
        "range",
    }  # the API's latestTelemetry


def test_the_newest_reading_of_a_batch_is_the_one_announced():
    device = DeviceFactory(state="on_workspace")
    readings = [
        (device.pk, TelemetrySnapshot(measured_at=AT + timedelta(minutes=m), charge_percentage=m)) for m in (5, 0)
    ]
    services.telemetry_ingest(workspace_id=device.workspace_id, readings=readings)
    (event,) = updated_events(device.workspace)
    assert event.data["latestTelemetry"]["chargePercentage"] == 5.0


def ingest_queries(count: int) -> int:
    workspace = WorkspaceFactory()
    site = SiteFactory(contact__workspace=workspace)
    devices = [DeviceFactory(site=site, state="on_workspace") for _ in range(count)]
    readings = [(d.pk, TelemetrySnapshot(measured_at=AT, charge_percentage=50.0)) for d in devices]
    with CaptureQueriesContext(connection) as queries:
        result = services.telemetry_ingest(workspace_id=workspace.pk, readings=readings)
    assert result.devices_updated == count and len(updated_events(workspace)) == count
    return len(queries)


def test_ingest_builds_the_events_without_a_query_per_device():
    assert ingest_queries(2) == ingest_queries(25)


def test_a_service_change_announces_the_latest_reading_too():
    device = DeviceFactory(state="on_workspace")
    reading = TelemetryReadingFactory(device=device, charge_percentage=33.0)
    Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
    device.refresh_from_db()
    services.device_update(device=device, data={"name": "Shed"}, actor=None)
    (event,) = updated_events(device.workspace)
    assert event.data["telemetryId"] == reading.pk and event.data["latestTelemetry"]["chargePercentage"] == 33.0
    assert event.data["state"] == "on_workspace"


def test_a_device_without_readings_announces_none():
    device = DeviceFactory()
    services.device_update(device=device, data={"name": "Shed"}, actor=None)
    (event,) = updated_events(device.workspace)
    assert event.data["telemetryId"] is None and event.data["latestTelemetry"] is None
