"""Review fixes (OEM limits): SolarEdge's daily quota (300 calls per API key and per site) and its 3 concurrent
calls per IP, Smartcar's paged `GET /vehicles`. Over real HTTP against the simulator, which enforces those limits
in the OEMs' own shapes."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from fleet.models import Device, TelemetryReading
from integrations import services
from integrations.adapters import CommandRejected
from integrations.choices import RunKind, RunStatus
from integrations.models import IntegrationRun
from integrations.simulator import solaredge as solaredge_sim
from tests.factories import WorkspaceFactory
from tests.integrations.conftest import adapter
from tests.integrations.test_services import make_device, make_integration

pytestmark = pytest.mark.django_db

KEY = "demo-solaredge-key"


def calls(sim, oem, path=None, method="GET") -> int:
    return sum(
        n
        for (o, m, p), n in sim.state.requests_by_path.items()
        if o == oem and (path is None or (m, p) == (method, path))
    )


def solaredge_fleet(sim, workspace, sites: dict[int, int]) -> list[Device]:
    """`sites`: {site id: batteries}; one portal device per battery."""
    devices = []
    for site, batteries in sites.items():
        for n in range(batteries):
            serial = f"7E14{site:04d}{n:04d}"
            sim.state.add_device("solaredge", serial, kind="battery", number=site * 10 + n, site_number=site)
            devices.append(make_device(workspace, "solaredge", serial))
    return devices


# -- the simulator enforces SolarEdge's limits and pages Smartcar's vehicles like they do ---------------
def test_simulated_solaredge_refuses_a_fourth_concurrent_call_and_a_site_past_its_quota(sim, monkeypatch):
    sim.state.add_device("solaredge", "7E1400000001", kind="battery", number=5)
    sim.state.latency["solaredge"] = 0.3
    url = f"{sim.url}/solaredge/sites/list"
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(
            pool.map(lambda _: requests.get(url, params={"api_key": KEY}, timeout=5).status_code, range(4))
        )
    assert statuses == [200, 200, 200, 429]
    sim.state.latency.clear()
    monkeypatch.setattr(solaredge_sim, "SITE_DAILY_QUOTA", 2)
    site = sim.state.device("solaredge", "7E1400000001").number
    answers = [
        requests.get(f"{sim.url}/solaredge/site/{site}/inventory", params={"api_key": KEY}, timeout=5) for _ in "abc"
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert sim.state.daily_count("solaredge", "key:demo") == 7  # every call counts against the key


def test_simulated_smartcar_pages_vehicles_like_smartcar(sim):
    for n in range(12):
        sim.state.add_device("smartcar", f"5YJ3E1EA0PF{n:06d}", kind="vehicle")
    smartcar = adapter(sim, "smartcar")
    first = smartcar.call("GET", "vehicles")
    assert len(first["vehicles"]) == 10 and first["paging"] == {"count": 12, "offset": 0}  # default limit 10
    rest = smartcar.call("GET", "vehicles", params={"limit": 50, "offset": 10})
    assert len(rest["vehicles"]) == 2 and rest["paging"] == {"count": 12, "offset": 10}
    assert set(first["vehicles"]).isdisjoint(rest["vehicles"])
    with pytest.raises(CommandRejected, match="VALIDATION"):
        smartcar.call("GET", "vehicles", params={"limit": 51})  # at most 50 a page


# -- Smartcar: every page of /vehicles, no VIN call for a linked vehicle ---------------------------------
def test_smartcar_discovery_reads_every_page_of_vehicles(sim):
    vins = [f"1FTVW1EL5NWG{n:05d}" for n in range(57)]  # more than a page of the most Smartcar returns (50)
    for vin in vins:
        sim.state.add_device("smartcar", vin, kind="vehicle")
    smartcar = adapter(sim, "smartcar")
    assert sorted(f.serial for f in smartcar.discover()) == vins
    assert calls(sim, "smartcar", "/v2.0/vehicles") == 2
    assert smartcar.test_connection() == "57 vehicle(s) authorized for this account"


def test_smartcar_discovery_spends_no_vin_call_on_a_linked_vehicle(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "smartcar")
    cars = [sim.state.add_device("smartcar", f"1FTVW1EL5NWG9000{n}", kind="vehicle") for n in range(3)]
    for car in cars[:2]:
        make_device(workspace, "ford", car.serial, device_type="vehicle")
    assert services.discovery_run(integration=integration).devices_ok == 2
    make_device(workspace, "ford", cars[2].serial, device_type="vehicle")
    run = services.discovery_run(integration=integration)
    assert run.devices_ok == 1
    for car in cars[:2]:  # linked by the first run: their VIN was read once, never again
        assert calls(sim, "smartcar", f"/v2.0/vehicles/veh-{car.number}/vin") == 1
    assert run.http_requests == 2  # the listing + the newcomer's VIN (the token is still valid)


# -- SolarEdge: per site, at most 3 at a time ------------------------------------------------------------
def test_solaredge_reads_each_site_once_whatever_its_number_of_batteries(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "solaredge")
    devices = solaredge_fleet(sim, workspace, {101: 3, 102: 1})
    assert services.discovery_run(integration=integration).devices_ok == 4
    outcome = services.telemetry_sync(integration=integration)
    assert outcome.run.status == RunStatus.SUCCEEDED and outcome.run.devices_ok == 4
    assert outcome.run.http_requests == 4  # storageData + currentPowerFlow per site, not per battery
    assert calls(sim, "solaredge", "/site/101/storageData") == 1
    assert calls(sim, "solaredge", "/site/101/currentPowerFlow") == 1
    for device in devices:
        simulated = sim.state.device("solaredge", device.system_identifier)
        reading = TelemetryReading.objects.get(device=device)
        assert reading.charge_percentage == pytest.approx(simulated.soc, abs=0.1)  # each battery its own SoC


def test_solaredge_sync_never_has_more_than_three_calls_in_flight(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "solaredge")
    solaredge_fleet(sim, workspace, dict.fromkeys(range(201, 209), 1))
    services.discovery_run(integration=integration)
    sim.state.latency["solaredge"] = 0.05  # answers take a while, so concurrent calls really overlap
    sim.state.max_in_flight.clear()
    outcome = services.telemetry_sync(integration=integration)
    assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.message  # no 429 for a 4th concurrent call
    assert outcome.run.devices_ok == 8 and outcome.run.http_requests == 16
    assert sim.state.max_in_flight["solaredge"] <= 3


def test_solaredge_connection_test_costs_one_call(sim):
    for site in range(601, 611):
        sim.state.add_device("solaredge", f"7E14{site}0000", kind="battery", number=site)
    solaredge = adapter(sim, "solaredge")
    assert solaredge.test_connection() == "10 site(s) visible to this API key"
    assert solaredge.requests_made == 1


# -- SolarEdge: a day of beats stays within the quota --------------------------------------------------
def test_solaredge_day_of_beats_stays_within_the_daily_quota_and_keeps_devices_online(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "solaredge")
    devices = solaredge_fleet(sim, workspace, {301: 2, 302: 1, 303: 1, 304: 1, 305: 1, 306: 1})  # 6 sites
    clock = sim.state.clock
    assert services.discovery_run(integration=integration, now=clock.now()).devices_ok == 7
    days: dict[str, int] = {}
    for _ in range(26 * 4):  # the 15-minute beat for 26 hours
        now = clock.now()
        outcome = services.telemetry_sync(integration=integration, now=now)
        assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.message
        assert services.offline_sweep(now=now) == []  # paced syncs are not an outage
        days[now.date().isoformat()] = sim.state.daily_count("solaredge", "key:demo")
        clock.advance(15 * 60)
    assert max(days.values()) <= 300  # and the simulator refused nothing (every run succeeded)
    reads = IntegrationRun.objects.filter(kind=RunKind.TELEMETRY, http_requests__gt=0).order_by("started_at")
    # 12 calls a sync, 270 a day for telemetry: every 64 min, rounded up to whole beats = every 75 min
    starts = list(reads.values_list("started_at", flat=True))
    assert {b - a for a, b in zip(starts, starts[1:], strict=False)} == {timedelta(minutes=75)}
    assert len(starts) == 21 and set(reads.values_list("http_requests", flat=True)) == {12}
    skipped = IntegrationRun.objects.filter(kind=RunKind.TELEMETRY, http_requests=0).first()
    assert skipped.message.startswith("Skipped: SolarEdge Monitoring API's quota of 300 calls a day per API key")
    assert "6 site(s) (12 calls) every 75 min; next due" in skipped.message
    assert all(TelemetryReading.objects.filter(device=d).count() == 21 for d in devices)


def test_solaredge_sync_skips_while_discovery_has_spent_the_budget(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "solaredge")
    solaredge_fleet(sim, workspace, {401: 1})
    now = sim.state.clock.now()
    services.discovery_run(integration=integration, now=now)
    IntegrationRun.objects.filter(kind=RunKind.DISCOVERY).update(http_requests=269)  # e.g. many re-checks
    outcome = services.telemetry_sync(integration=integration, now=now + timedelta(minutes=15))
    assert outcome.run.http_requests == 0 and "269 calls were made in the last 24 h" in outcome.run.message
    # once they are older than 24 h, the sync runs
    outcome = services.telemetry_sync(integration=integration, now=now + timedelta(hours=24, minutes=15))
    assert outcome.run.http_requests == 2 and outcome.run.devices_ok == 1


# -- SolarEdge: discovery backs off serials it did not find --------------------------------------------
def test_solaredge_missing_serial_not_looked_up_again_before_its_back_off(sim):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "solaredge")
    for site in (501, 502, 503):
        sim.state.add_device("solaredge", f"7E14{site}0000", kind="battery", number=site)
    found = make_device(workspace, "solaredge", "7E145010000")
    missing = make_device(workspace, "solaredge", "7E14NOTTHERE")
    start = sim.state.clock.now()
    first = services.discovery_run(integration=integration, now=start)
    assert (first.devices_ok, first.devices_failed, first.http_requests) == (1, 1, 4)  # list + 3 inventories

    # the next beats: nothing to look up, so no job; "discover now" spends no call either
    before = calls(sim, "solaredge")
    assert services.discovery_is_due(integration=integration, now=start + timedelta(minutes=15)) is False
    skipped = services.discovery_run(integration=integration, now=start + timedelta(hours=1))
    assert skipped.http_requests == 0 and skipped.message.startswith("Skipped: every registered serial")
    assert calls(sim, "solaredge") == before
    missing.refresh_from_db()
    assert missing.state == "registered" and "Looked up again after a back-off" in missing.state_reason

    # a newly registered battery is looked up at once, on the sites not linked yet first, and alone
    newcomer = make_device(workspace, "solaredge", "7E145020000")
    assert services.discovery_is_due(integration=integration, now=start + timedelta(hours=2)) is True
    run = services.discovery_run(integration=integration, now=start + timedelta(hours=2))
    assert (run.devices_total, run.devices_ok, run.http_requests) == (1, 1, 2)  # list + site 502's inventory
    newcomer.refresh_from_db()
    assert newcomer.state == "on_workspace"

    # after the back-off (6 h) the missing serial is looked up again; the next back-off is twice as long
    assert services.discovery_is_due(integration=integration, now=start + timedelta(hours=6)) is True
    again = services.discovery_run(integration=integration, now=start + timedelta(hours=6))
    assert again.devices_total == 1 and again.http_requests == 4
    assert services.discovery_is_due(integration=integration, now=start + timedelta(hours=17)) is False
    assert services.discovery_is_due(integration=integration, now=start + timedelta(hours=18)) is True
    # a corrected serial is a new one: looked up at once
    Device.objects.filter(pk=missing.pk).update(system_identifier="7E145030000")
    assert services.discovery_is_due(integration=integration, now=start + timedelta(hours=7)) is True
    found.refresh_from_db()
    assert found.state == "on_workspace"
