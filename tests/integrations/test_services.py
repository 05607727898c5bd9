"""Discovery, telemetry sync and offline detection through the services, against the simulator over HTTP."""

from datetime import timedelta

import pytest

from fleet.models import Device, DeviceStateChange, Manufacturer, TelemetryReading
from integrations import services
from integrations.choices import IntegrationStatus, RunStatus
from integrations.models import WorkspaceIntegration
from tests.factories import DeviceFactory, WorkspaceFactory
from texture_portal.events.models import PlatformEvent
from texture_portal.testing.simulator import demo_credentials

pytestmark = pytest.mark.django_db


def make_integration(workspace, channel, *, enabled=True):
    return services.workspace_integration_save(
        workspace=workspace, channel=channel, actor=None, enabled=enabled, credentials=demo_credentials(channel)
    )


def make_device(workspace, slug, serial, device_type="battery"):
    contact_ws = {"site__contact__workspace": workspace}
    return DeviceFactory(
        **contact_ws,
        manufacturer=Manufacturer.objects.get(slug=slug),
        system_identifier=serial,
        device_type=device_type,
    )


@pytest.fixture
def tesla_fleet(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    devices = []
    for i in range(4):
        serial = f"TG10000000010{i}"
        sim.state.add_device("tesla", serial, kind="battery", solar_peak_w=0.0)
        devices.append(make_device(workspace, "tesla", serial))
    stranger = make_device(workspace, "tesla", "TG199999999999")  # not on the account
    return workspace, integration, devices, stranger


def test_discovery_binds_found_devices_and_explains_the_rest(sim, tesla_fleet):
    workspace, integration, devices, stranger = tesla_fleet
    run = services.discovery_run(integration=integration)
    assert run.status == RunStatus.SUCCEEDED and run.devices_ok == 4 and run.devices_failed == 1
    assert run.http_requests == 2  # token + one /products listing for the whole account
    for device in devices:
        device.refresh_from_db()
        assert device.state == "on_workspace"
        assert device.oem_device_id == str(sim.state.device("tesla", device.system_identifier).number)
        assert device.oem_data["energy_site_id"] == int(device.oem_device_id)
        assert device.state_reason.startswith("Found at Tesla Fleet API")
    stranger.refresh_from_db()
    assert stranger.state == "registered" and "Not found at Tesla Fleet API" in stranger.state_reason
    discovered = PlatformEvent.objects.filter(workspace=workspace, type="device.discovered")
    assert discovered.count() == 4
    assert discovered.first().data["manufacturerDeviceId"] != ""
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.CONNECTED
    # the rotated refresh token was stored (encrypted), so the next job can still log in
    assert integration.credentials["refresh_token"] != demo_credentials("tesla")["refresh_token"]
    again = services.discovery_run(integration=integration)
    assert again.devices_total == 1 and again.devices_ok == 0  # only the one still registered is looked up


def test_discovery_with_rejected_credentials_marks_the_integration(sim, tesla_fleet):
    workspace, integration, devices, _ = tesla_fleet
    integration.credentials = {**integration.credentials, "refresh_token": "revoked"}
    integration.save(update_fields=["credentials"])
    from integrations.adapters import AuthError

    with pytest.raises(AuthError):
        services.discovery_run(integration=integration)
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ERROR and "login_required" in integration.last_error
    assert integration.runs.get().status == RunStatus.FAILED
    assert Device.objects.filter(state="registered").count() == 5


def test_device_of_an_oem_not_enabled_says_so(sim):
    workspace = WorkspaceFactory()
    make_integration(workspace, "franklinwh", enabled=False)
    device = make_device(workspace, "franklinwh", "1005000000000001")
    services.discovery_note_disabled()
    device.refresh_from_db()
    assert device.state == "registered"
    assert "FranklinWH integration is not enabled for this workspace" in device.state_reason


def sync(integration, **kwargs):
    return services.telemetry_sync(integration=integration, **kwargs)


def test_sync_writes_readings_updates_latest_and_is_idempotent(sim, tesla_fleet):
    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    outcome = sync(integration)
    assert outcome.run.status == RunStatus.SUCCEEDED and outcome.retry_device_ids == []
    assert TelemetryReading.objects.count() == 4
    now = sim.state.clock.now()
    for device in devices:
        device.refresh_from_db()
        assert device.last_seen_at == now
        reading = device.latest_telemetry
        simulated = sim.state.device("tesla", device.system_identifier)
        assert reading.measured_at == now
        assert reading.charge_rate_w == simulated.battery_w(now)
        assert reading.charge_percentage == pytest.approx(simulated.soc, abs=0.01)
    assert PlatformEvent.objects.filter(type="device.updated").count() == 4
    # same measurement time again: nothing duplicated, no new events
    sync(integration)
    assert TelemetryReading.objects.count() == 4
    assert PlatformEvent.objects.filter(type="device.updated").count() == 4
    sim.state.advance(300)
    sync(integration)
    assert TelemetryReading.objects.count() == 8
    assert PlatformEvent.objects.filter(type="device.updated").count() == 8


def test_dropped_connection_mid_sync_loses_and_duplicates_nothing(sim, tesla_fleet):
    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    victim = devices[2]
    sim.state.inject("tesla", victim.system_identifier, "drop")
    outcome = sync(integration)
    assert outcome.run.status == RunStatus.PARTIAL
    assert outcome.retry_device_ids == [victim.pk]
    assert TelemetryReading.objects.count() == 3
    # the retry re-reads only the failed device; a full re-run would not duplicate either
    sync(integration, device_ids=outcome.retry_device_ids, attempt=2)
    sync(integration)
    assert TelemetryReading.objects.count() == 4
    assert set(TelemetryReading.objects.values_list("device_id", flat=True)) == {d.pk for d in devices}


def test_rate_limit_stops_the_batch_and_keeps_what_was_read(sim, tesla_fleet, settings):
    workspace, integration, devices, _ = tesla_fleet
    settings.OEM_SYNC_CONCURRENCY = 1
    services.discovery_run(integration=integration)
    sim.state.inject("tesla", "demo", "rate_limit", retry_after=17)
    outcome = sync(integration)
    assert outcome.retry_after == 17
    assert outcome.run.status in (RunStatus.FAILED, RunStatus.PARTIAL)
    read = set(TelemetryReading.objects.values_list("device_id", flat=True))
    # every device is either read or queued for the retry, never both, never neither
    assert read.isdisjoint(outcome.retry_device_ids)
    assert read | set(outcome.retry_device_ids) == {d.pk for d in devices}
    assert len(outcome.retry_device_ids) >= 3
    sync(integration, device_ids=outcome.retry_device_ids, attempt=2)
    assert TelemetryReading.objects.count() == 4


def test_offline_after_cadence_times_grace_and_back_when_it_reports(sim, tesla_fleet, settings):
    settings.OEM_OFFLINE_GRACE_FACTOR = 3
    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    sync(integration)
    quiet = devices[0]
    sim.state.set_online("tesla", quiet.system_identifier, False)

    # one failed sync (a 503 for everyone) a cycle later is not an outage
    sim.state.advance(300)
    sim.state.inject("tesla", "demo", "server_error", times=None)
    sync(integration)
    sim.state.clear_faults()
    assert services.offline_sweep(now=sim.state.clock.now()) == []

    # 15 min (5 min × 3) without a reading from the quiet one: offline, with the OEM's own answer
    for _ in range(2):
        sim.state.advance(300)
        sync(integration)
    sim.state.advance(5)
    marked = services.offline_sweep(now=sim.state.clock.now())
    assert marked == [quiet.pk]
    quiet.refresh_from_db()
    assert quiet.state == "offline"
    assert "No telemetry since" in quiet.state_reason and "408" in quiet.state_reason
    assert PlatformEvent.objects.filter(type="device.disconnected", data__id=quiet.pk).count() == 1
    for other in devices[1:]:
        other.refresh_from_db()
        assert other.state == "on_workspace"

    sim.state.set_online("tesla", quiet.system_identifier, True)
    sim.state.advance(60)
    sync(integration)
    quiet.refresh_from_db()
    assert quiet.state == "on_workspace" and quiet.state_reason.startswith("Reporting again")
    assert PlatformEvent.objects.filter(type="device.connected", data__id=quiet.pk).count() == 1
    assert list(
        DeviceStateChange.objects.filter(device=quiet).order_by("changed_at", "id").values_list("to_state", flat=True)
    ) == ["on_workspace", "offline", "on_workspace"]


def test_test_connection_records_status_and_error(sim):
    workspace = WorkspaceFactory()
    sim.state.add_device("emporia", "A299999999", kind="charger")
    integration = make_integration(workspace, "emporia")
    assert services.integration_test_connection(integration=integration, actor=None).startswith("Connected: 1 device")
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.CONNECTED and integration.last_checked_at is not None
    services.workspace_integration_save(
        workspace=workspace, channel="emporia", actor=None, credentials={"username": "demo", "password": "nope"}
    )
    integration.refresh_from_db()
    outcome = services.integration_test_connection(integration=integration, actor=None)
    assert outcome.startswith("Connection failed") and "Incorrect username or password" in outcome
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ERROR and "Incorrect" in integration.last_error


@pytest.mark.parametrize(
    ("slug", "serial", "kind"),
    [
        ("franklinwh", "1005000077700001", "battery"),
        ("enphase", "EN7770000001", "battery"),
        ("emporia", "A277700001", "charger"),
        ("ford", "1FTVW1EL5NWG77701", "vehicle"),
        ("solaredge", "7E1477700001", "battery"),
        ("chargepoint", "1:770001", "charger"),
    ],
)
def test_discovery_and_sync_for_each_oem(sim, slug, serial, kind):
    workspace = WorkspaceFactory()
    channel = Manufacturer.objects.get(slug=slug).integration_channel
    integration = make_integration(workspace, channel)
    sim.state.add_device(channel, serial, kind=kind, charger_on=True, plugged_in=True, soc=50.0)
    device = make_device(workspace, slug, serial, device_type=kind)
    assert services.discovery_run(integration=integration).devices_ok == 1
    outcome = sync(integration)
    assert outcome.run.devices_ok == 1, outcome.run.errors
    device.refresh_from_db()
    assert device.state == "on_workspace" and device.latest_telemetry is not None
    if kind == "charger":
        assert device.latest_telemetry.charger_wattage_w == pytest.approx(32 * 240)
    elif kind == "vehicle":
        assert device.latest_telemetry.range_km is not None and device.latest_telemetry.charging_state == "charging"
    else:
        assert device.latest_telemetry.charge_percentage is not None


def test_stale_sweep_leaves_a_device_that_just_reported(sim, tesla_fleet):
    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    sync(integration)
    later = sim.state.clock.now() + timedelta(minutes=16)
    from fleet.services import device_mark_stale_offline

    device = Device.objects.get(pk=devices[0].pk)
    # the sweep looked while the device was stale, but a reading arrived before it took the lock
    assert device_mark_stale_offline(device=device, stale_since=later - timedelta(hours=1), reason="x") is False


# -- token refresh shared by concurrent jobs (rotating refresh tokens) -------------------------------------
@pytest.fixture
def tesla_token_calls(sim, monkeypatch):
    """Counts the refreshes Tesla's token endpoint receives (accepted or refused)."""
    from integrations.simulator import tesla as tesla_sim

    calls = []
    real_token = tesla_sim.token

    def token(state, request):
        calls.append(request.form().get("refresh_token"))
        return real_token(state, request)

    monkeypatch.setattr(tesla_sim, "token", token)
    return calls


def two_jobs(integration):
    """Two adapters as two worker processes build them: each from its own read of the stored credentials."""
    from integrations.adapters import adapter_for

    return [adapter_for(WorkspaceIntegration.objects.get(pk=integration.pk)) for _ in range(2)]


def site_ref(device):
    from integrations.adapters import DeviceRef

    device.refresh_from_db()
    return DeviceRef(serial=device.system_identifier, external_id=device.oem_device_id)


@pytest.mark.parametrize("stored_access", ["expired", "none"])
def test_two_jobs_needing_a_token_refresh_once_and_both_work(sim, tesla_fleet, tesla_token_calls, stored_access):
    from integrations.simulator.common import expire_tokens

    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)  # binds the sites; stores an access token
    if stored_access == "expired":
        expire_tokens(sim.state.account("tesla", "demo"))  # both jobs' first call answers 401
    else:
        stored = WorkspaceIntegration.objects.get(pk=integration.pk).credentials
        stored.pop("access_token")  # both jobs start with nothing but the refresh token
        WorkspaceIntegration.objects.filter(pk=integration.pk).update(credentials=stored)
    tesla_token_calls.clear()
    first, second = two_jobs(integration)
    site = site_ref(devices[0])
    assert first.fetch_telemetry(site).charge_percentage is not None
    # the second job still holds the refresh token the first one spent: it takes the stored tokens instead
    assert second.fetch_telemetry(site).charge_percentage is not None
    assert len(tesla_token_calls) == 1
    for job in (first, second):
        services.integration_credentials_persist(integration=integration, adapter=job)
    latest = sim.state.account("tesla", "demo").refresh_token
    assert WorkspaceIntegration.objects.get(pk=integration.pk).credentials["refresh_token"] == latest
    assert first.credentials["access_token"] == second.credentials["access_token"]


