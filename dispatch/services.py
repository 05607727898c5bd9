"""Writes of dispatch: program events, their actions, and commands. Atomic and audited.

Running an event (selecting eligible devices, sending ramped commands, restoring) is built on these by the
dispatch engine; these services own the rules every path must respect.
"""

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dispatch.choices import (
    COMMAND_TRANSITIONS,
    DISPATCH_EVENT_TRANSITIONS,
    CommandPurpose,
    CommandSlug,
    CommandStatus,
    DispatchEventStatus,
    DispatchTrigger,
    ExclusionReason,
    ParticipationStatus,
)
from dispatch.events import DispatchEventType, command_data, dispatch_event_data
from dispatch.models import BatchCommand, Command, DispatchAction, DispatchEvent
from fleet.choices import AlertSeverity, AlertSubtype, AlertType, DeviceState
from fleet.services import AlertRaise, alerts_raise, alerts_resolve, device_tags_get_or_create
from programs.models import Program
from programs.selectors import program_current_strategy
from texture_portal.audit import audit_record, audit_record_many
from texture_portal.bulk import update_objects
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events.services import event_emit, events_emit_many
from texture_portal.events.subscribers import subscribed_types
from texture_portal.exceptions import ApplicationError
from texture_portal.tenancy import require_same_workspace

log = logging.getLogger(__name__)


