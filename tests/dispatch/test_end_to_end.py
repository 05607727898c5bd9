"""A test event that runs itself: a real Celery worker and beat on Redis, PostgreSQL, the OEM simulator over
HTTP. Nobody touches the event after scheduling it: beat's tick starts it, the worker commands a battery, a
charger and a vehicle through their OEMs (a 429 and a dropped connection on the way, retried), their
telemetry confirms them, the end restores them, the event completes, and the program's testing phase exit
is met."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.choices import DispatchEventStatus
from dispatch.models import Command, DispatchEvent, EventReport, Participation
from dispatch.services import dispatch_event_create, dispatch_event_schedule
from fleet.models import Device
from integrations import services
from integrations.simulator import SimClock, SimState, SimulatorServer, add_accounts
from programs.choices import ProgramPhase
from programs.models import Program
from programs.selectors import program_phase_exit_blockers
from programs.services import enrollment_submit, event_strategy_create_version
from tests.factories import WorkspaceFactory, make_program
from tests.integrations.test_services import make_device, make_integration
from texture_portal.testing.celery_worker import celery_beat, celery_worker  # noqa: F401 - fixtures

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

BATTERY, CHARGER, VEHICLE = "TG100000000888", "EM0000000888", "1FTVW1EL7NWG00888"


@pytest.fixture
def celery_env():
    # a fast clock for the test: beat ticks every second, event devices are read every 2 s
    return {
        "DISPATCH_TICK_SECONDS": "1",
        "DISPATCH_EVENT_TELEMETRY_SECONDS": "2",
        "DISPATCH_CONFIRM_WINDOW_MINUTES": "2",
    }


@pytest.fixture
def fast_sim(settings):
    """The simulator with a clock that runs 30 times faster than real time (each OEM reports a new minute
    every two seconds), advanced by a thread."""
    from integrations.ratelimit import rate_limiter

    rate_limiter.cache_clear()
    settings.OEM_HTTP_TIMEOUT_SECONDS = 2.0
    frozen = timezone.now().replace(second=0, microsecond=0)
    state = SimState(clock=SimClock(frozen_at=frozen))
    add_accounts(state)
    stop = threading.Event()

    def run_clock():
        while not stop.wait(1.0):
            state.advance(30)

    with SimulatorServer(state) as server:
        settings.OEM_BASE_URLS = server.base_urls()
        clock = threading.Thread(target=run_clock, daemon=True)
        clock.start()
        try:
            yield server
        finally:
            stop.set()
            clock.join(timeout=5)


def sim_modes(state):
    battery = state.device("tesla", BATTERY)
    return (
        (battery.mode, battery.reserve),
        state.device("emporia", CHARGER).charger_on,
        state.device("smartcar", VEHICLE).charger_on,
    )


@pytest.fixture
def fleet(fast_sim, reference_data):
    state = fast_sim.state
    state.add_device("tesla", BATTERY, kind="battery", soc=80.0, reserve=30.0, solar_peak_w=0.0)
    state.add_device("emporia", CHARGER, kind="charger", charger_on=True, plugged_in=True)
    state.add_device("smartcar", VEHICLE, kind="vehicle", charger_on=True, plugged_in=True, soc=40.0)
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    event_strategy_create_version(
        program=program, data={"allowed_event_types": ["charge", "discharge", "idle"], "ramp_minutes": 0}, actor=None
    )
    Program.objects.filter(pk=program.pk).update(phase=ProgramPhase.TESTING)
    devices = [
        make_device(workspace, "tesla", BATTERY),
        make_device(workspace, "emporia", CHARGER, device_type="charger"),
        make_device(workspace, "ford", VEHICLE, device_type="vehicle"),
    ]
    for device in devices:
        enrollment_submit(device=device, program=program, actor=None)
    for channel in ("tesla", "emporia", "smartcar"):
        integration = make_integration(workspace, channel)
        services.discovery_run(integration=integration)
        services.telemetry_sync(integration=integration)
    assert Device.objects.filter(state="on_workspace", latest_telemetry__isnull=False).count() == 3
    return program, devices


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_test_event_runs_start_to_finish_without_intervention(fast_sim, fleet, celery_worker, celery_beat):  # noqa: F811
    program, devices = fleet
    state = fast_sim.state
    before = sim_modes(state)
    assert before == (("self_consumption", 30.0), True, True)
    start = timezone.now() + timedelta(seconds=4)
    event = dispatch_event_create(
        program=program,
        name="Testing phase: evening discharge",
        starts_at=start,
        ends_at=start + timedelta(seconds=40),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(seconds=40)}],
    )
    dispatch_event_schedule(event=event, actor=None)
    # mid-event trouble: Tesla's next answer is a 429, Emporia's connection drops once
    state.inject("tesla", BATTERY, "rate_limit", retry_after=1)
    state.inject("emporia", "demo", "drop")

    commanded = celery_worker.wait_for(
        lambda: Participation.objects.filter(event=event, commanded_at__isnull=False).count() == 3,
        timeout=60,
        what="the three devices commanded",
    )
    assert commanded
    during = sim_modes(state)
    assert during == (("autonomous", 20.0), False, False)  # exporting down to the floor; charging stopped
    celery_worker.wait_for(
        lambda: Participation.objects.filter(event=event, confirmed_at__isnull=False).count() == 3,
        timeout=60,
        what="telemetry to confirm the three devices",
    )
    celery_worker.wait_for(
        lambda: DispatchEvent.objects.filter(pk=event.pk, status=DispatchEventStatus.COMPLETED).exists(),
        timeout=90,
        what="the event to end, restore and complete",
    )
    event.refresh_from_db()
    assert event.completed_end_to_end, event.status_reason
    assert sim_modes(state) == before  # every device back in the mode it had
    assert not state.faults.get(("tesla", BATTERY)) and not state.faults.get(("emporia", "demo"))  # both were hit
    retried = Command.objects.filter(dispatch_event=event, attempts__gte=2)
    assert retried.exists() or "429" in celery_worker.log(), celery_worker.log()[-3000:]
    assert set(Participation.objects.filter(event=event).values_list("status", flat=True)) == {"restored"}
    assert Command.objects.filter(dispatch_event=event, status="success").count() == 6
    # the report is compiled by the worker once the event completed; the testing phase's exit needs it
    celery_worker.wait_for(
        lambda: EventReport.objects.filter(event=event).exists(), timeout=60, what="the event's report compiled"
    )
    report = EventReport.objects.get(event=event)
    assert report.counts["targeted"] == 3 and report.counts["restored"] == 3
    program.refresh_from_db()
    assert program.test_event_passed_id == event.pk
    assert program_phase_exit_blockers(program=program) == []
