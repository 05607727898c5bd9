"""Telemetry history: the simulator's deterministic daily model, each OEM's history endpoint read through its
adapter over real HTTP (paging, window limits), and the backfill (idempotent, gaps filled, rollups refreshed)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine

from fleet import services as fleet_services
from fleet.models import TelemetryReading, TelemetryRollup
from integrations import services
from integrations.adapters import DeviceRef, TelemetrySnapshot, adapter_class
from integrations.adapters.base import day_starts
from integrations.choices import RunKind, RunStatus
from integrations.models import IntegrationRun
from integrations.simulator import SimState
from integrations.simulator.model import SITE_TZ
from integrations.simulator.state import SimClock
from tests.factories import WorkspaceFactory
from tests.integrations.conftest import adapter
from tests.integrations.test_services import make_device, make_integration

# 01:00 UTC on a Wednesday (Tuesday 18:00 in the simulated homes' UTC−07:00)
NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def frozen_state(seed=7) -> SimState:
    return SimState(clock=SimClock(frozen_at=NOW), seed=seed)


def local_day(days_ago: int) -> datetime:
    """Midnight in the simulated homes' local time, `days_ago` local days before NOW."""
    return (NOW.astimezone(SITE_TZ) - timedelta(days=days_ago)).replace(hour=0, minute=0)


# -- the daily model -----------------------------------------------------------------------------------------
def test_same_seed_same_past_and_another_seed_another():
    def past(seed):
        state = frozen_state(seed)
        device = state.add_device("tesla", "TG-MODEL-1", kind="battery", solar_peak_w=6_500.0)
        return [
            (p.at, p.soc, p.battery_w, p.load_w, p.solar_w, p.grid_w)
            for p in state.history(device, NOW - timedelta(days=3), NOW)
        ]

    first, again, other = past(7), past(7), past(8)
    assert len(first) == 3 * 288
    assert first == again
    assert [p[3] for p in first] != [p[3] for p in other]  # another seed: another home's load


def test_a_weekday_evening_outdraws_its_midday_and_the_sun_sets_at_night():
    state = frozen_state()
    device = state.add_device("tesla", "TG-MODEL-2", kind="battery", solar_peak_w=6_500.0)
    monday = local_day(1)  # NOW is a Tuesday evening locally: the day before is Monday
    assert monday.weekday() == 0
    points = {
        p.at.astimezone(SITE_TZ).strftime("%H:%M"): p for p in state.history(device, monday, monday + timedelta(days=1))
    }
    evening = sum(points[f"{h}:00"].load_w for h in (18, 19, 20)) / 3
    midday = sum(points[f"{h}:00"].load_w for h in (12, 13, 14)) / 3
    assert evening > 1.5 * midday
    assert all(points[f"{h:02d}:00"].solar_w == 0.0 for h in (0, 2, 4, 21, 23))
    assert points["13:00"].solar_w > 0.5 * device.solar_peak_w * 0.55
    # the weekend is another day: its midday load is above the weekday's
    sunday = local_day(2)
    assert sunday.weekday() == 6
    sunday_points = {
        p.at.astimezone(SITE_TZ).strftime("%H:%M"): p for p in state.history(device, sunday, sunday + timedelta(days=1))
    }
    assert sum(sunday_points[f"{h}:00"].load_w for h in (12, 13, 14)) / 3 > midday


def test_every_point_balances_and_the_battery_keeps_within_its_bounds():
    state = frozen_state()
    device = state.add_device("franklinwh", "1005-MODEL-3", kind="battery", solar_peak_w=8_000.0, reserve=20.0)
    points = state.history(device, NOW - timedelta(days=7), NOW)
    assert len(points) == 7 * 288
    for point in points:
        assert point.load_w == pytest.approx(point.grid_w + point.solar_w + point.battery_w, abs=0.2)
        assert 0.0 <= point.soc <= 100.0
        assert abs(point.battery_w) <= device.max_power_w
        if point.soc < device.reserve:
            assert point.battery_w <= 0  # never discharges below its reserve
    # its own cycle: it charges from the sun by day and serves the evening
    assert any(p.battery_w < -500 and p.solar_w > 0 for p in points)
    assert any(p.battery_w > 500 and p.solar_w == 0 for p in points)


def test_a_device_left_alone_carries_on_from_its_modelled_past():
    state = frozen_state()
    device = state.add_device("tesla", "TG-MODEL-4", kind="battery", solar_peak_w=6_500.0)
    assert device.soc == pytest.approx(device.modelled_soc_at(NOW), abs=0.05)  # live starts where its past ends
    state.advance(6 * 3600)
    live = state.history(device, NOW, NOW + timedelta(hours=6))
    assert len(live) == 72  # recorded every 5 minutes while online
    for point in live:
        assert point.load_w == device.load_w(point.at) and point.solar_w == device.solar_w(point.at)
        assert point.load_w == pytest.approx(point.grid_w + point.solar_w + point.battery_w, abs=0.2)