def test_a_taken_token_that_has_expired_too_is_refreshed_with_the_stored_refresh_token(
    sim, tesla_fleet, tesla_token_calls
):
    from integrations.simulator.common import expire_tokens

    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    account = sim.state.account("tesla", "demo")
    expire_tokens(account)
    first, second = two_jobs(integration)
    site = site_ref(devices[0])
    first.fetch_telemetry(site)  # refreshes and stores
    expire_tokens(account)  # hours later: the first job's token has expired as well
    assert second.fetch_telemetry(site).charge_percentage is not None  # 401, stored token 401, refresh
    assert len(tesla_token_calls) == 3  # discovery's, the first job's, the second job's: never a spent one
    assert sim.state.account("tesla", "demo").used_refresh_tokens >= set(tesla_token_calls)
    assert WorkspaceIntegration.objects.get(pk=integration.pk).credentials["refresh_token"] == account.refresh_token


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_jobs_on_postgresql_refresh_once(sim, reference_data, monkeypatch):
    """Two workers (threads, each with its own database connection) at once: the row lock serializes the
    refresh; the token endpoint is slowed so the second job's 401 arrives while the first is refreshing."""
    import threading
    import time

    from django.db import connection

    from integrations.simulator import tesla as tesla_sim
    from integrations.simulator.common import expire_tokens

    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    for i in range(3):
        sim.state.add_device("tesla", f"TG10000000020{i}", kind="battery")
        make_device(workspace, "tesla", f"TG10000000020{i}")
    services.discovery_run(integration=integration)
    account = sim.state.account("tesla", "demo")
    expire_tokens(account)
    calls, real_token = [], tesla_sim.token

    def slow_token(state, request):
        calls.append(request.form().get("refresh_token"))
        time.sleep(0.3)
        return real_token(state, request)

    monkeypatch.setattr(tesla_sim, "token", slow_token)
    barrier, outcomes = threading.Barrier(2), {}

    def job(name, run):
        try:
            barrier.wait()
            outcomes[name] = run(WorkspaceIntegration.objects.get(pk=integration.pk))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcomes[name] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=job, args=("sync", lambda i: services.telemetry_sync(integration=i).run)),
        threading.Thread(
            target=job, args=("test", lambda i: services.integration_test_connection(integration=i, actor=None))
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes["sync"].status == RunStatus.SUCCEEDED, outcomes
    assert outcomes["sync"].devices_ok == 3
    assert outcomes["test"].startswith("Connected"), outcomes
    assert len(calls) == 1
    integration.refresh_from_db()
    assert integration.credentials["refresh_token"] == account.refresh_token
    assert integration.status == IntegrationStatus.CONNECTED


def test_a_rate_limited_refresh_is_retried_and_leaves_the_integration_healthy(sim, tesla_fleet):
    from integrations.adapters import RateLimited

    workspace, integration, devices, _ = tesla_fleet
    sim.state.inject("tesla", "demo:token", "rate_limit", retry_after=17)
    with pytest.raises(RateLimited) as caught:  # the task retries it after Retry-After
        services.discovery_run(integration=integration)
    assert caught.value.retry_after == 17
    integration.refresh_from_db()
    assert integration.status != IntegrationStatus.ERROR
    assert integration.credentials["refresh_token"] == demo_credentials("tesla")["refresh_token"]
    assert services.discovery_run(integration=integration).devices_ok == 4


# -- credentials people change while a job runs --------------------------------------------------------------
def staff_edit(integration, **changes):
    """What the admin's "new credentials" does: the stored object replaced by one the person typed."""
    stored = WorkspaceIntegration.objects.get(pk=integration.pk).credentials
    services.workspace_integration_save(
        workspace=integration.workspace, channel=integration.channel, actor=None, credentials={**stored, **changes}
    )


def test_a_secret_staff_change_while_discovery_runs_survives_the_job(sim, tesla_fleet, monkeypatch):
    from integrations.tesla.adapter import TeslaAdapter

    workspace, integration, devices, _ = tesla_fleet
    real_discover = TeslaAdapter.discover

    def discover(self, serials=None):
        found = real_discover(self, serials)  # refreshed: the rotated tokens are in the adapter
        staff_edit(integration, client_secret="typed-by-staff")
        return found

    monkeypatch.setattr(TeslaAdapter, "discover", discover)
    assert services.discovery_run(integration=integration).devices_ok == 4
    stored = WorkspaceIntegration.objects.get(pk=integration.pk).credentials
    assert stored["client_secret"] == "typed-by-staff"
    assert stored["refresh_token"] == sim.state.account("tesla", "demo").refresh_token


def test_a_sign_in_token_is_stored_without_undoing_a_password_staff_changed_meanwhile(sim, monkeypatch):
    from integrations.emporia.adapter import EmporiaAdapter

    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "emporia")
    sim.state.add_device("emporia", "A277700009", kind="charger")
    make_device(workspace, "emporia", "A277700009", "charger")
    real_discover = EmporiaAdapter.discover
    signed_in = {}

    def discover(self, serials=None):
        found = real_discover(self, serials)
        signed_in["id_token"] = self.credentials["id_token"]  # to be stored when the job ends
        staff_edit(integration, password="typed-by-staff")
        return found

    monkeypatch.setattr(EmporiaAdapter, "discover", discover)
    assert services.discovery_run(integration=integration).devices_ok == 1
    stored = WorkspaceIntegration.objects.get(pk=integration.pk).credentials
    assert stored == {"username": "demo", "password": "typed-by-staff", "id_token": signed_in["id_token"]}


