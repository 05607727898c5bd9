"""The dispatch engine: what makes events run themselves (writes; `dispatch.selectors` has the reads).

A beat tick (`dispatch_tick`, every DISPATCH_TICK_SECONDS; `run_integration_schedule` runs it in the demo)
creates the events recurring schedules are due to create (`dispatch.schedules`), starts the events that are
due and, for each running event, takes the steps whose time has come: when an action starts, its targeted
devices are classified and the included ones commanded; while it runs, their telemetry confirms them; when
it ends, they are restored (unless the next action follows at once); when the event has ended and every
restore is done, it completes. Each event's steps run in one transaction
with its row locked, skipping a row another tick holds (`skip_locked`), and each step sets its marker in
that transaction: two ticks at once take a step once, and a tick that dies half-way leaves nothing half
written (the next takes the step again).

Commands carry a `not_before` spread over the strategy's ramp (a deterministic per-device offset, like
OpenADR's `randomizeStart`) and are handed to workers only when due (`commands_queue_due`): no task waits
with a long ETA. Sending, its lease and retries are `dispatch.services.commands_send`'s.
"""

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from dispatch.choices import (
    NEEDS_RESTORE,
    PARTICIPATION_TRANSITIONS,
    CommandPurpose,
    CommandSlug,
    CommandStatus,
    DispatchEventStatus,
    ExclusionReason,
    ParticipationStatus,
)
from dispatch.events import DispatchEventType, participation_data
from dispatch.models import Command, DispatchAction, DispatchEvent, Participation
from dispatch.selectors import event_participation_counts, event_target_rows
from fleet.choices import DeviceState, DeviceType, GridServicesStatus
from programs.choices import EnrollmentStatus, EventType
from programs.models import EventStrategy
from texture_portal.audit import audit_record
from texture_portal.bulk import update_objects
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events.services import event_emit
from texture_portal.exceptions import ApplicationError

log = logging.getLogger(__name__)

# Watts above which a battery counts as charging or discharging, a charger or vehicle as drawing.
ACTIVE_POWER_W = 100.0
# Actions this close together (end of one, start of the next) hand devices over without a restore.
ADJACENT = timedelta(seconds=60)

# The command each device type takes for each action: (slug, operating mode).
ACTION_COMMANDS = {
    (DeviceType.BATTERY, EventType.CHARGE): (CommandSlug.BATTERY_SET_OPERATING_MODE, "charge"),
    (DeviceType.BATTERY, EventType.DISCHARGE): (CommandSlug.BATTERY_SET_OPERATING_MODE, "discharge"),
    (DeviceType.BATTERY, EventType.IDLE): (CommandSlug.BATTERY_SET_OPERATING_MODE, "idle"),
    (DeviceType.CHARGER, EventType.CHARGE): (CommandSlug.CHARGER_SET_OPERATING_MODE, "start-charging"),
    (DeviceType.CHARGER, EventType.DISCHARGE): (CommandSlug.CHARGER_SET_OPERATING_MODE, "stop-charging"),
    (DeviceType.CHARGER, EventType.IDLE): (CommandSlug.CHARGER_SET_OPERATING_MODE, "stop-charging"),
    (DeviceType.VEHICLE, EventType.CHARGE): (CommandSlug.VEHICLE_SET_OPERATING_MODE, "start-charging"),
    (DeviceType.VEHICLE, EventType.DISCHARGE): (CommandSlug.VEHICLE_SET_OPERATING_MODE, "stop-charging"),
    (DeviceType.VEHICLE, EventType.IDLE): (CommandSlug.VEHICLE_SET_OPERATING_MODE, "stop-charging"),
}
GRID_ACTIONS = {EventType.CHARGE, EventType.DISCHARGE}


# -- pure rules: the ramp, eligibility, the command and its restore, confirmation ----------------------------


def ramp_offset(*, event_id: int, device_id: int, ramp_minutes: int) -> timedelta:
    """Where in the ramp window this device starts (and ends): the same for a device in an event, spread
    evenly across devices, and different from one event to the next."""
    digest = hashlib.sha256(f"{event_id}:{device_id}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") / 2**64 * ramp_minutes * 60)


@dataclass(frozen=True)
class Verdict:
    included: bool
    code: str = ""
    reason: str = ""


INCLUDED = Verdict(True)


def _stale_after(channel: str) -> timedelta:
    from integrations.services import channel_cadence

    return channel_cadence(channel) * max(2.0, settings.OEM_OFFLINE_GRACE_FACTOR)


def classify(row: dict, *, action_type: str, strategy: EventStrategy, now: datetime) -> Verdict:
    """Whether one targeted device (a row of `event_target_rows`) takes part in an action, and if not, why:
    the first reason that applies, in the order staff check them."""
    maker = row["manufacturer__name"]
    device_type = row["device_type"]
    if row["enrollment_status"] != EnrollmentStatus.APPROVED:
        return Verdict(False, ExclusionReason.NOT_ENROLLED, f"Its enrollment is {row['enrollment_status']}.")
    if row["state"] != DeviceState.ON_WORKSPACE:
        label = DeviceState(row["state"]).label
        return Verdict(False, ExclusionReason.NOT_ON_WORKSPACE, f"The device is {label}, not on the workspace.")
    if not row["integration_enabled"]:
        return Verdict(
            False, ExclusionReason.INTEGRATION_DISABLED, f"The {maker} integration is not enabled in this workspace."
        )
    if row["manufacturer__is_read_only"]:
        return Verdict(False, ExclusionReason.UNSUPPORTED, f"{maker}'s API is monitoring only: it takes no commands.")
    if (device_type, action_type) not in ACTION_COMMANDS:
        return Verdict(False, ExclusionReason.UNSUPPORTED, f"A {device_type} cannot {action_type}.")
    measured = row["latest_telemetry__measured_at"]
    stale_after = _stale_after(row["manufacturer__integration_channel"])
    if measured is None or now - measured > stale_after:
        when = f"its last reading is of {measured:%Y-%m-%d %H:%M} UTC" if measured else "it has never reported"
        return Verdict(
            False,
            ExclusionReason.STALE_TELEMETRY,
            f"No fresh telemetry: {when} (fresh means within {stale_after.total_seconds() / 60:.0f} min).",
        )
    if device_type == DeviceType.BATTERY:
        if row["latest_telemetry__is_storm_mode_active"]:
            return Verdict(
                False,
                ExclusionReason.STORM_GUARD,
                "Storm Guard is active: the battery keeps its backup charge and does not take part.",
            )
        soc = row["latest_telemetry__charge_percentage"]
        if soc is None and action_type != EventType.IDLE:
            return Verdict(False, ExclusionReason.SOC_UNKNOWN, "Its telemetry carries no state of charge.")
        if action_type == EventType.DISCHARGE and soc <= strategy.min_soc_percent:
            return Verdict(
                False,
                ExclusionReason.SOC_OUT_OF_RANGE,
                f"SoC {soc:.0f} % is at or below the discharge floor of {strategy.min_soc_percent} %.",
            )
        if action_type == EventType.CHARGE and soc >= strategy.max_soc_percent:
            return Verdict(
                False,
                ExclusionReason.SOC_OUT_OF_RANGE,
                f"SoC {soc:.0f} % is at or above the charge ceiling of {strategy.max_soc_percent} %.",
            )
        if strategy.enable_grid_interaction and action_type in GRID_ACTIONS:
            why = _no_grid_services(row, maker)
            if why:
                return Verdict(False, ExclusionReason.NO_GRID_SERVICES, why)
    if row["busy_elsewhere"]:
        return Verdict(
            False, ExclusionReason.OVERLAPPING_EVENT, "It takes part in another event that overlaps this one."
        )
    return INCLUDED


