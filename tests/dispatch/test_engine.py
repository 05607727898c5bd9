"""The dispatch engine on the database: eligibility with a reason for every device, the ramp, the event
clock's steps, confirmation from telemetry, restore at the end, on cancel and on opt-out.

Commands are only written here (no OEM is called); `test_engine_run.py` sends them to the simulator."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from dispatch import engine
from dispatch.choices import CommandStatus, DispatchEventStatus, ExclusionReason, ParticipationStatus
from dispatch.models import Command, DispatchEvent, Participation
from dispatch.selectors import event_participation_counts, event_target_rows
from dispatch.services import command_set_status, dispatch_event_cancel, dispatch_event_create, dispatch_event_schedule
from fleet.models import Device, Manufacturer, TelemetryReading
from integrations.models import WorkspaceIntegration
from programs.choices import EnrollmentStatus
from programs.models import Enrollment
from programs.services import enrollment_submit, event_strategy_create_version
from tests.factories import DeviceFactory, DeviceTagFactory, WorkspaceFactory, make_program
from texture_portal.events.models import PlatformEvent

pytestmark = pytest.mark.django_db


def reading(device, *, age=timedelta(minutes=1), **fields) -> TelemetryReading:
    values = {
        "charge_percentage": 60.0,
        "charge_rate_w": 0.0,
        "backup_reserve_percent": 30.0,
        "strategy": "self_consumption",
        "charging_state": "idle",
        "is_storm_mode_active": False,
        **fields,
    }
    at = timezone.now() - age
    row = TelemetryReading.objects.create(
        workspace_id=device.workspace_id, device=device, measured_at=at, received_at=at, **values
    )
    Device.objects.filter(pk=device.pk).update(latest_telemetry=row, last_seen_at=row.measured_at)
    return row


def live_device(program, *, maker="tesla", device_type="battery", approve=True, state="on_workspace", **telemetry):
    device = DeviceFactory(
        site__contact__workspace=program.workspace,
        manufacturer=Manufacturer.objects.get(slug=maker),
        device_type=device_type,
        state=state,
    )
    enrollment = enrollment_submit(device=device, program=program, actor=None)
    if not approve:
        Enrollment.objects.filter(pk=enrollment.pk).update(status=EnrollmentStatus.REJECTED)
    if telemetry is not None:
        reading(device, **telemetry)
    return device


@pytest.fixture
def program():
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    event_strategy_create_version(
        program=program,
        data={"allowed_event_types": ["charge", "discharge", "idle"], "min_soc_percent": 20, "ramp_minutes": 10},
        actor=None,
    )
    for channel in ("tesla", "emporia", "smartcar", "enphase", "solaredge"):
        WorkspaceIntegration.objects.create(workspace=workspace, channel=channel, enabled=True, credentials={})
    return program


def running_event(program, *, action="discharge", minutes=60, start_ago=timedelta(minutes=1), **fields):
    now = timezone.now()
    starts = now - start_ago
    event = dispatch_event_create(
        program=program,
        name=f"Test {action}",
        starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes),
        actor=None,
        actions=[{"action_type": action, "starts_at": starts, "ends_at": starts + timedelta(minutes=minutes)}],
        **fields,
    )
    DispatchEvent.objects.filter(pk=event.pk).update(status=DispatchEventStatus.SCHEDULED)
    return event


def participation(event, device) -> Participation:
    return Participation.objects.get(event=event, device=device)


# -- eligibility -------------------------------------------------------------------------------------------


def test_every_targeted_device_is_classified_with_a_reason(program):
    ok = live_device(program, charge_percentage=70.0)
    cases = {
        ExclusionReason.NOT_ENROLLED: live_device(program, approve=False),
        ExclusionReason.NOT_ON_WORKSPACE: live_device(program, state="offline"),
        ExclusionReason.STALE_TELEMETRY: live_device(program, age=timedelta(hours=2)),
        ExclusionReason.SOC_OUT_OF_RANGE: live_device(program, charge_percentage=20.0),  # at the floor
        ExclusionReason.SOC_UNKNOWN: live_device(program, charge_percentage=None),
        ExclusionReason.STORM_GUARD: live_device(program, is_storm_mode_active=True),
        ExclusionReason.UNSUPPORTED: live_device(program, maker="solaredge"),  # monitoring only
        ExclusionReason.INTEGRATION_DISABLED: live_device(program, maker="franklinwh"),  # no integration
    }
    inverter = live_device(program, device_type="inverter")
    never = live_device(program)
    TelemetryReading.objects.filter(device=never).delete()  # never reported (the pointer is cleared)
    not_enrolled_elsewhere = DeviceFactory(site__contact__workspace=program.workspace, state="on_workspace")
    event = running_event(program)

    outcome = engine.dispatch_tick()

    assert outcome["started"] == [event.pk]
    assert participation(event, ok).status == ParticipationStatus.INCLUDED
    for code, device in cases.items():
        row = participation(event, device)
        assert (row.status, row.reason_code) == (ParticipationStatus.EXCLUDED, code), (code, row.reason)
        assert row.reason  # plain words, too
    assert participation(event, inverter).reason_code == ExclusionReason.UNSUPPORTED
    assert participation(event, never).reason_code == ExclusionReason.STALE_TELEMETRY
    assert "never reported" in participation(event, never).reason
    assert "at or below the discharge floor of 20 %" in participation(event, cases["soc_out_of_range"]).reason
    assert not Participation.objects.filter(device=not_enrolled_elsewhere).exists()  # not targeted at all
    assert Command.objects.filter(dispatch_event=event).count() == 1
    counts = event_participation_counts(event=event)
    assert counts["targeted"] == 11 and counts["excluded"] == 10
    assert counts["excluded_by_reason"][ExclusionReason.UNSUPPORTED] == 2


def test_soc_rules_follow_the_action(program):
    full = live_device(program, charge_percentage=100.0)
    half = live_device(program, charge_percentage=50.0)
    empty = live_device(program, charge_percentage=5.0)
    charge = running_event(program, action="charge")
    engine.dispatch_tick()
    assert participation(charge, full).reason_code == ExclusionReason.SOC_OUT_OF_RANGE  # at the ceiling
    assert "at or above the charge ceiling of 100 %" in participation(charge, full).reason
    assert participation(charge, half).status == participation(charge, empty).status == ParticipationStatus.INCLUDED


def test_idle_needs_no_state_of_charge_and_chargers_and_vehicles_take_part(program):
    battery = live_device(program, charge_percentage=None)
    charger = live_device(program, maker="emporia", device_type="charger", charging_state="charging")
    vehicle = live_device(program, maker="ford", device_type="vehicle", charging_state="charging")
    event = running_event(program, action="idle")
    engine.dispatch_tick()
    commands = {c.device_id: (c.slug, c.input) for c in Command.objects.filter(dispatch_event=event)}
    assert (
        commands[battery.pk][0] == "battery:set-operating-mode" and commands[battery.pk][1]["operatingMode"] == "idle"
    )
    assert commands[charger.pk] == ("charger:set-operating-mode", {"operatingMode": "stop-charging"})
    assert commands[vehicle.pk] == ("vehicle:set-operating-mode", {"operatingMode": "stop-charging"})


def test_a_battery_command_carries_the_strategys_bounds_and_grid_interaction(program):
    event_strategy_create_version(program=program, data={"enable_grid_interaction": True}, actor=None)
    tesla = live_device(program)
    emporia_battery = live_device(program, maker="franklinwh")  # FranklinWH offers grid services…
    WorkspaceIntegration.objects.create(workspace=program.workspace, channel="franklinwh", enabled=True, credentials={})
    Manufacturer.objects.filter(slug="franklinwh").update(supports_grid_services=False)  # …but not in this test
    event = running_event(program)
    engine.dispatch_tick()
    command = Command.objects.get(dispatch_event=event, device=tesla)
    assert command.input == {
        "operatingMode": "discharge",
        "minimumBatteryReserve": 20,
        "maximumBatteryReserve": 100,
        "enableGridInteraction": True,
    }
    assert participation(event, emporia_battery).reason_code == ExclusionReason.NO_GRID_SERVICES


def test_grid_interaction_needs_the_device_enrolled_in_its_oems_grid_services(program):
    event_strategy_create_version(program=program, data={"enable_grid_interaction": True}, actor=None)
    statuses = ["enrolled", "unknown", "not_enrolled", "pending", "unsupported"]
    devices = {status: live_device(program) for status in statuses}
    for status, device in devices.items():
        Device.objects.filter(pk=device.pk).update(grid_services_status=status)
    event = running_event(program)
    engine.dispatch_tick()
    verdicts = {status: participation(event, device) for status, device in devices.items()}
    # Tesla offers grid services: a device whose status its OEM never showed goes by that
    assert verdicts["enrolled"].status == verdicts["unknown"].status == ParticipationStatus.INCLUDED
    for status in ("not_enrolled", "pending", "unsupported"):
        assert verdicts[status].reason_code == ExclusionReason.NO_GRID_SERVICES, status
    assert "not enrolled in Tesla's grid services" in verdicts["not_enrolled"].reason
    assert "pending" in verdicts["pending"].reason


def test_target_tags_narrow_the_event_and_a_device_in_an_overlapping_event_is_excluded(program):
    feeder = DeviceTagFactory(workspace=program.workspace, name="feeder:12")
    tagged, untagged = live_device(program), live_device(program)
    tagged.tags.add(feeder)
    first = running_event(program, target_tags=["feeder:12"])
    engine.dispatch_tick()
    assert list(Participation.objects.filter(event=first).values_list("device_id", flat=True)) == [tagged.pk]
    second = running_event(program)
    engine.dispatch_tick()
    assert participation(second, tagged).reason_code == ExclusionReason.OVERLAPPING_EVENT
    assert participation(second, untagged).status == ParticipationStatus.INCLUDED


def test_classifying_ten_thousand_devices_is_one_query_whatever_their_number(program, django_assert_max_num_queries):
    for _ in range(30):
        live_device(program)
    event = running_event(program)
    with django_assert_max_num_queries(3):
        rows = event_target_rows(event=event)
    assert len(rows) == 30


# -- the ramp ----------------------------------------------------------------------------------------------


def test_commands_are_spread_over_the_ramp_deterministically(program):
    devices = [live_device(program) for _ in range(40)]
    event = running_event(program)
    engine.dispatch_tick()
    action = event.actions.get()
    slots = {c.device_id: c.not_before - action.starts_at for c in Command.objects.filter(dispatch_event=event)}
    assert len(slots) == 40
    assert all(timedelta(0) <= offset < timedelta(minutes=10) for offset in slots.values())
    assert max(slots.values()) - min(slots.values()) > timedelta(minutes=6)  # spread, not bunched
    assert slots[devices[0].pk] == engine.ramp_offset(event_id=event.pk, device_id=devices[0].pk, ramp_minutes=10)
    other = engine.ramp_offset(event_id=event.pk + 1, device_id=devices[0].pk, ramp_minutes=10)
    assert other != slots[devices[0].pk]  # a different slot in another event


# -- the clock ---------------------------------------------------------------------------------------------


def test_ticking_again_fans_out_once_and_commands_each_device_once(program):
    devices = [live_device(program) for _ in range(3)]
    event = running_event(program)
    engine.dispatch_tick()
    engine.dispatch_tick()
    engine.dispatch_tick()
    assert Participation.objects.filter(event=event).count() == 3
    assert Command.objects.filter(dispatch_event=event).count() == 3
    assert sorted(Command.objects.values_list("device_id", flat=True)) == sorted(d.pk for d in devices)
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.IN_PROGRESS
    assert PlatformEvent.objects.filter(type="program_event.started", data__id=event.pk).count() == 1


def test_a_tick_that_dies_half_way_leaves_nothing_half_written(program, monkeypatch):
    live_device(program)
    event = running_event(program)
    engine.dispatch_events_start_due(now=timezone.now())

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(Command.objects, "bulk_create", crash)
    with pytest.raises(RuntimeError):
        engine.dispatch_event_advance(event_id=event.pk, now=timezone.now())
    assert not Participation.objects.filter(event=event).exists()
    assert event.actions.get().fanned_out_at is None
    monkeypatch.undo()
    engine.dispatch_tick()
    assert Command.objects.filter(dispatch_event=event).count() == 1


def test_a_production_event_of_a_program_not_launched_is_cancelled_at_start(program):
    live_device(program)
    event = running_event(program)
    DispatchEvent.objects.filter(pk=event.pk).update(is_test=False)
    engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.CANCELLED and "only test events" in event.status_reason
    assert not Participation.objects.filter(event=event).exists()


def test_an_action_whose_window_passed_unseen_is_marked_missed(program):
    live_device(program)
    event = running_event(program, minutes=10, start_ago=timedelta(minutes=30))
    engine.dispatch_tick()
    event.refresh_from_db()
    action = event.actions.get()
    assert "passed before the engine could start it" in action.note
    assert event.status == DispatchEventStatus.COMPLETED and not event.completed_end_to_end
    assert not Command.objects.filter(dispatch_event=event).exists()


# -- outcome, confirmation, restore ------------------------------------------------------------------------


def accept(event, device):
    command = Command.objects.get(dispatch_event=event, device=device, purpose="action")
    command_set_status(command=command, status=CommandStatus.SENT)
    return command_set_status(command=command, status=CommandStatus.SUCCESS, reason="accepted")


def test_accepted_then_confirmed_by_telemetry_or_not_responding_with_what_it_shows(program, settings):
    settings.DISPATCH_CONFIRM_WINDOW_MINUTES = 15
    obeys, ignores = live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    accept(event, obeys), accept(event, ignores)
    assert participation(event, obeys).status == ParticipationStatus.COMMANDED
    reading(obeys, age=timedelta(0), charge_rate_w=4200.0, charging_state="discharging")
    engine.dispatch_tick()
    assert participation(event, obeys).status == ParticipationStatus.CONFIRMED
    assert participation(event, ignores).status == ParticipationStatus.COMMANDED  # still within the window

    Participation.objects.filter(event=event, device=ignores).update(
        commanded_at=timezone.now() - timedelta(minutes=18)
    )
    reading(ignores, age=timedelta(0), charge_rate_w=0.0)
    engine.dispatch_tick()
    late = participation(event, ignores)
    assert late.status == ParticipationStatus.NOT_RESPONDING
    assert late.reason.startswith("Not responding — accepted by the OEM at ") and "still idle at" in late.reason

    reading(ignores, age=timedelta(0), charge_rate_w=3000.0)  # it came round after all
    engine.dispatch_tick()
    assert participation(event, ignores).status == ParticipationStatus.CONFIRMED


def test_a_failed_command_fails_the_participation_with_why(program):
    device = live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    command = Command.objects.get(dispatch_event=event, device=device)
    command_set_status(command=command, status=CommandStatus.SENT)
    command_set_status(command=command, status=CommandStatus.FAILED, reason="Tesla: 412 Storm Watch")
    row = participation(event, device)
    assert row.status == ParticipationStatus.FAILED and row.reason == "Command failed: Tesla: 412 Storm Watch"


def end_event(event):
    """Move the event's window into the past (as if its end had come)."""
    now = timezone.now()
    DispatchEvent.objects.filter(pk=event.pk).update(starts_at=now - timedelta(hours=1), ends_at=now)
    event.actions.update(starts_at=now - timedelta(hours=1), ends_at=now)