def test_a_token_staff_replaced_while_a_job_ran_is_not_overwritten_by_the_jobs(sim, tesla_fleet):
    from integrations.adapters import adapter_class

    workspace, integration, devices, _ = tesla_fleet
    # an adapter without a credentials store keeps what it refreshes for the end of the job
    job = adapter_class("tesla")(credentials=integration.credentials, base_url=f"{sim.url}/tesla", timeout=1.0)
    job.discover()
    assert job.credentials_changed
    staff_edit(integration, refresh_token="from-a-new-authorization")
    services.integration_credentials_persist(integration=integration, adapter=job)
    stored = WorkspaceIntegration.objects.get(pk=integration.pk).credentials
    assert stored["refresh_token"] == "from-a-new-authorization"
    assert stored["access_token"] == job.credentials["access_token"]  # nobody else changed that one
    assert not job.credentials_changed


# -- a device's last OEM error ----------------------------------------------------------------------------------
def test_a_successful_read_clears_the_devices_last_sync_error(sim, tesla_fleet):
    workspace, integration, devices, _ = tesla_fleet
    services.discovery_run(integration=integration)
    flaky, offline = devices[0], devices[1]
    sim.state.inject("tesla", flaky.system_identifier, "server_error", status=503)
    sim.state.set_online("tesla", offline.system_identifier, False)
    sync(integration)
    for device in (flaky, offline):
        device.refresh_from_db()
        assert "lastSyncError" in device.oem_data
    sim.state.advance(300)
    sync(integration)  # the 503 was once: the flaky device answers now; the offline one still does not
    flaky.refresh_from_db()
    offline.refresh_from_db()
    assert "lastSyncError" not in flaky.oem_data
    assert flaky.oem_data["energy_site_id"] == int(flaky.oem_device_id)  # the rest of oem_data is kept
    assert "408" in offline.oem_data["lastSyncError"]["message"]