GRID_SERVICES_REFUSED = {
    GridServicesStatus.NOT_ENROLLED: "it is not enrolled in {maker}'s grid services",
    GridServicesStatus.PENDING: "its enrollment in {maker}'s grid services is pending (the OEM is still testing it)",
    GridServicesStatus.UNSUPPORTED: "{maker} offers no grid-services channel for it",
}


def _no_grid_services(row: dict, maker: str) -> str:
    """Why a device cannot take a grid-interaction command, or "". Its own status, as its OEM last showed it,
    decides; where the OEM shows none (`unknown`: FranklinWH, Enphase outside an event) the manufacturer's
    grid-services channel does, as the program's enrollment with that OEM is then all the portal knows."""
    status = row["grid_services_status"]
    if status in GRID_SERVICES_REFUSED:
        return "The strategy interacts with the grid and " + GRID_SERVICES_REFUSED[status].format(maker=maker) + "."
    if status != GridServicesStatus.ENROLLED and not row["manufacturer__supports_grid_services"]:
        return f"The strategy interacts with the grid and {maker} offers no grid-services channel."
    return ""


def action_command(*, device_type: str, action_type: str, strategy: EventStrategy) -> tuple[str, dict]:
    """The slug and input an action sends to a device of this type (the strategy's bounds for batteries)."""
    slug, mode = ACTION_COMMANDS[(device_type, action_type)]
    if device_type != DeviceType.BATTERY:
        return slug, {"operatingMode": mode}
    return slug, {
        "operatingMode": mode,
        "minimumBatteryReserve": strategy.min_soc_percent,
        "maximumBatteryReserve": strategy.max_soc_percent,
        "enableGridInteraction": strategy.enable_grid_interaction,
    }


def restore_command(*, device_type: str, action_type: str, participation: Participation) -> tuple[str, dict] | None:
    """What gives a device back what it had before the event: a battery its OEM's own mode (`reset`) and its
    reserve; a vehicle charging if it was charging, stopped if not; a charger stopped only if a charge action
    started it while it was not charging, otherwise available again (a charger left off after an event is a
    car that did not charge overnight). None: nothing to give back."""
    if device_type == DeviceType.BATTERY:
        payload = {"operatingMode": "reset"}
        if participation.reserve_before is not None:
            payload["minimumBatteryReserve"] = round(participation.reserve_before)
        return CommandSlug.BATTERY_SET_OPERATING_MODE, payload
    if device_type == DeviceType.CHARGER:
        started_it = action_type == EventType.CHARGE and not participation.was_charging
        return CommandSlug.CHARGER_SET_OPERATING_MODE, {
            "operatingMode": "stop-charging" if started_it else "start-charging"
        }
    if device_type == DeviceType.VEHICLE:
        mode = "start-charging" if participation.was_charging else "stop-charging"
        return CommandSlug.VEHICLE_SET_OPERATING_MODE, {"operatingMode": mode}
    return None


def observed_state(*, device_type: str, charge_rate_w, charger_wattage_w, charging_state: str) -> str:
    """charging | discharging | idle, as the reading shows it."""
    if device_type == DeviceType.BATTERY and charge_rate_w is not None:
        if charge_rate_w > ACTIVE_POWER_W:
            return "discharging"
        return "charging" if charge_rate_w < -ACTIVE_POWER_W else "idle"
    if device_type in (DeviceType.CHARGER, DeviceType.VEHICLE):
        drawing = (charger_wattage_w or 0) > ACTIVE_POWER_W or (charge_rate_w or 0) < -ACTIVE_POWER_W
        return "charging" if drawing or charging_state == "charging" else "idle"
    return charging_state or "unknown"


# What the device should show once it took the action's command.
EXPECTED_STATE = {
    (DeviceType.BATTERY, EventType.DISCHARGE): {"discharging"},
    (DeviceType.BATTERY, EventType.CHARGE): {"charging"},
    (DeviceType.BATTERY, EventType.IDLE): {"idle", "charging"},  # idle: not discharging (solar may charge it)
    **{(kind, EventType.CHARGE): {"charging"} for kind in (DeviceType.CHARGER, DeviceType.VEHICLE)},
    **{(kind, EventType.DISCHARGE): {"idle"} for kind in (DeviceType.CHARGER, DeviceType.VEHICLE)},
    **{(kind, EventType.IDLE): {"idle"} for kind in (DeviceType.CHARGER, DeviceType.VEHICLE)},
}


def confirm_window(channel: str) -> timedelta:
    from integrations.services import channel_cadence

    return max(timedelta(minutes=settings.DISPATCH_CONFIRM_WINDOW_MINUTES), 2 * channel_cadence(channel))


# -- the steps ----------------------------------------------------------------------------------------------


def _move(participation: Participation, status: str) -> bool:
    """Apply a transition when the table allows it (the engine's bulk steps never force one)."""
    if participation.status == status:
        return True
    if not PARTICIPATION_TRANSITIONS.can(participation.status, status):
        return False
    participation.status = status
    return True


