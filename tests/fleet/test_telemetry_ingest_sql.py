"""The PostgreSQL ingest builds device.updated events in SQL: the same keys and payloads as the portable path."""

from datetime import UTC, datetime

import pytest

from fleet import services
from fleet.events import device_updated_data
from fleet.models import Device
from integrations.adapters.base import TelemetrySnapshot
from tests.factories import DeviceFactory
from texture_portal.events.models import PlatformEvent

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.mark.parametrize(
    "measured_at",
    [datetime(2026, 11, 22, 4, 5, 0, tzinfo=UTC), datetime(2026, 11, 22, 4, 5, 0, 250, tzinfo=UTC)],
    ids=["whole-second", "microseconds"],
)
def test_device_updated_events_match_the_portable_format(measured_at):
    device = DeviceFactory(state="on_workspace")
    snapshot = TelemetrySnapshot(measured_at=measured_at, charge_percentage=42.0)
    result = services.telemetry_ingest(workspace_id=device.workspace_id, readings=[(device.pk, snapshot)])
    assert (result.readings_written, result.devices_updated) == (1, 1)

    device.refresh_from_db()
    event = PlatformEvent.objects.get(type="device.updated")
    iso = measured_at.isoformat().replace("+00:00", "Z")
    assert event.key == f"device.updated:{device.pk}:{iso}"
    portable = device_updated_data(Device.objects.select_related("manufacturer", "latest_telemetry").get(pk=device.pk))
    assert event.data == portable
    assert event.data["state"] == "on_workspace" and event.data["telemetryId"] == device.latest_telemetry_id
    assert event.data["latestTelemetry"]["chargePercentage"] == 42.0
    assert event.data["latestTelemetry"]["measuredAt"] == iso
    assert device.last_seen_at == measured_at and event.data["lastSeenAt"] == iso


def test_an_older_or_repeated_reading_moves_nothing_and_announces_nothing():
    device = DeviceFactory(state="on_workspace")
    new = TelemetrySnapshot(measured_at=datetime(2026, 11, 22, 5, 0, tzinfo=UTC), charge_percentage=50.0)
    old = TelemetrySnapshot(measured_at=datetime(2026, 11, 22, 4, 0, tzinfo=UTC), charge_percentage=40.0)
    services.telemetry_ingest(workspace_id=device.workspace_id, readings=[(device.pk, new)])
    again = services.telemetry_ingest(workspace_id=device.workspace_id, readings=[(device.pk, new), (device.pk, old)])
    assert (again.readings_written, again.devices_updated) == (1, 0)  # the old one is stored, the device stays
    assert PlatformEvent.objects.filter(type="device.updated").count() == 1
    assert Device.objects.get(pk=device.pk).last_seen_at == new.measured_at


@pytest.mark.parametrize("backend", ["postgresql", "portable"])
def test_readings_for_another_workspaces_device_are_not_stored(backend, monkeypatch):
    mine, theirs = DeviceFactory(state="on_workspace"), DeviceFactory(state="on_workspace")
    assert mine.workspace_id != theirs.workspace_id
    if backend == "portable":
        monkeypatch.setattr(services.connection, "vendor", "sqlite")
    snapshot = TelemetrySnapshot(measured_at=datetime(2026, 11, 22, 6, 0, tzinfo=UTC), charge_percentage=60.0)
    result = services.telemetry_ingest(
        workspace_id=mine.workspace_id, readings=[(mine.pk, snapshot), (theirs.pk, snapshot)]
    )
    assert (result.readings_written, result.devices_updated) == (1, 1)
    assert not theirs.telemetry.exists() and Device.objects.get(pk=theirs.pk).last_seen_at is None
