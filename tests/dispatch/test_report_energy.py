"""An event's report measures the energy the simulator's batteries really moved.

The portal's clock (time-machine) and the simulator's move together minute by minute: telemetry is read over
HTTP every minute, beat's tick runs the engine (commands sent over HTTP, tasks in-process), the event ends,
restores and completes, its report is compiled when it completes — and each battery's energy in the report is
within 5 % of the simulator's own account of it over the event (`/_sim/energy`), for the battery and at the
meter."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from dispatch import engine
from dispatch.choices import DispatchEventStatus
from dispatch.models import DispatchEvent, EventReport, EventReportDevice
from dispatch.services import dispatch_event_create, dispatch_event_schedule
from fleet.models import TelemetryRollup
from integrations import services
from integrations.simulator import SimClock, SimState, SimulatorServer, add_accounts
from integrations.simulator.state import GRID_SERVICES_ENROLLED
from programs.choices import ProgramPhase
from programs.models import Program
from programs.services import enrollment_submit, event_strategy_create_version
from tests.factories import WorkspaceFactory, make_program
from tests.integrations.test_services import make_device, make_integration

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 7, 15, 20, 0, tzinfo=UTC)  # 13:00 in Oregon, a Wednesday
BATTERIES = {"TG100000000901": 92.0, "TG100000000902": 75.0}


def history(device, *, before: datetime, days: int = 12):
    """Rollups of the days before (an idle battery, a steady home): the baseline the report measures against."""
    rows = []
    at = before - timedelta(days=days)
    while at < before - timedelta(hours=6):
        rows.append(
            TelemetryRollup(
                workspace_id=device.workspace_id,
                device=device,
                interval_start=at,
                samples=3,
                charge_rate_w=0.0,
                grid_power_w=900.0,
            )
        )
        at += timedelta(minutes=15)
    TelemetryRollup.objects.bulk_create(rows, batch_size=2000)


def test_the_reports_energy_is_what_the_simulators_batteries_moved(settings, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from integrations.ratelimit import rate_limiter

    cache.clear()  # the report's "queued" mark of an earlier test's event with the same id
    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    settings.DISPATCH_CONFIRM_WINDOW_MINUTES = 10
    with time_machine.travel(T0, tick=False) as traveller:
        state = SimState(clock=SimClock(frozen_at=T0))
        add_accounts(state)
        for serial, soc in BATTERIES.items():
            state.add_device(
                "tesla",
                serial,
                kind="battery",
                soc=soc,
                reserve=10.0,
                solar_peak_w=0.0,
                grid_services=GRID_SERVICES_ENROLLED,
            )
        with SimulatorServer(state) as server:
            settings.OEM_BASE_URLS = server.base_urls()
            workspace = WorkspaceFactory()
            program = make_program(workspace, timezone="America/Los_Angeles")
            event_strategy_create_version(
                program=program,
                data={
                    "allowed_event_types": ["discharge"],
                    "ramp_minutes": 0,
                    "min_soc_percent": 15,
                    "baseline_adjustment": "none",
                    "enable_grid_interaction": True,  # discharging into the grid: the meter sees the export
                },
                actor=None,
            )
            Program.objects.filter(pk=program.pk).update(phase=ProgramPhase.TESTING)
            devices = [make_device(workspace, "tesla", serial) for serial in BATTERIES]
            for device in devices:
                enrollment_submit(device=device, program=program, actor=None)
                history(device, before=T0)
            integration = make_integration(workspace, "tesla")
            services.discovery_run(integration=integration)
            starts, ends = T0 + timedelta(minutes=15), T0 + timedelta(minutes=75)
            event = dispatch_event_create(
                program=program,
                name="Afternoon discharge",
                starts_at=starts,
                ends_at=ends,
                actor=None,
                actions=[{"action_type": "discharge", "starts_at": starts, "ends_at": ends}],
            )
            dispatch_event_schedule(event=event, actor=None)

            accounts = {}
            now = T0
            while now < T0 + timedelta(hours=2):
                if now in (starts, ends):
                    accounts[now] = {serial: state.energy("tesla", serial) for serial in BATTERIES}
                services.telemetry_sync(integration=integration)
                with django_capture_on_commit_callbacks(execute=True):
                    engine.dispatch_tick(now=now)
                if DispatchEvent.objects.filter(pk=event.pk, status=DispatchEventStatus.COMPLETED).exists():
                    break
                now += timedelta(minutes=1)
                traveller.move_to(now)
                state.clock.advance(60)

    event.refresh_from_db()
    assert event.status == DispatchEventStatus.COMPLETED and event.completed_end_to_end, event.status_reason
    report = EventReport.objects.get(event=event)
    rows = {row.device.system_identifier: row for row in EventReportDevice.objects.filter(report=report)}
    for serial in BATTERIES:
        before, after = accounts[starts][serial], accounts[ends][serial]
        battery_kwh = (
            after["batteryOutWh"] - before["batteryOutWh"] - after["batteryInWh"] + before["batteryInWh"]
        ) / 1000
        grid_kwh = (
            after["gridImportWh"] - before["gridImportWh"] - after["gridExportWh"] + before["gridExportWh"]
        ) / 1000
        row = rows[serial]
        assert battery_kwh > 1.0 and grid_kwh < 0, (serial, battery_kwh, grid_kwh)  # discharged, exported
        assert row.battery_coverage == 1.0 and row.battery_no_baseline == ""
        assert row.battery_actual_kwh == pytest.approx(battery_kwh, rel=0.05), (serial, row.battery_actual_kwh)
        assert row.net_actual_kwh == pytest.approx(grid_kwh, rel=0.05, abs=0.05), (serial, row.net_actual_kwh)
        # against an idle baseline, what it delivered is what it moved
        assert row.battery_delivered_kwh == pytest.approx(battery_kwh, rel=0.05)