def _before_values(participation: Participation, row: dict) -> None:
    """Keep what the device had before the event, once: its restore target."""
    if participation.included_at is not None:
        return
    participation.mode_before = row["latest_telemetry__strategy"] or ""
    participation.reserve_before = row["latest_telemetry__backup_reserve_percent"]
    participation.was_charging = row["latest_telemetry__charging_state"] == "charging"
    participation.charge_limit_before = row["latest_telemetry__charge_limit_percent"]


def _new_command(*, event, action, participation, slug, payload, purpose, from_time, now) -> Command:
    """A command of the engine, sent in the device's slot of the ramp that starts at `from_time`."""
    device_id = participation.device_id
    not_before = from_time + ramp_offset(
        event_id=event.pk, device_id=device_id, ramp_minutes=event.strategy.ramp_minutes
    )
    return Command(
        workspace_id=event.workspace_id,
        device_id=device_id,
        dispatch_event=event,
        action=action,
        participation=participation,
        purpose=purpose,
        slug=slug,
        input=payload,
        idempotency_key=f"dispatch:{event.pk}:{action.pk}:{device_id}:{purpose}",
        not_before=not_before,
        created=now,
    )


RECLASSIFIED_FIELDS = [
    "action",
    "status",
    "reason_code",
    "reason",
    "mode_before",
    "reserve_before",
    "was_charging",
    "charge_limit_before",
    "included_at",
    "confirmed_at",
    "last_updated",
]


def action_fan_out(*, event: DispatchEvent, action: DispatchAction, now: datetime) -> dict:
    """An action starts: classify every targeted device (one query), write or update their participations
    and the included devices' commands in bulk, each with its ramp slot. The caller holds the event's lock."""
    strategy = event.strategy
    rows = event_target_rows(event=event)
    existing = {p.device_id: p for p in Participation.objects.filter(event=event).select_related("action")}
    verdicts = {row["pk"]: classify(row, action_type=action.action_type, strategy=strategy, now=now) for row in rows}
    to_create, to_update, commands, restores = [], [], [], []
    for row in rows:
        device_id, verdict = row["pk"], verdicts[row["pk"]]
        participation = existing.get(device_id)
        if participation is None:
            participation = Participation(workspace_id=event.workspace_id, event=event, device_id=device_id)
            participation.status = ParticipationStatus.EXCLUDED  # until the verdict below says otherwise
            to_create.append(participation)
        elif participation.status == ParticipationStatus.OPTED_OUT:
            continue  # never again in this event
        else:
            to_update.append(participation)
        holding = participation.pk is not None and participation.status in NEEDS_RESTORE
        if verdict.included or not holding:
            participation.action = action  # (one still holding the last action's state keeps it: its restore)
        if verdict.included:
            _before_values(participation, row)
            participation.status = ParticipationStatus.INCLUDED
            participation.reason_code, participation.reason = "", ""
            participation.included_at = participation.included_at or now
            participation.confirmed_at = None
        elif holding:
            # commanded in the action just before (no restore in between): give its state back now
            participation.reason_code, participation.reason = verdict.code, verdict.reason
            restores.append(participation)
        else:
            participation.status = ParticipationStatus.EXCLUDED
            participation.reason_code, participation.reason = verdict.code, verdict.reason
    Participation.objects.bulk_create(to_create, batch_size=2000)
    for participation in to_update:
        participation.last_updated = now  # a bulk update does not touch auto_now fields itself
    update_objects(to_update, RECLASSIFIED_FIELDS)
    types = {row["pk"]: row["device_type"] for row in rows}
    for participation in (*to_create, *to_update):
        if participation.status != ParticipationStatus.INCLUDED:
            continue
        slug, payload = action_command(
            device_type=types[participation.device_id], action_type=action.action_type, strategy=strategy
        )
        commands.append(
            _new_command(
                event=event,
                action=action,
                participation=participation,
                slug=slug,
                payload=payload,
                purpose=CommandPurpose.ACTION,
                from_time=action.starts_at,
                now=now,
            )
        )
    commands += _restore_commands(event=event, action=action, participations=restores, types=types, at=now)
    Command.objects.bulk_create(commands, batch_size=2000, ignore_conflicts=True)
    action.fanned_out_at = now
    included = sum(1 for v in verdicts.values() if v.included)
    action.note = f"{len(rows)} targeted, {included} included, {len(rows) - included} excluded."
    action.save(update_fields=["fanned_out_at", "note", "last_updated"])
    audit_record(
        actor=None,
        action=AuditAction.DISPATCH_ACTION_STARTED,
        target=event,
        source=AuditSource.TASK,
        changes={"action": action.pk, "targeted": len(rows), "included": included, "commands": len(commands)},
        reason=f"{action}: {action.note}",
    )
    participation_floor_check(event=event, taking_part=included, targeted=len(rows), when=f"{action} started", at=now)
    return {"targeted": len(rows), "included": included, "commands": len(commands)}


def _restore_commands(*, event, action, participations, types: dict | None, at: datetime) -> list[Command]:
    """The restore command of each participation (ramped from `at`); those with nothing to give back are
    marked restored at once."""
    if types is None:
        from fleet.models import Device

        ids = [p.device_id for p in participations]
        types = dict(Device.objects.filter(pk__in=ids).values_list("pk", "device_type"))
    commands, nothing_to_do = [], []
    for participation in participations:
        undone = participation.action or action  # the action whose state is given back
        command = restore_command(
            device_type=types[participation.device_id], action_type=undone.action_type, participation=participation
        )
        if command is None:
            nothing_to_do.append(participation)
            continue
        slug, payload = command
        commands.append(
            _new_command(
                event=event,
                action=action,
                participation=participation,
                slug=slug,
                payload=payload,
                purpose=CommandPurpose.RESTORE,
                from_time=at,
                now=at,
            )
        )
    for participation in nothing_to_do:
        _move(participation, ParticipationStatus.RESTORED)
        participation.restored_at = participation.last_updated = at
    update_objects(nothing_to_do, ["status", "restored_at", "last_updated"])
    return commands


def _skip_unsent(*, event: DispatchEvent, reason: str, code: str, now: datetime, action=None) -> int:
    """Action commands of the event still waiting for their slot are skipped (their device excluded)."""
    # locked first (waiting for a claim taking some of them this moment), so only the participations of the
    # commands really skipped are excluded
    unsent = dict(
        Command.objects.filter(dispatch_event=event, purpose=CommandPurpose.ACTION, status=CommandStatus.PENDING)
        .filter(**({"action": action} if action else {}))
        .select_for_update()
        .values_list("pk", "participation_id")
    )
    participation_ids = list(unsent.values())
    skipped = Command.objects.filter(pk__in=list(unsent), status=CommandStatus.PENDING).update(
        status=CommandStatus.SKIPPED, status_reason=reason, completed_at=now, last_updated=now
    )
    Participation.objects.filter(pk__in=participation_ids, status=ParticipationStatus.INCLUDED).update(
        status=ParticipationStatus.EXCLUDED, reason_code=code, reason=reason, last_updated=now
    )
    return skipped


