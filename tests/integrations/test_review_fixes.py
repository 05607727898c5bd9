"""Review fixes: rotated tokens kept when a call fails, telemetry runs always finished, overlapping discovery
runs, and OEM waits longer than a task may be held."""

import pytest

from fleet.models import Device, DeviceStateChange, TelemetryReading
from fleet.services import device_mark_discovered
from integrations import services
from integrations.adapters import CommandRejected, IntegrationError, NotFound
from integrations.choices import IntegrationStatus, RunStatus
from integrations.emporia.adapter import EmporiaAdapter
from integrations.models import IntegrationRun
from integrations.tesla.adapter import TeslaAdapter
from tests.factories import WorkspaceFactory
from tests.integrations.test_services import make_device, make_integration, tesla_fleet  # noqa: F401 - fixture
from texture_portal.events.models import PlatformEvent
from texture_portal.testing.simulator import demo_credentials

pytestmark = pytest.mark.django_db


# -- 1. refreshed tokens are stored even when the call after the refresh fails ----------------------------
def test_failed_connection_test_keeps_the_rotated_refresh_token(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    sim.state.inject("tesla", "demo", "server_error", status=503)  # the token refresh works, /products fails
    outcome = services.integration_test_connection(integration=integration, actor=None)
    assert outcome.startswith("Connection failed") and "503" in outcome
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ERROR
    # the old refresh token was spent by the refresh: only the stored new one can log in again
    assert integration.credentials["refresh_token"] != demo_credentials("tesla")["refresh_token"]
    assert services.integration_test_connection(integration=integration, actor=None).startswith("Connected")


def test_discovery_failing_with_a_malformed_answer_keeps_the_token_and_finishes_the_run(
    sim,
    tesla_fleet,  # noqa: F811
    monkeypatch,
):
    workspace, integration, devices, _ = tesla_fleet
    real_discover = TeslaAdapter.discover

    def discover(self, serials=None):
        real_discover(self, serials)  # refreshes (and so spends) the refresh token
        raise ValueError("unexpected product shape")

    monkeypatch.setattr(TeslaAdapter, "discover", discover)
    with pytest.raises(ValueError):
        services.discovery_run(integration=integration)
    run = integration.runs.get()
    assert run.status == RunStatus.FAILED and "ValueError: unexpected product shape" in run.message
    integration.refresh_from_db()
    assert integration.credentials["refresh_token"] != demo_credentials("tesla")["refresh_token"]
    monkeypatch.setattr(TeslaAdapter, "discover", real_discover)
    assert services.discovery_run(integration=integration).devices_ok == 4  # the next run can still log in


# -- 2. telemetry sync always ingests what it read and finishes its run -----------------------------------
def test_sync_records_a_malformed_answer_as_that_devices_failure(sim, tesla_fleet, monkeypatch):  # noqa: F811
    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    broken = devices[1].system_identifier
    real_fetch = TeslaAdapter.fetch_telemetry

    def fetch_telemetry(self, device):
        if device.serial == broken:
            raise KeyError("battery_level")
        return real_fetch(self, device)

    monkeypatch.setattr(TeslaAdapter, "fetch_telemetry", fetch_telemetry)
    outcome = services.telemetry_sync(integration=integration)
    run = outcome.run
    assert run.status == RunStatus.PARTIAL and run.finished_at is not None
    assert run.devices_ok == 3 and run.devices_failed == 1
    assert any(error.startswith(f"{broken}: ") and "KeyError" in error for error in run.errors)
    assert outcome.retry_device_ids == []  # not transient: the next beat reads it again
    # the readings of the other devices were stored
    assert set(TelemetryReading.objects.values_list("device_id", flat=True)) == {
        d.pk for d in devices if d.system_identifier != broken
    }


@pytest.mark.parametrize(
    "error",
    [
        NotFound("Emporia 404 customer not found", status=404),
        CommandRejected("Emporia 400 bad gids", status=400),
        IntegrationError("Emporia 418", status=418),
        ValueError("unexpected body"),
    ],
    ids=["not-found", "rejected", "integration-error", "malformed"],
)
def test_a_batch_call_refused_finishes_the_run(sim, monkeypatch, error):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "emporia")
    sim.state.add_device("emporia", "A277700001", kind="charger", charger_on=True, plugged_in=True)
    make_device(workspace, "emporia", "A277700001", "charger")
    assert services.discovery_run(integration=integration).devices_ok == 1

    def fetch_telemetry_many(self, devices):
        raise error

    monkeypatch.setattr(EmporiaAdapter, "fetch_telemetry_many", fetch_telemetry_many)
    outcome = services.telemetry_sync(integration=integration)
    run = IntegrationRun.objects.get(kind="telemetry")
    assert run.pk == outcome.run.pk
    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert "stopped:" in run.message and str(error) in run.errors[0]
    assert outcome.retry_device_ids == []  # not transient: left to the next beat