# -- grid-services status: read by discovery and telemetry sync, stored on the device -------------------
@pytest.mark.parametrize(
    ("slug", "serial", "kind", "after_discovery", "after_sync"),
    [
        ("tesla", "TG100000007701", "battery", "unknown", "enrolled"),  # site_info, read by each sync
        ("franklinwh", "1005000077700001", "battery", "unknown", "unknown"),  # the app API shows nothing of it
        ("enphase", "EN7770000001", "battery", "unknown", "unknown"),  # only during an event (below)
        ("emporia", "A277700001", "charger", "unsupported", "unsupported"),
        ("ford", "1FTVW1EL5NWG77701", "vehicle", "unsupported", "unsupported"),
        ("solaredge", "7E1477700001", "battery", "unsupported", "unsupported"),
        ("chargepoint", "1:770001", "charger", "enrolled", "enrolled"),  # the account's own load shed
    ],
)
def test_discovery_and_sync_store_what_each_oem_shows_of_grid_services(
    sim, slug, serial, kind, after_discovery, after_sync
):
    workspace = WorkspaceFactory()
    channel = Manufacturer.objects.get(slug=slug).integration_channel
    integration = make_integration(workspace, channel)
    sim.state.add_device(channel, serial, kind=kind, grid_services="enrolled", plugged_in=True, soc=50.0)
    device = make_device(workspace, slug, serial, device_type=kind)
    assert services.discovery_run(integration=integration).devices_ok == 1
    device.refresh_from_db()
    assert device.grid_services_status == after_discovery
    assert (device.grid_services_checked_at is not None) == (after_discovery != "unknown")
    assert sync(integration).run.devices_ok == 1
    device.refresh_from_db()
    assert device.grid_services_status == after_sync
    assert (device.grid_services_checked_at is not None) == (after_sync != "unknown")