def _holding(event: DispatchEvent) -> list[Participation]:
    """The event's devices that hold a commanded state (an opted-out one whose restore is not done too),
    but for those whose restore is already on its way."""
    restoring = Command.objects.filter(
        participation=OuterRef("pk"),
        purpose=CommandPurpose.RESTORE,
        status__in=[CommandStatus.PENDING, CommandStatus.SENT],
    )
    return list(
        Participation.objects.filter(event=event)
        .filter(
            Q(status__in=NEEDS_RESTORE)
            | Q(status=ParticipationStatus.OPTED_OUT, commanded_at__isnull=False, restored_at__isnull=True)
        )
        .exclude(Exists(restoring))
        .select_related("action")
    )


def action_restore(*, event: DispatchEvent, action: DispatchAction, next_action, now: datetime) -> int:
    """An action ends: commands still waiting are skipped, and every device holding a commanded state gets
    its restore, ramped from the action's end — unless the next action follows at once, which takes the
    devices over. The caller holds the event's lock."""
    _skip_unsent(
        event=event,
        action=action,
        now=now,
        code=ExclusionReason.WINDOW_ENDED,
        reason=f"The {action.get_action_type_display().lower()} window ended before its turn in the ramp.",
    )
    if next_action is not None and next_action.starts_at <= action.ends_at + ADJACENT:
        action.restore_started_at = now
        action.note = (action.note + " The next action follows at once: no restore in between.").strip()[:300]
        action.save(update_fields=["restore_started_at", "note", "last_updated"])
        return 0
    commands = _restore_commands(
        event=event, action=action, participations=_holding(event), types=None, at=action.ends_at
    )
    Command.objects.bulk_create(commands, batch_size=2000, ignore_conflicts=True)
    action.restore_started_at = now
    action.save(update_fields=["restore_started_at", "last_updated"])
    audit_record(
        actor=None,
        action=AuditAction.DISPATCH_ACTION_RESTORING,
        target=event,
        source=AuditSource.TASK,
        changes={"action": action.pk, "restores": len(commands)},
        reason=f"{action}: {len(commands)} devices being restored.",
    )
    return len(commands)


def participations_confirm(*, event: DispatchEvent, now: datetime) -> dict:
    """Devices the OEM accepted a command for: their readings since say whether they did it (confirmed), or,
    once the window has passed without that, that they are not responding — with what they show."""
    rows = Participation.objects.filter(
        event=event, status__in=[ParticipationStatus.COMMANDED, ParticipationStatus.NOT_RESPONDING]
    ).select_related("action", "device__manufacturer", "device__latest_telemetry")
    changed, recovered, counts = [], [], {"confirmed": 0, "not_responding": 0}
    for participation in rows:
        device, reading = participation.device, participation.device.latest_telemetry
        if participation.action is None or participation.commanded_at is None:
            continue
        expected = EXPECTED_STATE.get((device.device_type, participation.action.action_type), set())
        fresh = reading is not None and reading.received_at > participation.commanded_at
        shown = (
            observed_state(
                device_type=device.device_type,
                charge_rate_w=reading.charge_rate_w,
                charger_wattage_w=reading.charger_wattage_w,
                charging_state=reading.charging_state,
            )
            if fresh
            else None
        )
        if shown in expected:
            if participation.status == ParticipationStatus.NOT_RESPONDING:
                recovered.append(participation)
            participation.status, participation.confirmed_at = ParticipationStatus.CONFIRMED, reading.measured_at
            participation.reason_code, participation.reason = "", ""
            changed.append(participation)
            counts["confirmed"] += 1
        elif (
            participation.status == ParticipationStatus.COMMANDED
            and now > participation.commanded_at + confirm_window(device.manufacturer.integration_channel)
        ):
            still = f"still {shown} at {reading.measured_at:%H:%M}" if shown else "no reading since"
            participation.status = ParticipationStatus.NOT_RESPONDING
            participation.reason = (
                f"Not responding — accepted by the OEM at {participation.commanded_at:%H:%M} UTC, {still}"
                f"{' UTC' if shown else ''}."
            )
            changed.append(participation)
            counts["not_responding"] += 1
    for participation in changed:
        participation.last_updated = now
    update_objects(changed, ["status", "confirmed_at", "reason_code", "reason", "last_updated"])
    silent = [p for p in changed if p.status == ParticipationStatus.NOT_RESPONDING]
    participations_alert(event=event, silent=silent, recovered=recovered, at=now)
    return counts


# -- alerts, through the fleet's (dispatch may call the fleet; the fleet knows nothing of dispatch) ---------


def not_responding_cause(event_id: int, device_id: int) -> str:
    return f"dispatch:not_responding:event:{event_id}:device:{device_id}"


def not_responding_cause_prefix(event_id: int) -> str:
    return f"dispatch:not_responding:event:{event_id}:"


def participation_floor_cause(event_id: int) -> str:
    return f"dispatch:participation_below_floor:event:{event_id}"


def _event_label(event: DispatchEvent) -> str:
    return f"Dispatch event #{event.pk} “{event.name}”"[:200]


def participations_alert(*, event: DispatchEvent, silent: list, recovered: list, at: datetime) -> None:
    """The not-responding rule: a device the OEM accepted a command for whose telemetry does not show it doing
    it raises an alert (one per event and device); it is resolved when the device's telemetry confirms it, or
    when the event is over (`event_alerts_close`)."""
    from fleet.choices import AlertSeverity, AlertSubtype, AlertType
    from fleet.services import AlertRaise, alerts_raise, alerts_resolve

    if silent:
        alerts_raise(
            workspace_id=event.workspace_id,
            alerts=[
                AlertRaise(
                    cause=not_responding_cause(event.pk, p.device_id),
                    type=AlertType.DISPATCH,
                    subtype=AlertSubtype.DEVICE_NOT_RESPONDING,
                    severity=AlertSeverity.WARNING,
                    title=f"Device not responding: {p.device.system_identifier}",
                    description=p.reason,
                    device_id=p.device_id,
                    subject_label=_event_label(event),
                    subject_ref=f"dispatch_event:{event.pk}",
                    source_system="dispatch",
                )
                for p in silent
            ],
            at=at,
        )
    if recovered:
        alerts_resolve(
            workspace_id=event.workspace_id,
            causes=[not_responding_cause(event.pk, p.device_id) for p in recovered],
            reason="Its telemetry now shows it doing what it was asked.",
            at=at,
        )