def test_at_the_end_every_commanded_device_gets_its_mode_and_reserve_back_then_the_event_completes(program):
    battery = live_device(program, backup_reserve_percent=35.0, strategy="autonomous")
    charger = live_device(program, maker="emporia", device_type="charger", charging_state="charging")
    waiting = live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    accept(event, battery), accept(event, charger)
    reading(battery, age=timedelta(0), charge_rate_w=5000.0, backup_reserve_percent=20.0)
    engine.dispatch_tick()
    assert participation(event, battery).mode_before == "autonomous"
    end_event(event)
    engine.dispatch_tick()
    restores = {c.device_id: c for c in Command.objects.filter(dispatch_event=event, purpose="restore")}
    assert restores[battery.pk].input == {"operatingMode": "reset", "minimumBatteryReserve": 35}
    assert restores[charger.pk].input == {"operatingMode": "start-charging"}
    assert waiting.pk not in restores  # never commanded: nothing to give back…
    assert participation(event, waiting).reason_code == ExclusionReason.WINDOW_ENDED  # …its turn never came
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.IN_PROGRESS  # restores still going

    for command in restores.values():
        command_set_status(command=command, status=CommandStatus.SENT)
        command_set_status(command=command, status=CommandStatus.SUCCESS)
    engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.COMPLETED and event.completed_end_to_end
    assert participation(event, battery).status == ParticipationStatus.RESTORED
    assert participation(event, battery).confirmed_at is not None  # kept: it did confirm
    assert "1 confirmed, 2 restored" in event.status_reason
    completed = PlatformEvent.objects.get(type="program_event.completed", data__id=event.pk)
    assert completed.data["completedEndToEnd"] is True