def test_sync_follows_teslas_enrollment_and_keeps_enphases_once_an_event_showed_it(sim, tesla_fleet):
    workspace, integration, devices, _ = tesla_fleet
    for device, enrollment in zip(devices, ["enrolled", "pending", "not_enrolled", "enrolled"], strict=True):
        sim.state.device("tesla", device.system_identifier).grid_services = enrollment
    services.discovery_run(integration=integration)
    sync(integration)
    statuses = dict(Device.objects.filter(pk__in=[d.pk for d in devices]).values_list("pk", "grid_services_status"))
    assert [statuses[d.pk] for d in devices] == ["enrolled", "not_enrolled", "not_enrolled", "enrolled"]
    # the OEM finishes testing the pending one: the next sync shows it
    sim.state.device("tesla", devices[1].system_identifier).grid_services = "enrolled"
    sim.state.advance(300)
    sync(integration)
    assert Device.objects.get(pk=devices[1].pk).grid_services_status == "enrolled"

    enphase = make_integration(workspace, "enphase")
    sim.state.add_device("enphase", "EN7770000009", kind="battery", grid_services="enrolled")
    system = make_device(workspace, "enphase", "EN7770000009")
    services.discovery_run(integration=enphase)
    sim.state.set_grid_services_event("enphase", "EN7770000009", True)
    sync(enphase)
    assert Device.objects.get(pk=system.pk).grid_services_status == "enrolled"
    # the event ends: the monitoring API cannot tell any more, so the device keeps what it showed
    sim.state.set_grid_services_event("enphase", "EN7770000009", False)
    sim.state.advance(900)
    sync(enphase)
    system.refresh_from_db()
    assert system.latest_telemetry.measured_at == sim.state.clock.now() and system.grid_services_status == "enrolled"