def participation_floor_check(*, event: DispatchEvent, taking_part: int, targeted: int, when: str, at) -> None:
    """The participation rule: when an action starts (devices included) and when the event completes (devices
    confirmed by their telemetry), a share of the targeted devices below the floor of the event's strategy
    version raises the event's alert (critical for a production event); a share at or above it resolves it.
    No floor set: nothing."""
    from fleet.choices import AlertSeverity, AlertSubtype, AlertType
    from fleet.services import AlertRaise, alert_raise, alerts_resolve

    floor = event.strategy.participation_floor_percent
    if floor is None:
        return
    share = 100.0 * taking_part / targeted if targeted else 0.0
    said = f"{when}: {taking_part} of {targeted} targeted devices ({share:.0f} %)"
    if share >= floor:
        alerts_resolve(
            workspace_id=event.workspace_id,
            causes=[participation_floor_cause(event.pk)],
            reason=f"{said}, at or above the floor of {floor} %.",
            at=at,
        )
        return
    alert_raise(
        workspace_id=event.workspace_id,
        alert=AlertRaise(
            cause=participation_floor_cause(event.pk),
            type=AlertType.DISPATCH,
            subtype=AlertSubtype.PARTICIPATION_BELOW_FLOOR,
            severity=AlertSeverity.WARNING if event.is_test else AlertSeverity.CRITICAL,
            title=f"Participation below the floor: {event.name}"[:200],
            description=f"{said}; the program's floor is {floor} %.",
            subject_label=_event_label(event),
            subject_ref=f"dispatch_event:{event.pk}",
            source_system="dispatch",
        ),
        at=at,
    )


def event_alerts_close(*, event: DispatchEvent, status: str, at) -> None:
    """The event is over (completed or cancelled): its devices' not-responding alerts are resolved, and a
    cancelled event's participation alert too (a completed one's was judged by `_event_complete`)."""
    from fleet.services import alerts_resolve

    reason = f"{_event_label(event)} is {'cancelled' if status == DispatchEventStatus.CANCELLED else 'over'}."
    alerts_resolve(
        workspace_id=event.workspace_id, cause_prefix=not_responding_cause_prefix(event.pk), reason=reason, at=at
    )
    if status == DispatchEventStatus.CANCELLED:
        alerts_resolve(
            workspace_id=event.workspace_id, causes=[participation_floor_cause(event.pk)], reason=reason, at=at
        )


def _event_complete(*, event: DispatchEvent, now: datetime) -> bool:
    from dispatch.services import dispatch_event_set_status

    if Command.objects.filter(dispatch_event=event, status__in=[CommandStatus.PENDING, CommandStatus.SENT]).exists():
        return False  # restores still going
    counts = event_participation_counts(event=event)
    unrestored = Participation.objects.filter(event=event, commanded_at__isnull=False, restored_at__isnull=True).count()
    event.completed_end_to_end = counts["confirmed"] > 0 and unrestored == 0
    event.save(update_fields=["completed_end_to_end", "last_updated"])
    summary = (
        f"{counts['targeted']} targeted, {counts['commanded']} commanded, {counts['confirmed']} confirmed, "
        f"{counts['restored']} restored, {counts['excluded']} excluded, {counts['opted_out']} opted out, "
        f"{counts['failed']} failed."
    )
    participation_floor_check(
        event=event, taking_part=counts["confirmed"], targeted=counts["targeted"], when="At completion", at=now
    )
    dispatch_event_set_status(event=event, status=DispatchEventStatus.COMPLETED, reason=summary)
    transaction.on_commit(lambda: event_report_queue(event_id=event.pk, created=event.created))
    return True


REPORT_QUEUED_KEY = "dispatch:report-queued:{}:{}"


def event_report_queue(*, event_id: int, created: datetime) -> bool:
    """Queue the compile of a completed event's report, once per ten minutes at most (the tick's sweep below
    would otherwise queue it again while it waits in the broker). The mark names the event by its id and its
    creation time: an id used again (a database rebuilt under the same cache) is another event."""
    from dispatch.tasks import event_report_compile_task

    key = REPORT_QUEUED_KEY.format(event_id, created.timestamp())
    if not cache.add(key, 1, timeout=600):
        return False
    try:
        event_report_compile_task.delay(event_id)
    except Exception:
        # the event is completed; the tick's sweep queues the report again once the broker is back
        cache.delete(key)
        log.exception("Could not queue the report of dispatch event %s", event_id)
        return False
    return True


def event_reports_queue_missing(*, now: datetime, within: timedelta = timedelta(days=2), limit: int = 20) -> int:
    """The safety net: events completed lately that have no report (their compile was lost) get one."""
    missing = DispatchEvent.objects.filter(
        status=DispatchEventStatus.COMPLETED, ends_at__gte=now - within, report__isnull=True
    ).values_list("pk", "created")[:limit]
    return sum(event_report_queue(event_id=pk, created=created) for pk, created in missing)


def dispatch_event_advance(*, event_id: int, now: datetime) -> str:
    """Take the steps of one running event whose time has come (see the module's docstring)."""
    with transaction.atomic():
        event = (
            DispatchEvent.objects.select_for_update(skip_locked=True)
            .select_related("strategy", "program")
            .filter(pk=event_id, status=DispatchEventStatus.IN_PROGRESS)
            .first()
        )
        if event is None:
            return "locked or not running"
        actions = list(event.actions.order_by("starts_at", "pk"))
        done = []
        for index, action in enumerate(actions):
            following = actions[index + 1] if index + 1 < len(actions) else None
            if action.fanned_out_at is None and action.starts_at <= now:
                if now < action.ends_at:
                    action_fan_out(event=event, action=action, now=now)
                    done.append(f"{action}: started")
                else:
                    action.fanned_out_at = action.restore_started_at = now
                    action.note = "Its window passed before the engine could start it (was the scheduler down?)."
                    action.save(update_fields=["fanned_out_at", "restore_started_at", "note", "last_updated"])
                    done.append(f"{action}: missed")
            if action.fanned_out_at and action.restore_started_at is None and action.ends_at <= now:
                action_restore(event=event, action=action, next_action=following, now=now)
                done.append(f"{action}: restoring")
        participations_confirm(event=event, now=now)
        ended = event.ends_at <= now and all(a.restore_started_at for a in actions)
        if ended and _event_complete(event=event, now=now):
            done.append("completed")
        return "; ".join(done) or "running"