def test_an_event_with_no_device_confirmed_completes_but_not_end_to_end(program):
    device = live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    accept(event, device)
    end_event(event)
    engine.dispatch_tick()
    restore = Command.objects.get(dispatch_event=event, purpose="restore")
    command_set_status(command=restore, status=CommandStatus.SENT)
    command_set_status(command=restore, status=CommandStatus.SUCCESS)
    engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.COMPLETED and not event.completed_end_to_end


def test_back_to_back_actions_hand_devices_over_and_restore_once_at_the_end(program):
    device = live_device(program, charge_percentage=60.0)
    now = timezone.now()
    start = now - timedelta(minutes=1)
    event = dispatch_event_create(
        program=program,
        name="Discharge then idle",
        starts_at=start,
        ends_at=start + timedelta(hours=2),
        actor=None,
        actions=[
            {"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)},
            {"action_type": "idle", "starts_at": start + timedelta(hours=1), "ends_at": start + timedelta(hours=2)},
        ],
    )
    DispatchEvent.objects.filter(pk=event.pk).update(status=DispatchEventStatus.SCHEDULED)
    engine.dispatch_tick()
    accept(event, device)
    first, second = event.actions.order_by("starts_at")
    # the first window ends, the second begins
    event.actions.filter(pk=first.pk).update(starts_at=now - timedelta(hours=1), ends_at=now)
    event.actions.filter(pk=second.pk).update(starts_at=now, ends_at=now + timedelta(hours=1))
    DispatchEvent.objects.filter(pk=event.pk).update(starts_at=now - timedelta(hours=1))
    engine.dispatch_tick()
    commands = list(Command.objects.filter(dispatch_event=event).order_by("pk").values_list("purpose", "input"))
    assert [purpose for purpose, _ in commands] == ["action", "action"]  # no restore in between
    assert commands[1][1]["operatingMode"] == "idle"
    first.refresh_from_db()
    assert "no restore in between" in first.note


def test_cancelling_a_running_event_restores_at_once_and_sends_nothing_more(program):
    commanded, waiting = live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    accept(event, commanded)
    dispatch_event_cancel(event=event, actor=None, reason="Feeder maintenance")
    restore = Command.objects.get(dispatch_event=event, purpose="restore")
    assert restore.device_id == commanded.pk and restore.not_before <= timezone.now()
    unsent = Command.objects.get(dispatch_event=event, device=waiting, purpose="action")
    assert unsent.status == CommandStatus.SKIPPED
    engine.dispatch_tick()  # a cancelled event is not advanced, but its restore is still handed to a worker
    restore.refresh_from_db()
    assert restore.queued_at is not None


def test_opting_a_device_out_restores_it_alone_and_it_never_comes_back(program):
    out, stays = live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    accept(event, out), accept(event, stays)
    engine.participation_opt_out(participation=participation(event, out), reason="Customer called", actor=None)
    row = participation(event, out)
    assert row.status == ParticipationStatus.OPTED_OUT and row.reason == "Customer called"
    restores = list(Command.objects.filter(dispatch_event=event, purpose="restore").values_list("device_id", flat=True))
    assert restores == [out.pk]
    assert PlatformEvent.objects.filter(type="program_event.opted_out", data__deviceId=out.pk).count() == 1
    restore = Command.objects.get(dispatch_event=event, purpose="restore")
    command_set_status(command=restore, status=CommandStatus.SENT)
    command_set_status(command=restore, status=CommandStatus.SUCCESS)
    row = participation(event, out)
    assert row.status == ParticipationStatus.OPTED_OUT and row.restored_at is not None
    with pytest.raises(Exception, match="already opted out"):
        engine.participation_opt_out(participation=row, reason="again", actor=None)
    end_event(event)
    engine.dispatch_tick()
    restored_at_end = Command.objects.filter(dispatch_event=event, purpose="restore").exclude(device=out)
    assert list(restored_at_end.values_list("device_id", flat=True)) == [stays.pk]


def test_storm_guard_at_send_time_skips_the_command_and_excludes_the_battery(program):
    device = live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    reading(device, age=timedelta(0), is_storm_mode_active=True)  # a storm came between selection and send
    command = Command.objects.get(dispatch_event=event, device=device)
    Command.objects.filter(pk=command.pk).update(not_before=timezone.now())
    from dispatch.services import command_send

    command_send(command=command)
    command.refresh_from_db()
    assert command.status == CommandStatus.SKIPPED and "Storm Guard" in command.status_reason
    row = participation(event, device)
    assert (row.status, row.reason_code) == (ParticipationStatus.EXCLUDED, ExclusionReason.STORM_GUARD)


def test_scheduling_checks_the_strategy_first(program):
    now = timezone.now()
    event = dispatch_event_create(
        program=program,
        name="Too long",
        starts_at=now + timedelta(hours=1),
        ends_at=now + timedelta(hours=9),
        actor=None,
        actions=[
            {"action_type": "discharge", "starts_at": now + timedelta(hours=1), "ends_at": now + timedelta(hours=9)}
        ],
    )
    with pytest.raises(Exception, match="the strategy allows at most 240"):
        dispatch_event_schedule(event=event, actor=None)


def test_while_an_event_runs_its_devices_are_read_at_the_fastest_cadence_once_per_period(program, monkeypatch):
    from django.core.cache import cache

    from integrations.tasks import telemetry_sync_task

    cache.clear()
    queued = []
    monkeypatch.setattr(telemetry_sync_task, "delay", lambda *args: queued.append(args))
    stale_battery = live_device(program, age=timedelta(minutes=6))  # Tesla: every 5 minutes in events too
    fresh_battery = live_device(program, age=timedelta(minutes=1))
    charger = live_device(program, maker="emporia", device_type="charger", age=timedelta(minutes=2))  # 1 min
    outside = live_device(program, age=timedelta(minutes=6), is_storm_mode_active=True)  # excluded: not read
    running_event(program)
    engine.dispatch_tick()
    tesla = WorkspaceIntegration.objects.get(workspace=program.workspace, channel="tesla")
    emporia = WorkspaceIntegration.objects.get(workspace=program.workspace, channel="emporia")
    assert sorted(queued) == sorted([(tesla.pk, [stale_battery.pk]), (emporia.pk, [charger.pk])])
    assert fresh_battery.pk not in queued[0][1] and outside.pk not in queued[0][1]
    engine.dispatch_tick()
    assert len(queued) == 2  # once per integration and period, however often the clock ticks


def test_a_command_that_lands_after_its_windows_restore_is_restored_too(program):
    device = live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    command = Command.objects.get(dispatch_event=event, device=device)
    command_set_status(command=command, status=CommandStatus.SENT)  # in flight when the window ends
    end_event(event)
    engine.dispatch_tick()
    assert not Command.objects.filter(dispatch_event=event, purpose="restore").exists()  # nothing held yet
    command_set_status(command=command, status=CommandStatus.SUCCESS)  # the OEM's answer comes late
    restore = Command.objects.get(dispatch_event=event, purpose="restore")
    assert restore.device_id == device.pk and restore.not_before <= timezone.now()
    command_set_status(command=restore, status=CommandStatus.SENT)
    command_set_status(command=restore, status=CommandStatus.SUCCESS)
    engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.COMPLETED
    assert participation(event, device).status == ParticipationStatus.RESTORED


def test_the_broker_is_topped_up_to_what_each_oems_rate_limit_lets_through(
    program, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from dispatch.tasks import commands_send_task

    settings.OEM_RATE_LIMITS = {**settings.OEM_RATE_LIMITS, "tesla": (0.2, 1.0)}
    settings.DISPATCH_QUEUE_AHEAD_SECONDS = 90  # 18 Tesla calls: 6 commands of three calls each
    queued = []
    monkeypatch.setattr(commands_send_task, "apply_async", lambda args, *_, **kwargs: queued.extend(args[0]))
    teslas = [live_device(program) for _ in range(8)]
    chargers = [live_device(program, maker="emporia", device_type="charger") for _ in range(3)]
    event = running_event(program)
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    # all due now, none handed yet (the tick may have handed the first ramp slots)
    Command.objects.filter(dispatch_event=event).update(
        not_before=timezone.now() - timedelta(seconds=1), queued_at=None
    )
    queued.clear()

    def queue_now() -> dict:
        before = len(queued)
        with django_capture_on_commit_callbacks(execute=True):
            engine.commands_queue_due(now=timezone.now())
        sent = Command.objects.filter(pk__in=queued[before:])
        return dict(sent.values_list("device__manufacturer__slug").annotate(n=Count("pk")))

    assert queue_now() == {"tesla": 6, "emporia": 3}  # the other two Teslas wait here, not in the broker
    makers = dict(Command.objects.filter(pk__in=queued).values_list("pk", "device__manufacturer__slug"))
    assert [makers[pk] for pk in queued] == ["tesla", "emporia"] * 3 + ["tesla"] * 3  # the OEMs take turns
    assert queue_now() == {}  # a tick later, nothing sent yet: nothing more
    for pk in Command.objects.filter(pk__in=queued, device__in=teslas).values_list("pk", flat=True)[:4]:
        command_set_status(command=Command(pk=pk), status=CommandStatus.SENT)
        command_set_status(command=Command(pk=pk), status=CommandStatus.SUCCESS)
    assert queue_now() == {"tesla": 2}
    assert Command.objects.filter(dispatch_event=event, queued_at__isnull=True).count() == 0
    assert {c.device_id for c in Command.objects.filter(pk__in=queued)} == {d.pk for d in teslas + chargers}


def test_beats_hand_off_task_queues_what_is_due(program, monkeypatch, django_capture_on_commit_callbacks):
    from dispatch.tasks import commands_queue_task, commands_send_task

    queued = []
    monkeypatch.setattr(commands_send_task, "apply_async", lambda args, *_, **kwargs: queued.extend(args[0]))
    devices = [live_device(program) for _ in range(3)]
    event = running_event(program)
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    Command.objects.filter(dispatch_event=event).update(not_before=timezone.now(), queued_at=None)
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert commands_queue_task() == 3
        assert commands_queue_task() == 0  # handed once: a second run finds them queued
    assert sorted(Command.objects.filter(pk__in=queued).values_list("device_id", flat=True)) == [d.pk for d in devices]


def test_a_batchs_commands_not_yet_sent_when_the_event_is_cancelled_are_skipped_not_sent(program, monkeypatch):
    """A worker's batch holds its commands (`sent`, leased) until their turn: cancelling the event meanwhile
    keeps the rest from going out, and the one already on its way is restored when its answer lands."""
    from dispatch import services

    devices = [live_device(program) for _ in range(3)]
    event = running_event(program)
    engine.dispatch_tick()
    Command.objects.filter(dispatch_event=event).update(not_before=timezone.now() - timedelta(seconds=1))
    ids = list(Command.objects.filter(dispatch_event=event).order_by("pk").values_list("pk", flat=True))
    monkeypatch.setattr(services, "SEND_RECORD_SECONDS", 0)  # record after every call
    called = []

    def call(command, integration, *, resume, final):
        called.append(command.device_id)
        if len(called) == 1:  # staff cancel while the first call is out
            dispatch_event_cancel(event=event, actor=None, reason="Feeder maintenance")
        return services._Sent(command, CommandStatus.SUCCESS, "accepted", started=timezone.now())

    monkeypatch.setattr(services, "_command_call", call)
    sent = services.commands_send(command_ids=ids, owner="the-batch")
    assert len(called) == 1
    first = called[0]
    assert {pk: c.status for pk, c in sent.items()} == {
        pk: "success" if Command.objects.get(pk=pk).device_id == first else "skipped" for pk in ids
    }
    for device in devices:
        p = participation(event, device)
        if device.pk == first:
            assert p.status == ParticipationStatus.COMMANDED  # then restored: its restore went out at once
            assert Command.objects.filter(dispatch_event=event, device=device, purpose="restore").exists()
        else:
            assert (p.status, p.reason_code) == (ParticipationStatus.EXCLUDED, ExclusionReason.WINDOW_ENDED)
    # a batch handed just before the cancel and claimed after it sends nothing either
    late = live_device(program)
    other = running_event(program)
    engine.dispatch_tick()
    command = Command.objects.get(dispatch_event=other, device=late)
    Command.objects.filter(pk=command.pk).update(not_before=timezone.now() - timedelta(seconds=1))
    DispatchEvent.objects.filter(pk=other.pk).update(status=DispatchEventStatus.CANCELLED)
    assert services.command_send(command=command).status == "skipped"
    assert len(called) == 1