# -- 3. overlapping discovery runs --------------------------------------------------------------------------
def test_marking_a_device_discovered_twice_is_a_no_op(sim, tesla_fleet):  # noqa: F811
    workspace, integration, devices, _ = tesla_fleet
    stale = Device.objects.get(pk=devices[0].pk)  # loaded by a second run while still registered
    device_mark_discovered(device=devices[0], oem_device_id="111", oem_data={"a": 1}, reason="Found (111).")
    returned = device_mark_discovered(device=stale, oem_device_id="222", oem_data={"b": 2}, reason="Found (222).")
    assert returned.state == "on_workspace"
    device = Device.objects.get(pk=devices[0].pk)
    assert device.oem_device_id == "111" and device.oem_data == {"a": 1} and device.state_reason == "Found (111)."
    assert DeviceStateChange.objects.filter(device=device, to_state="on_workspace").count() == 1
    assert PlatformEvent.objects.filter(type="device.discovered").count() == 1


def test_a_discovery_run_overlapping_another_finishes(sim, tesla_fleet, monkeypatch):  # noqa: F811
    workspace, integration, devices, _ = tesla_fleet
    real_discover = TeslaAdapter.discover

    def discover(self, serials=None):
        found = real_discover(self, serials)
        # meanwhile another run ("discover now", a redelivered task) binds every device first
        for match in found:
            device = Device.objects.filter(workspace=workspace, system_identifier=match.serial).first()
            if device is not None:
                device_mark_discovered(device=device, oem_device_id=match.external_id, oem_data={}, reason="Other.")
        return found

    monkeypatch.setattr(TeslaAdapter, "discover", discover)
    run = services.discovery_run(integration=integration)
    assert run.status == RunStatus.SUCCEEDED and run.finished_at is not None
    for device in devices:
        assert DeviceStateChange.objects.filter(device=device, to_state="on_workspace").count() == 1
    assert PlatformEvent.objects.filter(type="device.discovered").count() == 4


# -- 4. an OEM asking to wait longer than a task may be held -------------------------------------------
@pytest.fixture
def retries_allowed(monkeypatch):
    """As on a worker (eager mode never retries)."""
    from integrations import tasks

    monkeypatch.setattr(tasks, "_can_retry", lambda task: True)


def test_sync_not_retried_when_the_oem_asks_to_wait_past_the_cap(sim, tesla_fleet, retries_allowed):  # noqa: F811
    from integrations.tasks import telemetry_sync_task

    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    sim.state.inject("tesla", "demo", "rate_limit", retry_after=3600)
    telemetry_sync_task.apply(args=[integration.pk, [d.pk for d in devices]])
    run = IntegrationRun.objects.get(kind="telemetry")  # no retry ran
    assert run.status in (RunStatus.FAILED, RunStatus.PARTIAL) and "429" in run.message
    assert "not retried: the OEM asks to wait 60 min" in run.message
    assert TelemetryReading.objects.count() < 4


def test_discovery_not_retried_when_the_oem_asks_to_wait_past_the_cap(sim, tesla_fleet, retries_allowed):  # noqa: F811
    from integrations.tasks import discovery_run_task

    workspace, integration, devices, _ = tesla_fleet
    sim.state.inject("tesla", "demo", "rate_limit", retry_after=3600)
    result = discovery_run_task.apply(args=[integration.pk]).get()
    assert result.startswith("failed:") and "not retried" in result
    run = IntegrationRun.objects.get(kind="discovery")  # no retry ran
    assert run.status == RunStatus.FAILED and "not retried: the OEM asks to wait 60 min" in run.message
    assert Device.objects.filter(state="on_workspace").count() == 0