def dispatch_events_start_due(*, now: datetime) -> list[int]:
    """Scheduled events whose start has come go in progress (a production event whose program is no longer
    launched is cancelled instead, with why)."""
    from dispatch.services import dispatch_event_set_status

    started = []
    for event_id in DispatchEvent.objects.filter(status=DispatchEventStatus.SCHEDULED, starts_at__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            event = (
                DispatchEvent.objects.select_for_update(skip_locked=True)
                .select_related("program")
                .filter(pk=event_id, status=DispatchEventStatus.SCHEDULED)
                .first()
            )
            if event is None:
                continue
            if not event.is_test and not event.program.production_dispatch_enabled:
                dispatch_event_set_status(
                    event=event,
                    status=DispatchEventStatus.CANCELLED,
                    reason="Production dispatch is not enabled for this program: only test events may run.",
                )
                continue
            dispatch_event_set_status(event=event, status=DispatchEventStatus.IN_PROGRESS, reason="Started on time.")
            started.append(event.pk)
    return started


SEND_BATCHES_PER_OEM = 8  # an OEM's commands of one hand-off go in at least this many batches, sent side by side


def commands_queue_due(*, now: datetime, limit: int = 5000) -> int:
    """Hand workers the commands due by the next hand-off (DISPATCH_QUEUE_SECONDS; in order of their ramp
    slot), in batches of one OEM's commands, and again those whose batch was lost or is due for a retry:
    queued long ago and still pending, or `sent` with a lease run out (a worker died mid-call; a transient
    error's backoff is over). Without a broker (tasks run in this process) only what is due now goes.
    Returns the commands handed.

    Paced per OEM (at most `limit` each): what workers hold of an OEM's commands (queued, or leased by a
    batch) is topped up to what its rate limit lets through in DISPATCH_QUEUE_AHEAD_SECONDS (its calls per
    command counted), and the backlog stays here in `not_before` order. So a long backlog (10,000 commands to
    an OEM allowing 5 calls a second) never sits in the broker past DISPATCH_REQUEUE_AFTER_SECONDS to be
    queued again, and workers are not all held in one OEM's rate limit while the others' commands wait.

    A batch (at most DISPATCH_SEND_BATCH commands, and each OEM's share split into at least
    SEND_BATCHES_PER_OEM batches, so its calls overlap) is one task: the broker, the worker's consumer and
    the database see one message and a few statements per batch instead of per command."""
    from dispatch.tasks import commands_send_task
    from integrations.adapters import NotSupported, adapter_class

    horizon = now if settings.CELERY_TASK_ALWAYS_EAGER else now + timedelta(seconds=settings.DISPATCH_QUEUE_SECONDS)
    stale = now - timedelta(seconds=settings.DISPATCH_REQUEUE_AFTER_SECONDS)
    channel = "device__manufacturer__integration_channel"
    lost = Q(status=CommandStatus.PENDING, queued_at__lt=stale) | Q(status=CommandStatus.SENT, lease_until__lt=now)
    waiting = Command.objects.filter(not_before__lte=horizon).filter(
        Q(status=CommandStatus.PENDING, queued_at__isnull=True) | lost
    )
    held = Q(status=CommandStatus.PENDING, queued_at__gte=stale) | Q(status=CommandStatus.SENT, lease_until__gte=now)
    with transaction.atomic():
        in_work = dict(Command.objects.filter(held).values_list(channel).annotate(n=Count("pk")))
        batches = []
        for oem in waiting.values_list(channel, flat=True).distinct().order_by():
            rate = settings.OEM_RATE_LIMITS.get(oem, (0, 0))[0]
            room = limit
            if rate:
                try:
                    calls = adapter_class(oem).calls_per_command
                except NotSupported:
                    calls = 1  # a channel with no adapter yet: its commands fail at once, with why
                ahead = math.ceil(rate * settings.DISPATCH_QUEUE_AHEAD_SECONDS / calls)
                room = min(room, ahead - in_work.get(oem, 0))
            if room <= 0:
                continue
            rows = list(
                waiting.filter(**{channel: oem})
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("not_before", "pk")
                .values_list("pk", "not_before", "status")[:room]
            )
            size = max(1, min(settings.DISPATCH_SEND_BATCH, math.ceil(len(rows) / SEND_BATCHES_PER_OEM)))
            for rank, first in enumerate(range(0, len(rows), size)):
                batches.append((rows[first][1], rank, rows[first][0], rows[first : first + size]))
        # OEMs take turns within a ramp slot: workers take batches in order, and a run of one OEM's batches
        # would hold every worker in that OEM's rate limit while the others' sit idle
        batches.sort(key=lambda batch: batch[:3])
        handed = [pk for *_, rows in batches for pk, _, _ in rows]
        again = [pk for *_, rows in batches for pk, _, status in rows if status == CommandStatus.SENT]
        Command.objects.filter(pk__in=handed).update(queued_at=now)
        if again:
            # given back: its old lease is void, and it is not handed once more until this batch had its time
            Command.objects.filter(pk__in=again).update(
                lease_owner="", lease_until=now + timedelta(seconds=settings.DISPATCH_REQUEUE_AFTER_SECONDS)
            )

        def queue():
            for *_, rows in batches:
                commands_send_task.delay([pk for pk, _, _ in rows])

        transaction.on_commit(queue)
    return len(handed)


def event_telemetry_cadence(channel: str) -> timedelta:
    from integrations.adapters import adapter_class

    if settings.DISPATCH_EVENT_TELEMETRY_SECONDS:
        return timedelta(seconds=settings.DISPATCH_EVENT_TELEMETRY_SECONDS)
    adapter = adapter_class(channel)
    return adapter.event_telemetry_cadence or adapter.telemetry_cadence


def event_telemetry_queue(*, now: datetime) -> int:
    """While events run, their taking-part devices are read at their OEM's fastest allowed cadence (to
    confirm their commands), one sync task per integration and cadence: the first tick of each period
    queues it (a cache key holds the others off), for the devices whose last reading is older than that."""
    from django.core.cache import cache

    from dispatch.choices import PARTICIPATING
    from integrations.models import WorkspaceIntegration
    from integrations.tasks import telemetry_sync_task

    rows = Participation.objects.filter(
        event__status=DispatchEventStatus.IN_PROGRESS, status__in=PARTICIPATING
    ).values_list(
        "workspace_id",
        "device__manufacturer__integration_channel",
        "device_id",
        "device__latest_telemetry__received_at",  # when the portal last read it (the pace is the portal's)
    )
    stale: dict[tuple[int, str], set[int]] = {}
    for workspace_id, channel, device_id, last_read in rows:
        if last_read is None or now - last_read >= event_telemetry_cadence(channel):
            stale.setdefault((workspace_id, channel), set()).add(device_id)
    if not stale:
        return 0
    integrations = WorkspaceIntegration.objects.filter(
        workspace_id__in={ws for ws, _ in stale}, channel__in={ch for _, ch in stale}, enabled=True
    ).values_list("pk", "workspace_id", "channel")
    queued = 0
    for pk, workspace_id, channel in integrations:
        ids = stale.get((workspace_id, channel))
        cadence = event_telemetry_cadence(channel)
        if ids and cache.add(f"dispatch:event-telemetry:{pk}", 1, timeout=max(1, int(cadence.total_seconds()))):
            telemetry_sync_task.delay(pk, sorted(ids))
            queued += 1
    return queued


def dispatch_tick(*, now: datetime | None = None) -> dict:
    """One beat of the event clock. Safe to run twice at once and to die half-way."""
    from dispatch.schedules import schedules_materialize

    now = now or timezone.now()
    created = schedules_materialize(now=now)
    started = dispatch_events_start_due(now=now)
    advanced = {}
    for event_id in DispatchEvent.objects.filter(status=DispatchEventStatus.IN_PROGRESS).values_list("pk", flat=True):
        advanced[event_id] = dispatch_event_advance(event_id=event_id, now=now)
    queued = commands_queue_due(now=now)
    read = event_telemetry_queue(now=now)
    reports = event_reports_queue_missing(now=now)
    return {
        "created": created,
        "started": started,
        "advanced": advanced,
        "queued": queued,
        "telemetry": read,
        "reports": reports,
    }


# -- staff and integrators ------------------------------------------------------------------------------------


def dispatch_event_preview(*, event: DispatchEvent, now: datetime | None = None) -> dict:
    """Who the event would take, classified as of now for each of its actions (before it is scheduled or
    cancelled): {targeted, actions: [{action, included, excluded_by_reason: {label: n}}]}. A read."""
    now = now or timezone.now()
    rows = event_target_rows(event=event)
    opted_out = set(
        Participation.objects.filter(event=event, status=ParticipationStatus.OPTED_OUT).values_list(
            "device_id", flat=True
        )
    )
    actions = []
    for action in event.actions.order_by("starts_at", "pk"):
        included, excluded = 0, {}
        for row in rows:
            if row["pk"] in opted_out:
                excluded["Opted out"] = excluded.get("Opted out", 0) + 1
                continue
            verdict = classify(row, action_type=action.action_type, strategy=event.strategy, now=now)
            if verdict.included:
                included += 1
            else:
                label = str(ExclusionReason(verdict.code).label)
                excluded[label] = excluded.get(label, 0) + 1
        actions.append({"action": action, "included": included, "excluded_by_reason": dict(sorted(excluded.items()))})
    return {"targeted": len(rows), "actions": actions}


def dispatch_event_restore_now(*, event: DispatchEvent, now: datetime) -> int:
    """A running event was cancelled: nothing more is sent, and every device holding a commanded state is
    restored at once (no ramp). The caller holds the event's lock."""
    _skip_unsent(event=event, now=now, code=ExclusionReason.WINDOW_ENDED, reason="The event was cancelled.")
    holding = _holding(event)
    action = event.actions.filter(fanned_out_at__isnull=False).order_by("-starts_at").first()
    if action is None:
        return 0
    commands = _restore_commands(event=event, action=action, participations=holding, types=None, at=now)
    for command in commands:
        command.not_before = now  # at once, not ramped
    Command.objects.bulk_create(commands, batch_size=2000, ignore_conflicts=True)
    event.actions.filter(restore_started_at__isnull=True).update(restore_started_at=now, last_updated=now)
    return len(commands)


@transaction.atomic
def participation_opt_out(
    *, participation: Participation, reason: str, actor, source: AuditSource | str = AuditSource.SERVICE
) -> Participation:
    """Take one device out of one event, with the reason: it is restored alone (at once) if it holds a
    commanded state, its waiting command is dropped, and it never takes part again in this event."""
    if not reason.strip():
        raise ApplicationError("Opting a device out needs a reason.")
    locked = Participation.objects.select_for_update().select_related("event", "device").get(pk=participation.pk)
    event = locked.event
    if event.status not in (DispatchEventStatus.SCHEDULED, DispatchEventStatus.IN_PROGRESS):
        raise ApplicationError(f"“{event.name}” is {event.get_status_display().lower()}: nothing to opt out of.")
    if locked.status == ParticipationStatus.OPTED_OUT:
        raise ApplicationError("This device is already opted out of this event.")
    now = timezone.now()
    holding = locked.status in NEEDS_RESTORE
    in_flight = locked.commands.filter(purpose=CommandPurpose.ACTION, status=CommandStatus.SENT).exists()
    before = locked.status
    PARTICIPATION_TRANSITIONS.check(locked.status, ParticipationStatus.OPTED_OUT)
    locked.status, locked.opted_out_at, locked.reason = ParticipationStatus.OPTED_OUT, now, reason.strip()[:300]
    locked.reason_code = ""
    locked.opted_out_by = actor if getattr(actor, "pk", None) else None
    locked.save(update_fields=["status", "opted_out_at", "reason", "reason_code", "opted_out_by", "last_updated"])
    locked.commands.filter(purpose=CommandPurpose.ACTION, status=CommandStatus.PENDING).update(
        status=CommandStatus.SKIPPED, status_reason="Opted out of the event.", completed_at=now, last_updated=now
    )
    if (holding or in_flight) and locked.action_id:
        # restored alone and at once; a command still in flight is given a minute to land first
        at = now + (timedelta(minutes=1) if in_flight else timedelta())
        types = {locked.device_id: locked.device.device_type}
        commands = _restore_commands(event=event, action=locked.action, participations=[locked], types=types, at=at)
        for command in commands:
            command.idempotency_key += ":opt-out"
            command.not_before = at
        Command.objects.bulk_create(commands, ignore_conflicts=True)
    audit_record(
        actor=actor,
        action=AuditAction.PARTICIPATION_OPTED_OUT,
        target=locked,
        source=source,
        changes={"status": [before, ParticipationStatus.OPTED_OUT]},
        reason=reason,
    )
    event_emit(
        workspace_id=locked.workspace_id,
        type=DispatchEventType.PROGRAM_EVENT_OPTED_OUT,
        key=f"{DispatchEventType.PROGRAM_EVENT_OPTED_OUT}:{event.pk}:{locked.device_id}",
        data=participation_data(locked),
    )
    participation.refresh_from_db()
    return participation


@transaction.atomic
def participation_opt_out_device(
    *, event: DispatchEvent, device, reason: str, actor, source: AuditSource | str = AuditSource.SERVICE
) -> Participation:
    """Opt a device out of an event by the device: before the event has selected its devices the opt-out is
    kept (a participation born opted out, which the selection leaves alone); after, as `participation_opt_out`.
    The device must be one the event targets (enrolled in its program)."""
    from programs.models import Enrollment

    if not reason.strip():
        raise ApplicationError("Opting a device out needs a reason.")
    if not Enrollment.objects.filter(device_id=device.pk, program_id=event.program_id).exists():
        raise ApplicationError(f"Device {device.pk} is not enrolled in {event.program}: the event does not target it.")
    participation = Participation.objects.filter(event=event, device_id=device.pk).first()
    if participation is not None:
        return participation_opt_out(participation=participation, reason=reason, actor=actor, source=source)
    if event.status not in (DispatchEventStatus.DRAFT, DispatchEventStatus.SCHEDULED, DispatchEventStatus.IN_PROGRESS):
        raise ApplicationError(f"“{event.name}” is {event.get_status_display().lower()}: nothing to opt out of.")
    participation, _ = Participation.objects.get_or_create(
        event=event,
        device_id=device.pk,
        defaults={
            "workspace_id": event.workspace_id,
            "status": ParticipationStatus.OPTED_OUT,
            "reason": reason.strip()[:300],
            "opted_out_at": timezone.now(),
            "opted_out_by": actor if getattr(actor, "pk", None) else None,
        },
    )
    audit_record(
        actor=actor, action=AuditAction.PARTICIPATION_OPTED_OUT, target=participation, source=source, reason=reason
    )
    event_emit(
        workspace_id=event.workspace_id,
        type=DispatchEventType.PROGRAM_EVENT_OPTED_OUT,
        key=f"{DispatchEventType.PROGRAM_EVENT_OPTED_OUT}:{event.pk}:{device.pk}",
        data=participation_data(participation),
    )
    return participation


def participations_follow_commands(items: list[tuple[Command, str, str, str]], *, now: datetime) -> None:
    """Engine commands reached an outcome — (command, status, reason, code) —: their participations follow
    (commanded, failed, excluded at send time, restored, restore failed). Called by the command moves in
    their transaction: one statement locks the participations with what says whether their actions are over
    already, one writes them."""
    participations = {
        p.pk: p
        for p in Participation.objects.select_for_update(of=("self",))
        .annotate(event_status=F("event__status"))
        .filter(pk__in={command.participation_id for command, *_ in items})
    }
    restoring = set()
    if any(command.purpose == CommandPurpose.ACTION and command.action_id for command, *_ in items):
        action_ids = {command.action_id for command, *_ in items if command.action_id}
        restoring = set(
            DispatchAction.objects.filter(pk__in=action_ids, restore_started_at__isnull=False).values_list(
                "pk", flat=True
            )
        )
    touched, late = {}, []
    for command, status, reason, code in items:
        participation = participations.get(command.participation_id)
        if participation is None:
            continue
        touched[participation.pk] = participation
        superseded = (
            command.purpose == CommandPurpose.ACTION
            and command.action_id is not None
            and participation.action_id is not None
            and command.action_id != participation.action_id
        )
        if superseded and status != CommandStatus.SUCCESS:
            # an earlier action's command not sent (or failed) after its device was handed to the next action:
            # that action's own command decides
            continue
        if command.purpose == CommandPurpose.ACTION:
            if status == CommandStatus.SUCCESS:
                participation.commanded_at = now
                # a retry landing after its opted-out device was restored: restored again
                restored_already = participation.status == ParticipationStatus.OPTED_OUT and participation.restored_at

                _move(participation, ParticipationStatus.COMMANDED)
                if command.action_id is not None and (
                    (command.action_id in restoring and not superseded)  # the next action holds it now
                    or participation.event_status != DispatchEventStatus.IN_PROGRESS
                    or restored_already
                ):
                    late.append((command, participation))
            elif status == CommandStatus.FAILED and _move(participation, ParticipationStatus.FAILED):
                participation.reason_code, participation.reason = "", f"Command failed: {reason}"[:300]
            elif status == CommandStatus.SKIPPED and _move(participation, ParticipationStatus.EXCLUDED):
                # not sent after all (checked again at send time: Storm Guard, the device or its integration)
                participation.reason_code = code or ExclusionReason.WINDOW_ENDED
                participation.reason = reason[:300]
        elif command.purpose == CommandPurpose.RESTORE:
            if status == CommandStatus.SUCCESS:
                participation.restored_at = now
                if participation.status != ParticipationStatus.OPTED_OUT:
                    _move(participation, ParticipationStatus.RESTORED)
            elif status in (CommandStatus.FAILED, CommandStatus.SKIPPED):
                participation.reason = f"Restore failed: {reason}"[:300]
                if participation.status != ParticipationStatus.OPTED_OUT:
                    _move(participation, ParticipationStatus.RESTORE_FAILED)
    for participation in touched.values():
        participation.last_updated = now
    update_objects(
        list(touched.values()),
        ["status", "reason_code", "reason", "commanded_at", "restored_at", "last_updated"],
    )
    for command, participation in late:
        # it landed after its action's restore had gone out (it was in flight at the end): restore it now
        event = DispatchEvent.objects.select_related("strategy").get(pk=command.dispatch_event_id)
        restores = _restore_commands(
            event=event, action=command.action, participations=[participation], types=None, at=now
        )
        for restore in restores:
            restore.idempotency_key += ":late"
            restore.not_before = now
        Command.objects.bulk_create(restores, ignore_conflicts=True)
