"""A test event on a small mixed fleet (battery, charger, vehicle) run by the engine against the OEM simulator
over real HTTP, tasks in-process: the devices really change mode, their telemetry confirms it, and they are
back in their old mode afterwards."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch import engine
from dispatch.choices import DispatchEventStatus, ParticipationStatus
from dispatch.models import Command, DispatchEvent, Participation
from dispatch.services import dispatch_event_create
from integrations import services
from programs.services import enrollment_submit, event_strategy_create_version
from tests.factories import WorkspaceFactory, make_program
from tests.integrations.conftest import sim  # noqa: F401 - fixture
from tests.integrations.test_services import make_device, make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_fleet(sim):  # noqa: F811
    workspace = WorkspaceFactory()
    program = make_program(workspace, program_type="battery")
    event_strategy_create_version(
        program=program, data={"allowed_event_types": ["charge", "discharge", "idle"], "ramp_minutes": 0}, actor=None
    )
    sim.state.add_device("tesla", "TG100000000777", kind="battery", soc=70.0, reserve=30.0, solar_peak_w=0.0)
    sim.state.add_device("emporia", "EM0000000777", kind="charger", charger_on=True, plugged_in=True)
    sim.state.add_device("smartcar", "1FTVW1EL7NWG00777", kind="vehicle", charger_on=True, soc=40.0)
    fleet = {
        "battery": make_device(workspace, "tesla", "TG100000000777"),
        "charger": make_device(workspace, "emporia", "EM0000000777", device_type="charger"),
        "vehicle": make_device(workspace, "ford", "1FTVW1EL7NWG00777", device_type="vehicle"),
    }
    integrations = [make_integration(workspace, channel) for channel in ("tesla", "emporia", "smartcar")]
    for device in fleet.values():
        enrollment_submit(device=device, program=program, actor=None)
    for integration in integrations:
        services.discovery_run(integration=integration)
    return program, fleet, integrations


def sync(integrations):
    for integration in integrations:
        services.telemetry_sync(integration=integration)


def sim_state(sim, fleet):  # noqa: F811
    battery = sim.state.device("tesla", "TG100000000777")
    return {
        "battery": (battery.mode, battery.reserve),
        "charger": sim.state.device("emporia", "EM0000000777").charger_on,
        "vehicle": sim.state.device("smartcar", "1FTVW1EL7NWG00777").charger_on,
    }


def test_a_test_event_runs_start_to_finish_and_leaves_the_fleet_as_it_found_it(
    sim,  # noqa: F811
    mixed_fleet,
    django_capture_on_commit_callbacks,
):
    program, fleet, integrations = mixed_fleet
    sync(integrations)
    before = sim_state(sim, fleet)
    assert before == {"battery": ("self_consumption", 30.0), "charger": True, "vehicle": True}
    start = timezone.now() - timedelta(seconds=30)
    event = dispatch_event_create(
        program=program,
        name="Evening peak test",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)}],
    )
    DispatchEvent.objects.filter(pk=event.pk).update(status=DispatchEventStatus.SCHEDULED)

    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    # every device was told and the OEMs changed them: the battery exports, the charger and the car stop
    assert sim_state(sim, fleet) == {"battery": ("autonomous", 20.0), "charger": False, "vehicle": False}
    statuses = dict(Participation.objects.filter(event=event).values_list("device_id", "status"))
    assert set(statuses.values()) == {ParticipationStatus.COMMANDED}

    sim.state.advance(300)
    sync(integrations)  # their next readings, five minutes on
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    statuses = dict(Participation.objects.filter(event=event).values_list("device_id", "status"))
    assert set(statuses.values()) == {ParticipationStatus.CONFIRMED}, statuses

    # the end comes: restores go out, the OEMs give each device its old mode back
    now = timezone.now()
    DispatchEvent.objects.filter(pk=event.pk).update(starts_at=now - timedelta(hours=1), ends_at=now)
    event.actions.update(starts_at=now - timedelta(hours=1), ends_at=now)
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    assert sim_state(sim, fleet) == before
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.COMPLETED and event.completed_end_to_end, event.status_reason
    assert set(Participation.objects.filter(event=event).values_list("status", flat=True)) == {"restored"}
    sent = Command.objects.filter(dispatch_event=event).values_list("purpose", "status")
    assert sorted(sent) == [("action", "success")] * 3 + [("restore", "success")] * 3


@pytest.mark.parametrize(("grid", "rule", "exports"), [(True, "battery_ok", True), (False, "pv_only", False)])
def test_grid_interaction_goes_through_teslas_export_rule(sim, grid, rule, exports):  # noqa: F811
    """With `enableGridInteraction` a discharge exports to the grid; without, the battery serves the home."""
    from dispatch.services import command_create, command_send

    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    sim.state.add_device("tesla", "TG100000000666", kind="battery", soc=80.0, solar_peak_w=0.0, base_load_w=900.0)
    device = make_device(workspace, "tesla", "TG100000000666")
    services.discovery_run(integration=integration)
    device.refresh_from_db()
    payload = {"operatingMode": "discharge", "minimumBatteryReserve": 20, "enableGridInteraction": grid}
    command = command_create(
        device=device, slug="battery:set-operating-mode", input=payload, idempotency_key=f"grid-{grid}", actor=None
    )
    assert command_send(command=command).status == "success"
    battery = sim.state.device("tesla", "TG100000000666")
    assert (battery.mode, battery.export_rule) == ("autonomous", rule)
    now = sim.state.clock.now()
    assert (battery.grid_w(now) < 0) is exports  # exporting: the grid meter runs backwards
    assert 0 < battery.battery_w(now) <= (battery.max_power_w if exports else battery.load_w(now))