@transaction.atomic
def dispatch_event_create(
    *,
    program: Program,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    actor,
    is_test: bool = True,
    trigger: DispatchTrigger | str = DispatchTrigger.MANUAL,
    target_tags: list[str] = (),
    actions: list[dict] = (),
    signal_reference: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> DispatchEvent:
    """Create a draft event with the program's current strategy version (and, optionally, its actions:
    [{"action_type", "starts_at", "ends_at"}]). Production events need production dispatch enabled."""
    strategy = program_current_strategy(program=program)
    if strategy is None:
        raise ApplicationError(f"{program} has no event strategy.")
    if not is_test and not program.production_dispatch_enabled:
        raise ApplicationError(f"{program} is not launched for production dispatch: only test events may run.")
    event = DispatchEvent(
        workspace_id=program.workspace_id,
        program=program,
        strategy=strategy,
        name=name,
        is_test=is_test,
        trigger=trigger,
        starts_at=starts_at,
        ends_at=ends_at,
        signal_reference=signal_reference,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    event.full_clean()
    event.save()
    if target_tags:
        event.target_tags.set(device_tags_get_or_create(workspace=program.workspace, names=target_tags))
    for action in actions:
        DispatchAction.objects.create(workspace_id=event.workspace_id, event=event, **action)
    audit_record(actor=actor, action=AuditAction.DISPATCH_EVENT_CREATED, target=event, source=source)
    return event


def dispatch_event_problems(*, event: DispatchEvent) -> list[str]:
    """What keeps an event from being scheduled under its strategy version (empty: it may be scheduled)."""
    strategy = event.strategy
    problems = []
    actions = list(event.actions.all())
    if not actions:
        problems.append("The event has no actions.")
    duration = (event.ends_at - event.starts_at).total_seconds() / 60
    if duration > strategy.max_event_duration_minutes:
        problems.append(
            f"The event lasts {duration:.0f} minutes; "
            f"the strategy allows at most {strategy.max_event_duration_minutes}."
        )
    for action in actions:
        if action.action_type not in strategy.allowed_event_types:
            problems.append(f"“{action.get_action_type_display()}” is not an event type this strategy allows.")
        if action.starts_at < event.starts_at or action.ends_at > event.ends_at:
            problems.append(f"The {action.get_action_type_display().lower()} window lies outside the event window.")
    ordered = sorted(actions, key=lambda a: a.starts_at)
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        if later.starts_at < earlier.ends_at:
            problems.append(f"Actions overlap: {earlier} and {later}.")
    if not event.is_test and not event.program.production_dispatch_enabled:
        problems.append("Production dispatch is not enabled for this program: only test events may run.")
    return problems


EVENT_STATUS_EVENT = {
    DispatchEventStatus.SCHEDULED: DispatchEventType.PROGRAM_EVENT_SCHEDULED,
    DispatchEventStatus.IN_PROGRESS: DispatchEventType.PROGRAM_EVENT_STARTED,
    DispatchEventStatus.COMPLETED: DispatchEventType.PROGRAM_EVENT_COMPLETED,
    DispatchEventStatus.CANCELLED: DispatchEventType.PROGRAM_EVENT_CANCELLED,
}
COMMAND_STATUS_EVENT = {
    CommandStatus.SUCCESS: DispatchEventType.COMMAND_SUCCEEDED,
    CommandStatus.FAILED: DispatchEventType.COMMAND_FAILED,
}


def _dispatch_event_move(*, event: DispatchEvent, status, actor, source, reason: str = "") -> DispatchEvent:
    locked = DispatchEvent.objects.select_for_update().get(pk=event.pk)
    DISPATCH_EVENT_TRANSITIONS.check(locked.status, status)
    before = locked.status
    locked.status = status
    locked.status_reason = reason[:300]
    locked.save(update_fields=["status", "status_reason", "last_updated"])
    entry = audit_record(
        actor=actor,
        action=AuditAction.DISPATCH_EVENT_STATUS_CHANGED,
        target=locked,
        source=source,
        changes={"status": [before, str(status)]},
        reason=reason,
    )
    if status in EVENT_STATUS_EVENT:
        event_emit(
            workspace_id=locked.workspace_id,
            type=EVENT_STATUS_EVENT[status],
            key=f"{EVENT_STATUS_EVENT[status]}:{locked.pk}:{entry.pk}",
            data=dispatch_event_data(locked),
        )
    if status in (DispatchEventStatus.COMPLETED, DispatchEventStatus.CANCELLED):
        from dispatch.engine import event_alerts_close

        event_alerts_close(event=locked, status=status, at=timezone.now())
    event.refresh_from_db()
    return event


@transaction.atomic
def dispatch_event_schedule(*, event: DispatchEvent, actor, source=AuditSource.SERVICE) -> DispatchEvent:
    """draft → scheduled, once the event satisfies its strategy and starts in the future."""
    problems = dispatch_event_problems(event=event)
    if event.starts_at <= timezone.now():
        problems.append("The event starts in the past.")
    if problems:
        raise ApplicationError(
            f"“{event.name}” cannot be scheduled: " + " ".join(problems), extra={"problems": problems}
        )
    return _dispatch_event_move(event=event, status=DispatchEventStatus.SCHEDULED, actor=actor, source=source)


@transaction.atomic
def dispatch_event_cancel(*, event: DispatchEvent, actor, reason: str, source=AuditSource.SERVICE) -> DispatchEvent:
    """Cancel with a reason. A running event sends nothing more and restores its devices at once."""
    if not reason.strip():
        raise ApplicationError("Cancelling an event needs a reason.")
    running = DispatchEvent.objects.select_for_update().get(pk=event.pk).status == DispatchEventStatus.IN_PROGRESS
    event = _dispatch_event_move(
        event=event, status=DispatchEventStatus.CANCELLED, actor=actor, source=source, reason=reason
    )
    if running:
        from dispatch.engine import dispatch_event_restore_now

        dispatch_event_restore_now(event=event, now=timezone.now())
    return event


@transaction.atomic
def dispatch_event_set_status(
    *,
    event: DispatchEvent,
    status: DispatchEventStatus | str,
    actor=None,
    reason: str = "",
    source=AuditSource.TASK,
) -> DispatchEvent:
    """The engine's moves (scheduled → in_progress → completed); the same transition table applies."""
    return _dispatch_event_move(event=event, status=status, actor=actor, source=source, reason=reason)


@transaction.atomic
def command_create(
    *,
    device,
    slug: CommandSlug | str,
    input: dict,
    idempotency_key: str,
    actor,
    dispatch_event: DispatchEvent | None = None,
    action: DispatchAction | None = None,
    not_before: datetime | None = None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> Command:
    """A pending command for a device. The same idempotency key in the workspace returns the existing
    command instead of creating a second one."""
    require_same_workspace(device.workspace_id, dispatch_event, action)
    existing = Command.objects.filter(workspace_id=device.workspace_id, idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    command = Command(
        workspace_id=device.workspace_id,
        device=device,
        dispatch_event=dispatch_event,
        action=action,
        slug=slug,
        input=input,
        idempotency_key=idempotency_key,
        not_before=not_before or timezone.now(),
        requested_by=actor if getattr(actor, "pk", None) else None,
    )
    # the unique key is left to the database (its constraint is the only race-proof check; the check
    # constraints repeat the slug and status choices full_clean validates anyway)
    command.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():  # a savepoint: the outer transaction stays usable after a lost race
            command.save()
    except IntegrityError:
        # a concurrent request with the same key passed the check above and saved first: same answer as a
        # repeat request
        existing = Command.objects.filter(workspace_id=device.workspace_id, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing
    audit_record(actor=actor, action=AuditAction.COMMAND_CREATED, target=command, source=source)
    return command


# what a status change writes (and `command_set_status` copies back onto the caller's instance)
COMMAND_MOVE_FIELDS = [
    "status", "status_reason", "sent_at", "attempts", "completed_at", "lease_until", "lease_owner",
    "oem_reference", "last_updated",
]  # fmt: skip


@transaction.atomic
def command_set_status(
    *,
    command: Command,
    status: CommandStatus | str,
    actor=None,
    reason: str = "",
    reason_code: str = "",
    oem_reference: str = "",
    source: AuditSource | str = AuditSource.TASK,
) -> Command:
    """Move a command along pending → sent → success | failed (or pending → skipped, with a reason). An
    engine command's participation follows its outcome (`reason_code`: why a skipped one was not sent)."""
    locked = Command.objects.select_for_update().get(pk=command.pk)
    move = CommandMove(locked, str(status), reason=reason, code=reason_code, oem_reference=oem_reference)
    _commands_move([move], actor=actor, source=source)
    for field in COMMAND_MOVE_FIELDS:
        setattr(command, field, getattr(locked, field))
    return command


@dataclass
class CommandMove:
    """A command's next status, for `_commands_move`; the command is locked in the caller's transaction."""

    command: Command
    status: str
    reason: str = ""
    code: str = ""  # why a skipped one was not sent: its participation's exclusion reason
    oem_reference: str = ""
    also: dict = dataclass_field(default_factory=dict)  # more fields written in the same statement


def _commands_move(moves: list[CommandMove], *, actor=None, source: AuditSource | str = AuditSource.TASK) -> None:
    """`command_set_status` for many commands the caller holds locked, set-based: per kind of move one
    UPDATE, one audit insert and one event insert, and the participations they touch in two statements."""
    from dispatch.engine import participations_follow_commands

    now = timezone.now()
    groups: dict[tuple, list[tuple[CommandMove, str]]] = defaultdict(list)
    for move in moves:
        locked, status = move.command, move.status
        COMMAND_TRANSITIONS.check(locked.status, status)
        if status == CommandStatus.SKIPPED and not move.reason.strip():
            raise ApplicationError("A skipped command needs a reason.")
        before = locked.status
        locked.status, locked.status_reason, locked.last_updated = status, move.reason[:500], now
        fields = ["status", "status_reason", "last_updated"]
        if status == CommandStatus.SENT:
            locked.sent_at, locked.attempts = now, locked.attempts + 1
            fields += ["sent_at", "attempts"]
        if status in (CommandStatus.SUCCESS, CommandStatus.FAILED, CommandStatus.SKIPPED):
            locked.completed_at, locked.lease_until, locked.lease_owner = now, None, ""
            fields += ["completed_at", "lease_until", "lease_owner"]
        if move.oem_reference:
            locked.oem_reference = move.oem_reference
            fields.append("oem_reference")
        for name, value in move.also.items():
            setattr(locked, name, value)
            fields.append(name)
        groups[(before, status, tuple(fields))].append((move, before))
    for (before, status, fields), members in groups.items():
        commands = [move.command for move, _ in members]
        update_objects(commands, list(fields))
        audit_record_many(
            actor=actor,
            action=AuditAction.COMMAND_STATUS_CHANGED,
            targets=commands,
            source=source,
            changes_by_pk={c.pk: {"status": [before, status]} for c in commands},
            reason_by_pk={move.command.pk: move.reason for move, _ in members},
        )
        if status in COMMAND_STATUS_EVENT:
            by_workspace = defaultdict(list)
            for command in commands:
                by_workspace[command.workspace_id].append(
                    (f"{COMMAND_STATUS_EVENT[status]}:{command.pk}", command_data(command))
                )
            for workspace_id, items in by_workspace.items():
                if COMMAND_STATUS_EVENT[status] in subscribed_types():  # in-process subscribers hear each one
                    for key, data in items:
                        event_emit(workspace_id=workspace_id, type=COMMAND_STATUS_EVENT[status], key=key, data=data)
                    continue
                events_emit_many(
                    workspace_id=workspace_id, type=COMMAND_STATUS_EVENT[status], items=items, timestamp=now
                )
        if status in (CommandStatus.FAILED, CommandStatus.SUCCESS):
            commands_alert(commands, status=status, at=now)
    followed = [
        (move.command, move.status, move.reason, move.code)
        for move in moves
        if move.command.participation_id is not None and move.status != CommandStatus.SENT
    ]
    if followed:
        participations_follow_commands(followed, now=now)


def command_failed_cause(device_id: int) -> str:
    return f"dispatch:command_failed:device:{device_id}"


def commands_alert(commands: list[Command], *, status: str, at: datetime) -> None:
    """The command rule, through the fleet's alerts: a command that failed (its OEM refused it, or its retries
    ran out) raises its device's command alert; a later command to the device that succeeds resolves it. One
    statement per workspace of the batch either way (most successes find nothing to resolve)."""
    by_workspace = defaultdict(list)
    for command in commands:
        by_workspace[command.workspace_id].append(command)
    for workspace_id, members in by_workspace.items():
        if status == CommandStatus.SUCCESS:
            alerts_resolve(
                workspace_id=workspace_id,
                causes=[command_failed_cause(c.device_id) for c in members],
                reason="A later command to the device succeeded.",
                at=at,
            )
            continue
        alerts_raise(
            workspace_id=workspace_id,
            alerts=[
                AlertRaise(
                    cause=command_failed_cause(c.device_id),
                    type=AlertType.DISPATCH,
                    subtype=AlertSubtype.COMMAND_FAILED,
                    severity=AlertSeverity.WARNING,
                    title=f"Command failed: {c.slug}",
                    description=(
                        f"Command #{c.pk} ({c.slug}) failed after {c.attempts} attempt{'s' * (c.attempts != 1)}: "
                        f"{c.status_reason or 'no reason given'}"
                    ),
                    device_id=c.device_id,
                    subject_label=(
                        f"Command #{c.pk}"
                        + (f" of dispatch event #{c.dispatch_event_id}" if c.dispatch_event_id else "")
                    ),
                    subject_ref=f"command:{c.pk}",
                    source_system="dispatch",
                )
                for c in members
            ],
            at=at,
        )


@transaction.atomic
def batch_command_create(
    *,
    workspace,
    slug: CommandSlug | str,
    input: dict,
    actor,
    tag_name: str | None = None,
    device_ids: list[int] | None = None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> BatchCommand:
    """One command to many devices — every device of the workspace with the tag, or the given devices: a
    pending command per compatible device (of the command's device type, at an OEM that takes commands),
    written in bulk and handed to workers by the engine's tick; the others are listed as skipped with why.
    `input` must already fit the command (the API's and the admin's input forms check it)."""
    from fleet.models import Device, DeviceTag

    tag = None
    devices = Device.objects.filter(workspace_id=workspace.pk)
    if tag_name is not None:
        tag = DeviceTag.objects.filter(workspace_id=workspace.pk, name=tag_name).first()
        if tag is None:
            raise ApplicationError(f"No device carries the tag “{tag_name}” in this workspace.")
        devices = devices.filter(tags=tag)
    else:
        devices = devices.filter(pk__in=device_ids or [])
    rows = list(
        devices.order_by("pk").values_list("pk", "device_type", "manufacturer__is_read_only", "manufacturer__name")
    )
    if not rows:
        raise ApplicationError("No device to send the command to.")
    device_type = str(slug).split(":")[0]
    batch = BatchCommand.objects.create(
        workspace_id=workspace.pk,
        slug=slug,
        input=input,
        tag=tag,
        requested_by=actor if getattr(actor, "pk", None) else None,
    )
    now, commands, skipped = timezone.now(), [], []
    for pk, kind, read_only, maker in rows:
        if kind != device_type:
            skipped.append({"deviceId": pk, "reason": f"A {kind}: “{slug}” is for a {device_type}."})
        elif read_only:
            skipped.append({"deviceId": pk, "reason": f"{maker}'s API is monitoring only: it takes no commands."})
        else:
            commands.append(
                Command(
                    workspace_id=workspace.pk,
                    device_id=pk,
                    batch=batch,
                    slug=slug,
                    input=input,
                    idempotency_key=f"batch:{batch.pk}:{pk}",
                    not_before=now,
                    requested_by=batch.requested_by,
                )
            )
    Command.objects.bulk_create(commands, batch_size=2000)
    batch.skipped = skipped
    batch.save(update_fields=["skipped", "last_updated"])
    audit_record(
        actor=actor,
        action=AuditAction.COMMAND_CREATED,
        target=batch,
        source=source,
        changes={"commands": len(commands), "skipped": len(skipped), "tag": tag_name},
        reason=f"{slug} to {len(commands)} devices",
    )
    return batch


def command_queue(*, command: Command) -> None:
    """Hand the command to a worker after commit, noting when (the tick hands it again only if that task was
    lost). Sending is idempotent: a finished or leased command is not sent again."""
    from dispatch.tasks import commands_send_task

    Command.objects.filter(pk=command.pk, queued_at__isnull=True).update(queued_at=timezone.now())
    transaction.on_commit(partial(commands_send_task.delay, [command.pk]))


EVENT_EDITABLE_FIELDS = ["name", "is_test", "trigger", "starts_at", "ends_at", "signal_reference"]


@transaction.atomic
def dispatch_event_update(
    *,
    event: DispatchEvent,
    data: dict,
    actor,
    target_tags: list[str] | None = None,
    source=AuditSource.SERVICE,
) -> dict:
    """Edit a draft event (a scheduled one goes back to draft first)."""
    from texture_portal.model_update import model_update

    if event.status != DispatchEventStatus.DRAFT:
        raise ApplicationError(f"Only a draft event can be edited; “{event.name}” is {event.get_status_display()}.")
    if data.get("is_test") is False and not event.program.production_dispatch_enabled:
        raise ApplicationError(f"{event.program} is not launched for production dispatch: only test events may run.")
    changes = model_update(instance=event, fields=EVENT_EDITABLE_FIELDS, data=data)
    if target_tags is not None:
        before = sorted(event.target_tags.values_list("name", flat=True))
        tags = device_tags_get_or_create(workspace=event.program.workspace, names=target_tags)
        if before != sorted(t.name for t in tags):
            event.target_tags.set(tags)
            changes["target_tags"] = [before, sorted(t.name for t in tags)]
    if changes:
        audit_record(actor=actor, action=AuditAction.OBJECT_CHANGED, target=event, source=source, changes=changes)
    return changes


# Commands that set a battery's state (mode, reserve) and must not be sent while Storm Guard holds it.
BATTERY_COMMANDS = {CommandSlug.BATTERY_SET_OPERATING_MODE, CommandSlug.BATTERY_SET_RESERVE}


NOT_DUE_SLACK = timedelta(seconds=5)
IN_FLIGHT = "in flight"  # another worker holds the command's lease
RESUME = "resume"
MAX_RETRY_COUNTDOWN = 600  # seconds: the longest a command waits for its retry after a transient error
SEND_RECORD_SECONDS = 1.0  # a batch records its outcomes (and renews its leases) at least this often


CLAIM_FIELDS = [
    *(field.name for field in Command._meta.concrete_fields),
    *(
        f"device__{name}"
        for name in ("workspace_id", "state", "system_identifier", "oem_device_id", "oem_data", "device_type")
    ),
    "device__manufacturer__name",
    "device__manufacturer__integration_channel",
    "device__latest_telemetry__is_storm_mode_active",
    "dispatch_event__status",
    "action__restore_started_at",
    "participation__status",
]
ENDED_BEFORE_ITS_TURN = "Its event or action ended before its turn came: not sent."


def _action_over(command: Command) -> bool:
    """An event's action command whose event no longer runs, whose action's restore has begun, or whose
    device was opted out."""
    if command.purpose != CommandPurpose.ACTION or command.dispatch_event_id is None:
        return False
    if command.dispatch_event.status != DispatchEventStatus.IN_PROGRESS:
        return True
    if command.participation_id is not None and command.participation.status == ParticipationStatus.OPTED_OUT:
        return True
    return command.action_id is not None and command.action.restore_started_at is not None


def _not_sendable(locked: Command, integration) -> tuple[str, str] | None:
    """Why the command must not go out now after all (checked again at send time), or None."""
    device = locked.device
    if device.state != DeviceState.ON_WORKSPACE:
        return f"The device is {device.get_state_display()}, not reachable through its OEM.", "not_on_workspace"
    if integration is None:
        return f"The {device.manufacturer.name} integration is not enabled for this workspace.", "integration_disabled"
    if (
        locked.slug in BATTERY_COMMANDS
        and locked.purpose != CommandPurpose.RESTORE  # giving a battery back its own mode is always right
        and device.latest_telemetry is not None
        and device.latest_telemetry.is_storm_mode_active
    ):
        return "Storm Guard is active: the battery keeps its backup charge and does not take part.", "storm_guard"
    return None


@transaction.atomic
def _commands_claim(*, command_ids: list[int], owner: str) -> list[tuple[Command, object, str | None]]:
    """Lock the commands and decide for each: send it (the command, its integration, None), or why not
    (…, reason), in the order they are due. Sending takes a lease (status `sent`, `lease_until`,
    `lease_owner`, unique to this run): another delivery of the batch finds the commands leased and leaves
    them alone, so a command is never sent by two workers at once. One whose lease ran out (its worker died, or
    it waits for its retry after a transient error) may be taken again, by anyone: such a second attempt (the
    reason is RESUME) asks the OEM first what of the command took effect.

    Set-based: one statement locks the commands with what sending needs of their devices, one reads their
    integrations, and the leases and their audit rows are written in one each."""
    from integrations.models import WorkspaceIntegration

    # lock the command rows only (a device's latest reading is an outer join PostgreSQL cannot lock), in
    # one order, so two batches never wait on each other crosswise
    rows = list(
        Command.objects.select_for_update(of=("self",))
        .select_related("device__manufacturer", "device__latest_telemetry", "dispatch_event", "action", "participation")
        .only(*CLAIM_FIELDS)
        .filter(pk__in=command_ids)
        .order_by("pk")
    )
    now = timezone.now()
    open_rows = [c for c in rows if c.status in (CommandStatus.PENDING, CommandStatus.SENT)]
    integrations = {}
    if open_rows:
        integrations = {
            (i.workspace_id, i.channel): i
            for i in WorkspaceIntegration.objects.filter(
                workspace_id__in={c.workspace_id for c in open_rows},
                channel__in={c.device.manufacturer.integration_channel for c in open_rows},
                enabled=True,
            )
        }
    lease = now + timedelta(seconds=settings.DISPATCH_COMMAND_LEASE_SECONDS)
    claimed, moves, resumed, not_due = [], [], [], []
    for locked in rows:
        integration = integrations.get((locked.workspace_id, locked.device.manufacturer.integration_channel))
        if locked.status not in (CommandStatus.PENDING, CommandStatus.SENT):
            claimed.append((locked, None, "done"))
            continue
        leased = locked.status == CommandStatus.SENT and locked.lease_until and locked.lease_until > now
        if leased and locked.lease_owner:
            # another batch's, or a redelivery of this one (same task id) while the first may still run
            claimed.append((locked, None, IN_FLIGHT))
            continue
        if locked.status == CommandStatus.PENDING and locked.not_before > now + NOT_DUE_SLACK:
            not_due.append(locked.pk)  # early (a task run in-process): later
            claimed.append((locked, None, "not due"))
            continue
        why = _not_sendable(locked, integration)
        if locked.status == CommandStatus.PENDING and _action_over(locked):
            # handed just before its event was cancelled or its action ended (the tick skips those waiting)
            why = ENDED_BEFORE_ITS_TURN, ExclusionReason.WINDOW_ENDED
        if why:
            final = CommandStatus.SKIPPED if locked.status == CommandStatus.PENDING else CommandStatus.FAILED
            moves.append(CommandMove(locked, final, reason=why[0], code=why[1]))
            claimed.append((locked, integration, why[0]))
        elif locked.status == CommandStatus.PENDING:
            moves.append(CommandMove(locked, CommandStatus.SENT, also={"lease_until": lease, "lease_owner": owner}))
            claimed.append((locked, integration, None))
        else:
            # taken again once its lease ran out: the earlier attempt may have written some or all of it (a
            # 503 on Tesla's second POST, a kill between two), so it resumes
            locked.attempts, locked.sent_at, locked.lease_until, locked.lease_owner = (
                locked.attempts + 1, now, lease, owner,
            )  # fmt: skip
            locked.last_updated = now
            resumed.append(locked)
            claimed.append((locked, integration, RESUME))
    _commands_move(moves)
    if resumed:
        update_objects(resumed, ["attempts", "sent_at", "lease_until", "lease_owner", "last_updated"])
    if not_due:
        Command.objects.filter(pk__in=not_due).update(queued_at=None)
    claimed.sort(key=lambda item: (item[0].not_before, item[0].pk))
    return claimed


@dataclass
class _Sent:
    """What one call to the OEM came back with, recorded with the batch's next outcomes."""

    command: Command
    status: str | None  # success | failed | RETRY | None (no answer yet: left leased)
    reason: str = ""
    oem_reference: str = ""
    started: datetime | None = None
    retry_in: float = 0.0


RETRY = "retry"


def _command_call(command: Command, integration, *, resume: bool, final: bool) -> _Sent:
    """One command through its adapter (the thread's kept one): its outcome, never an exception."""
    from integrations.adapters import DeviceRef, IntegrationError
    from integrations.adapters.base import backoff_seconds
    from integrations.connect.services import device_adapter

    device = command.device
    ref = DeviceRef(
        serial=device.system_identifier,
        external_id=device.oem_device_id,
        oem_data=device.oem_data,
        device_type=device.device_type,
    )
    started = timezone.now()
    oem = integration.get_channel_display()
    try:
        # a device a customer connected themselves (Texture Connect) is reached with their tokens
        with device_adapter(integration, device) as adapter:
            send = adapter.command_resume if resume else adapter.send_command
            result = adapter.command_status(ref, send(ref, command.slug, command.input))
    except IntegrationError as exc:
        if exc.transient and not final:
            wait = backoff_seconds(max(command.attempts - 1, 0), retry_after=getattr(exc, "retry_after", None))
            return _Sent(command, RETRY, exc.message, started=started, retry_in=min(MAX_RETRY_COUNTDOWN, wait))
        return _Sent(command, CommandStatus.FAILED, f"{oem}: {exc.message}", started=started)
    except Exception as exc:
        # a malformed OEM answer or an adapter bug: not retried (it would fail the same way), but recorded
        log.exception("Command %s: unexpected error sending through %s", command.pk, integration.channel)
        reason = f"{oem}: unexpected error ({type(exc).__name__}: {exc})"
        return _Sent(command, CommandStatus.FAILED, reason, started=started)
    if result.status == "accepted":
        return _Sent(command, CommandStatus.SUCCESS, result.message, result.oem_reference, started=started)
    if result.status in ("rejected", "failed"):
        return _Sent(command, CommandStatus.FAILED, result.message or result.status, started=started)
    return _Sent(command, None, started=started)


@transaction.atomic
def _commands_record(
    sent: list[_Sent], *, owner: str, still_to_send: list[int], fresh: set[int] = frozenset()
) -> tuple[dict[int, Command], set[int]]:
    """Record a batch's outcomes in one transaction, and renew the leases of the commands it has yet to send.
    An outcome is written only while the command is still this batch's (`sent`, its lease): one taken over
    meanwhile (the lease ran out mid-call) is recorded by whoever holds it now, which asked the OEM first.

    Of those yet to send, the ones this batch took pending (`fresh`: never called) that are action commands
    whose event is no longer running (cancelled, ended), whose action's restore has begun or whose device was
    opted out are not sent after all: skipped, as the ones still waiting in the database are
    (`engine._skip_unsent`). A resumed one is sent: an earlier attempt may have put it in place, and its
    success is restored late. Returns those skipped (by id) and those no longer this batch's (not to call)."""
    now = timezone.now()
    current = {
        pk: (status, lease_owner)
        for pk, status, lease_owner in Command.objects.select_for_update()
        .filter(pk__in=[s.command.pk for s in sent])
        .values_list("pk", "status", "lease_owner")
    }
    moves, retries = [], []
    for outcome in sent:
        if current.get(outcome.command.pk) != (CommandStatus.SENT, owner):
            log.info(
                "Command %s was taken over while its call ran: its outcome is left to the new sender.",
                outcome.command.pk,
            )
            continue
        if outcome.status == RETRY:
            # it stays `sent`, leased until its retry: the hand-off gives it back to a worker then
            outcome.command.lease_until = now + timedelta(seconds=outcome.retry_in)
            outcome.command.status_reason = f"Retrying after: {outcome.reason}"[:500]
            retries.append(outcome.command)
        elif outcome.status is not None:
            moves.append(
                CommandMove(
                    outcome.command,
                    outcome.status,
                    reason=outcome.reason,
                    oem_reference=outcome.oem_reference,
                    also={"sent_at": outcome.started},
                )
            )
    _commands_move(moves)
    if retries:
        update_objects(retries, ["lease_until", "status_reason"])
    if not still_to_send:
        return {}, set()
    ours = Command.objects.filter(pk__in=still_to_send, status=CommandStatus.SENT, lease_owner=owner)
    held = set(ours.select_for_update().values_list("pk", flat=True))
    ended = (
        ~Q(dispatch_event__status=DispatchEventStatus.IN_PROGRESS)
        | Q(action__restore_started_at__isnull=False)
        | Q(participation__status=ParticipationStatus.OPTED_OUT)
    )
    over = list(
        Command.objects.filter(ended, pk__in=held & fresh, purpose=CommandPurpose.ACTION, dispatch_event__isnull=False)
        .select_for_update(of=("self",))
        .only(*(field.name for field in Command._meta.concrete_fields))
    ) if held & fresh else []  # fmt: skip
    ended_code = ExclusionReason.WINDOW_ENDED
    _commands_move([CommandMove(c, CommandStatus.SKIPPED, reason=ENDED_BEFORE_ITS_TURN, code=ended_code) for c in over])
    lease = now + timedelta(seconds=settings.DISPATCH_COMMAND_LEASE_SECONDS)
    Command.objects.filter(pk__in=held - {c.pk for c in over}).update(lease_until=lease)
    return {c.pk: c for c in over}, set(still_to_send) - held


def commands_send(*, command_ids: list[int], owner: str = "", final_attempt: bool | None = None) -> dict[int, Command]:
    """Send pending commands through their devices' OEM adapters, one after another in the order they are
    due, and record the outcomes; returns the commands by id.

    Idempotent: a command already succeeded, failed or skipped is left untouched, and one another worker is
    sending (its lease) is left to it. Skipped (with why) when the device is not on the workspace, its
    integration is disabled, or Storm Guard holds a battery. A transient OEM error leaves the command `sent`
    and leased until its retry (exponential backoff, never sooner than the OEM's Retry-After): the hand-off
    (`commands_queue_due`) gives it back to a worker then, which resumes it; the attempt after
    DISPATCH_COMMAND_MAX_ATTEMPTS - 1 (or `final_attempt`) marks it failed. A second attempt (a retry, or a
    take-over from a worker that died mid-call) asks the OEM first what of it already took effect
    (`command_resume`): that is not written again.

    Set-based around the calls: the claim is four statements for the whole batch, the outcomes are recorded
    in one transaction every SEND_RECORD_SECONDS (renewing the leases of those still to send), and the
    thread's adapters are kept between commands (`adapter_reused`), so a worker keeps its OEM connections
    warm. A worker killed mid-batch leaves its commands leased: once the leases run out they are handed again
    and resumed, none lost and none written twice."""
    # unique to this run: a redelivery of the same task (same id) must not pass for the run holding the lease
    owner = f"{owner or 'call'}:{uuid.uuid4().hex[:12]}"
    claimed = _commands_claim(command_ids=command_ids, owner=owner)
    commands = {locked.pk: locked for locked, _, _ in claimed}
    to_send = [(locked, integration, reason) for locked, integration, reason in claimed if reason in (None, RESUME)]
    fresh = {locked.pk for locked, _, reason in to_send if reason is None}
    sent, recorded_at, stopped, lost = [], time.monotonic(), {}, set()
    for n, (locked, integration, reason) in enumerate(to_send):
        if locked.pk in stopped or locked.pk in lost:
            continue
        early = (locked.not_before - timezone.now()).total_seconds()
        if early > 0:  # its ramp slot is a moment away (the hand-off looks DISPATCH_QUEUE_SECONDS ahead)
            time.sleep(min(early, NOT_DUE_SLACK.total_seconds()))
        final = (
            final_attempt if final_attempt is not None else locked.attempts >= settings.DISPATCH_COMMAND_MAX_ATTEMPTS
        )
        sent.append(_command_call(locked, integration, resume=reason == RESUME, final=final))
        if n < len(to_send) - 1 and time.monotonic() - recorded_at >= SEND_RECORD_SECONDS:
            rest = [c.pk for c, _, _ in to_send[n + 1 :] if c.pk not in stopped and c.pk not in lost]
            skipped, gone = _commands_record(sent, owner=owner, still_to_send=rest, fresh=fresh)
            stopped.update(skipped)
            lost |= gone  # its lease ran out and someone else has it now: theirs to send
            sent, recorded_at = [], time.monotonic()
    if sent:
        _commands_record(sent, owner=owner, still_to_send=[])
    return {**commands, **stopped}


def command_send(*, command: Command, final_attempt: bool | None = None, owner: str = "") -> Command:
    """`commands_send` for one command: the command as it is afterwards."""
    return commands_send(command_ids=[command.pk], owner=owner, final_attempt=final_attempt).get(command.pk, command)