@pytest.mark.parametrize("serial", ["TG-ALONE-1", "TG-ALONE-2", "TG-ALONE-3"])
def test_a_device_that_does_nothing_delivers_about_nothing_against_a_baseline_from_its_past(serial):
    """An evening (17:00–21:00 local) left alone, against the mean of the same hours on its 10 weekdays before."""
    start = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)  # Wednesday 17:00 local
    state = SimState(clock=SimClock(frozen_at=start))
    device = state.add_device("tesla", serial, kind="battery", solar_peak_w=6_500.0)
    days = [start - timedelta(days=k) for k in range(1, 15)]
    weekdays = [day for day in days if day.astimezone(SITE_TZ).weekday() < 5][:10]

    def mean_w(points):
        return sum(p.battery_w for p in points) / len(points)

    baseline = sum(mean_w(state.history(device, day, day + timedelta(hours=4))) for day in weekdays) / 10
    state.advance(4 * 3600)
    actual = mean_w(state.history(device, start, start + timedelta(hours=4)))
    assert baseline > 300  # the battery serves its evenings
    assert abs(actual - baseline) < 0.1 * baseline  # delivered ≈ 0


def test_an_ev_charger_charges_in_the_evening_most_days():
    state = frozen_state()
    charger = state.add_device("emporia", "EMP-MODEL-5", kind="charger", charging_rate_a=32.0)
    points = state.history(charger, NOW - timedelta(days=14), NOW)
    charging = [p for p in points if p.charger_w > 0]
    assert charging and all(p.charger_w == 32.0 * 240 for p in charging)
    hours = {p.at.astimezone(SITE_TZ).hour for p in charging}
    assert hours <= {17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5}
    days = {p.at.astimezone(SITE_TZ).date() for p in charging if p.at.astimezone(SITE_TZ).hour >= 17}
    assert 6 <= len(days) <= 14


# -- each OEM's history endpoint through its adapter ------------------------------------------------------------
def discovered_ref(client, serial) -> DeviceRef:
    found = {d.serial: d for d in client.discover([serial])}[serial]
    return DeviceRef(serial=serial, external_id=found.external_id, oem_data=found.oem_data)


def calls(sim, oem, fragment) -> int:
    return sum(n for (o, _m, path), n in sim.state.requests_by_path.items() if o == oem and fragment in path)


@pytest.mark.parametrize(
    ("oem", "kind", "serial", "per_day", "endpoint", "calls_for_3_days"),
    [
        ("tesla", "battery", "TG-HIST-1", 96, "calendar_history", 2 * 4),  # power + soc per local day touched
        ("enphase", "battery", "ENV-HIST-1", 96, "telemetry/battery", 1),  # a week per answer
        ("franklinwh", "battery", "1005-HIST-1", 288, "getFhpPowerByDay", 4),  # a gateway-local day per call
        ("solaredge", "battery", "7E-HIST-1", 288, "storageData", 1),  # a week per call
        ("emporia", "charger", "EMP-HIST-1", 96, "getChartUsage", 3),  # a day per call (query string: counted below)
    ],
)
def test_each_oems_history_through_its_adapter(sim, oem, kind, serial, per_day, endpoint, calls_for_3_days):
    device = sim.state.add_device(oem, serial, kind=kind, solar_peak_w=6_500.0)
    client = adapter(sim, oem)
    ref = discovered_ref(client, serial)
    now = sim.state.clock.now()
    # whole 15-minute intervals at both ends: an interval cut by the window would count part of its energy
    end = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    start = end - timedelta(days=3)
    before = client.requests_made
    history = client.telemetry_history([ref], start, end)[serial]
    assert isinstance(history, list)
    assert len(history) == pytest.approx(3 * per_day, abs=per_day / 24 + 1)
    assert all(isinstance(s, TelemetrySnapshot) and start <= s.measured_at < end for s in history)
    assert [s.measured_at for s in history] == sorted({s.measured_at for s in history})
    http = client.requests_made - before
    if oem in ("tesla", "franklinwh"):
        # per local day of the site (Los Angeles): 4 days touched, or 3 when the window ends on a local midnight
        calls_for_3_days = calls_for_3_days // 4 * len(day_starts(start, end, ZoneInfo("America/Los_Angeles")))
    assert http == calls_for_3_days
    if oem != "emporia":
        assert calls(sim, oem, endpoint) == calls_for_3_days
    truth = {p.at: p for p in sim.state.history(device, start, end)}
    if oem == "emporia":
        energy = sum(s.charger_wattage_w for s in history) / 4  # Wh over 15-minute intervals
        assert energy == pytest.approx(sum(p.charger_w for p in truth.values()) / 12, rel=0.02)
        return
    if oem == "enphase":
        # 15-minute energy in and out (whole Wh), as the interval's mean power measured at its start: the same
        # energy as the interval's three 5-minute points
        for snapshot in history:
            points = [truth[snapshot.measured_at + timedelta(minutes=m)] for m in (0, 5, 10)]
            assert snapshot.charge_rate_w == pytest.approx(sum(p.battery_w for p in points) / 3, abs=4 * 2)
            assert snapshot.charge_percentage == round(points[-1].soc)
        return
    for snapshot in history[:: max(1, len(history) // 20)]:
        point = truth[snapshot.measured_at]
        assert snapshot.charge_rate_w == pytest.approx(point.battery_w, abs=1.0)
        assert snapshot.charge_percentage == pytest.approx(point.soc, abs=0.6)
        if oem in ("tesla", "franklinwh"):
            assert snapshot.grid_power_w == pytest.approx(point.grid_w, abs=2.0)
            assert snapshot.solar_power_w == pytest.approx(point.solar_w, abs=2.0)


def test_enphase_pages_a_week_at_a_time_and_keeps_to_two_years(sim):
    sim.state.add_device("enphase", "ENV-HIST-2", kind="battery")
    client = adapter(sim, "enphase")
    ref = discovered_ref(client, "ENV-HIST-2")
    now = sim.state.clock.now()
    history = client.telemetry_history([ref], now - timedelta(days=15), now)["ENV-HIST-2"]
    assert calls(sim, "enphase", "telemetry/battery") == 3  # 7 + 7 days, then the day up to now
    assert len(history) == pytest.approx(15 * 96, abs=2)
    # the API's own limits: one answer holds at most a day's 96 intervals at day granularity, and a start more
    # than two years back is refused
    client.refresh_tokens()
    headers = {"Authorization": f"Bearer {client.credentials['access_token']}", "key": client.credentials["api_key"]}
    url = f"{sim.url}/enphase/api/v4/systems/{ref.external_id}/telemetry/battery"
    day = requests.get(
        url,
        params={"start_at": int((now - timedelta(days=5)).timestamp()), "granularity": "day"},
        headers=headers,
        timeout=5,
    )
    assert day.status_code == 200 and 95 <= len(day.json()["intervals"]) <= 96
    old = requests.get(
        url, params={"start_at": int((now - timedelta(days=800)).timestamp())}, headers=headers, timeout=5
    )
    assert old.status_code == 422


def test_solaredge_reads_a_week_per_call_and_refuses_more(sim):
    sim.state.add_device("solaredge", "7E-HIST-2", kind="battery", site_number=9001)
    sim.state.add_device("solaredge", "7E-HIST-3", kind="battery", site_number=9001)
    client = adapter(sim, "solaredge")
    refs = [discovered_ref(client, serial) for serial in ("7E-HIST-2", "7E-HIST-3")]
    now = sim.state.clock.now()
    before = calls(sim, "solaredge", "storageData")
    history = client.telemetry_history(refs, now - timedelta(days=14), now)
    assert calls(sim, "solaredge", "storageData") - before == 2  # two weeks, one site: two calls for both batteries
    assert {serial: len(snaps) for serial, snaps in history.items()} == {"7E-HIST-2": 14 * 288, "7E-HIST-3": 14 * 288}
    local = "%Y-%m-%d %H:%M:%S"
    too_long = requests.get(
        f"{sim.url}/solaredge/site/9001/storageData",
        params={
            "api_key": client.credentials["api_key"],
            "startTime": (now - timedelta(days=8)).strftime(local),
            "endTime": now.strftime(local),
        },
        timeout=5,
    )
    assert too_long.status_code == 403


@pytest.mark.parametrize("oem", ["chargepoint", "smartcar"])
def test_oems_without_a_history_api_say_so_and_return_nothing(sim, oem):
    cls = adapter_class(oem)
    assert cls.history_supported is False and "history" in cls.history_note
    client = adapter(sim, oem)
    now = sim.state.clock.now()
    assert client.telemetry_history([DeviceRef(serial="X", external_id="1")], now - timedelta(days=1), now) == {}
    assert client.requests_made == 0


# -- the backfill -------------------------------------------------------------------------------------------------
@pytest.fixture
def tesla_history(sim, db):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    devices = []
    for i in range(3):
        serial = f"TG-BACKFILL-{i}"
        sim.state.add_device("tesla", serial, kind="battery", solar_peak_w=6_500.0)
        devices.append(make_device(workspace, "tesla", serial))
    services.discovery_run(integration=integration)  # in the test's transaction: its on-commit backfill waits
    return integration, devices


def counts(devices):
    ids = [d.pk for d in devices]
    return (
        TelemetryReading.objects.filter(device_id__in=ids).count(),
        TelemetryRollup.objects.filter(device_id__in=ids).count(),
    )


def test_backfill_reads_the_history_refreshes_the_rollups_and_running_it_again_changes_nothing(
    sim, tesla_history, settings
):
    settings.TELEMETRY_HISTORY_DAYS = 3
    integration, devices = tesla_history
    run = services.telemetry_history_backfill(integration=integration)
    assert run.kind == RunKind.HISTORY and run.status == RunStatus.SUCCEEDED, run.errors
    assert run.devices_ok == 3 and run.readings_written > 3 * 3 * 96
    readings, rollups = counts(devices)
    assert readings == run.readings_written
    assert rollups >= 3 * 3 * 96  # three whole UTC days and today's part, 96 intervals a day each
    rollup = TelemetryRollup.objects.filter(device=devices[0]).order_by("interval_start")[10]
    assert rollup.charge_rate_w is not None and rollup.charge_percentage is not None and rollup.samples == 1
    calls_made = sim.state.request_count
    again = services.telemetry_history_backfill(integration=integration)
    assert again.status == RunStatus.SUCCEEDED and again.http_requests == 0 and "No gaps" in again.message
    assert sim.state.request_count == calls_made
    assert counts(devices) == (readings, rollups)
    # asked again for the same days anyway (another process that did not see the rollups): the same rows
    twice = services.telemetry_history_backfill(
        integration=integration, since=timezone_now() - timedelta(days=5), until=timezone_now() - timedelta(days=3)
    )
    assert twice.readings_written > 0
    now_readings, _ = counts(devices)
    assert (
        TelemetryReading.objects.filter(device__in=devices).values("device", "measured_at").distinct().count()
        == now_readings
    )


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def test_backfill_fills_only_the_gap(sim, tesla_history, settings):
    settings.TELEMETRY_HISTORY_DAYS = 4
    integration, devices = tesla_history
    services.telemetry_history_backfill(integration=integration)
    full = counts(devices)
    # one device loses a day (readings and rollups), as if a sync had been down
    day = (timezone_now() - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    lost = {"device": devices[1], "measured_at__gte": day, "measured_at__lt": day + timedelta(days=1)}
    assert TelemetryReading.objects.filter(**lost).delete()[0] > 0
    TelemetryRollup.objects.filter(
        device=devices[1], interval_start__gte=day, interval_start__lt=day + timedelta(days=1)
    ).delete()
    gaps = services.telemetry_history_gaps(
        device_ids=[d.pk for d in devices], since=timezone_now() - timedelta(days=4), until=timezone_now()
    )
    assert gaps == {(day, day + timedelta(days=1)): [devices[1].pk]}
    run = services.telemetry_history_backfill(integration=integration)
    assert run.devices_total == 3 and run.devices_ok == 1
    assert run.http_requests <= 2 * 2 + 1  # power + soc for the (at most two) local days that UTC day touches
    assert counts(devices) == full


def test_old_readings_never_move_a_device_back(sim, tesla_history, settings):
    settings.TELEMETRY_HISTORY_DAYS = 2
    integration, devices = tesla_history
    services.telemetry_sync(integration=integration)  # the latest reading, now
    device = devices[0]
    device.refresh_from_db()
    seen, latest = device.last_seen_at, device.latest_telemetry_id
    assert seen is not None
    services.telemetry_history_backfill(integration=integration)
    device.refresh_from_db()
    assert device.last_seen_at == seen and device.latest_telemetry_id == latest
    assert TelemetryReading.objects.filter(device=device, measured_at__lt=seen).count() > 2 * 96


def test_a_backfill_under_way_makes_a_second_step_aside(sim, tesla_history):
    integration, devices = tesla_history
    IntegrationRun.objects.create(
        workspace_id=integration.workspace_id, integration=integration, kind=RunKind.HISTORY, started_at=timezone_now()
    )
    run = services.telemetry_history_backfill(integration=integration)
    assert run.status == RunStatus.SUCCEEDED and run.message.startswith("Skipped: the history backfill")
    assert run.http_requests == 0 and counts(devices) == (0, 0)


def test_an_oem_without_history_is_skipped_with_its_reason(sim, db):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "smartcar")
    run = services.telemetry_history_backfill(integration=integration)
    assert run.status == RunStatus.SUCCEEDED and run.http_requests == 0


def test_discovery_queues_the_backfill_of_the_devices_it_binds(sim, db, settings, django_capture_on_commit_callbacks):
    settings.TELEMETRY_HISTORY_DAYS = 1
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "enphase")
    sim.state.add_device("enphase", "ENV-DISCOVER-1", kind="battery")
    device = make_device(workspace, "enphase", "ENV-DISCOVER-1")
    with django_capture_on_commit_callbacks(execute=True):
        services.discovery_run(integration=integration)
    history = integration.runs.filter(kind=RunKind.HISTORY).get()
    assert history.status == RunStatus.SUCCEEDED and history.devices_ok == 1
    assert TelemetryRollup.objects.filter(device=device).count() >= 96


def test_the_hourly_job_queues_only_oems_with_history(sim, db, settings):
    from integrations.tasks import telemetry_history_all_task

    settings.TELEMETRY_HISTORY_DAYS = 1
    workspace = WorkspaceFactory()
    make_integration(workspace, "tesla")
    make_integration(workspace, "smartcar")
    assert telemetry_history_all_task.apply().get() == 1
    assert list(IntegrationRun.objects.filter(kind=RunKind.HISTORY).values_list("integration__channel", flat=True)) == [
        "tesla"
    ]


def test_ingest_of_history_keeps_readings_unique(sim, tesla_history):
    integration, devices = tesla_history
    at = timezone_now().replace(microsecond=0) - timedelta(days=1)
    snapshot = TelemetrySnapshot(measured_at=at, charge_rate_w=100.0)
    first = fleet_services.telemetry_ingest(workspace_id=integration.workspace_id, readings=[(devices[0].pk, snapshot)])
    second = fleet_services.telemetry_ingest(
        workspace_id=integration.workspace_id, readings=[(devices[0].pk, snapshot)]
    )
    assert (first.readings_written, second.readings_written) == (1, 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_backfills_at_once_write_each_reading_once(sim, settings, reference_data):
    """Two workers start the same backfill together: the integration's row lock orders them, the second sees the
    first's run under way and steps aside; each reading is written once."""
    import threading

    from django.db import connections

    settings.TELEMETRY_HISTORY_DAYS = 2
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    devices = []
    for i in range(2):
        serial = f"TG-TWICE-{i}"
        sim.state.add_device("tesla", serial, kind="battery", solar_peak_w=6_500.0)
        devices.append(make_device(workspace, "tesla", serial))
    services.discovery_run(integration=integration)
    IntegrationRun.objects.filter(kind=RunKind.HISTORY).delete()  # the backfill discovery queued: not this test's
    TelemetryReading.objects.all().delete()
    TelemetryRollup.objects.all().delete()
    barrier, runs = threading.Barrier(2), []

    def backfill():
        try:
            barrier.wait()
            runs.append(services.telemetry_history_backfill(integration=integration))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=backfill) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(runs) == 2 and all(run.status == RunStatus.SUCCEEDED for run in runs)
    # one read the OEM; the other stepped aside (or, had it come after the first finished, found no gaps)
    assert sorted(run.readings_written > 0 for run in runs) == [False, True]
    assert sorted(run.http_requests > 0 for run in runs) == [False, True]
    ids = [d.pk for d in devices]
    readings = TelemetryReading.objects.filter(device_id__in=ids)
    assert readings.count() == readings.values("device", "measured_at").distinct().count() > 2 * 2 * 96
    assert TelemetryRollup.objects.filter(device_id__in=ids).count() >= 2 * 2 * 96


@pytest.fixture
def late_winter_evening():
    # 07:58 UTC in December is 23:58 at a Pacific site (UTC−8): its calendar day, not the daily model's fixed
    # UTC−7 one, must hold the UTC day's last hour
    with time_machine.travel(datetime(2026, 12, 5, 7, 58, 40, tzinfo=UTC), tick=True):
        yield


def test_a_backfill_just_before_the_sites_midnight_leaves_no_gap(late_winter_evening, sim, tesla_history, settings):
    settings.TELEMETRY_HISTORY_DAYS = 2
    integration, devices = tesla_history
    services.telemetry_history_backfill(integration=integration)
    now = timezone_now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert TelemetryRollup.objects.filter(device=devices[0], interval_start__gte=today).count() == 32  # 00:00–07:45
    assert services.telemetry_history_gaps(device_ids=[d.pk for d in devices], since=today, until=now) == {}
