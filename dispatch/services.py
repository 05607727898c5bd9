"""Writes of dispatch: program events, their actions, and commands. Atomic and audited.

Running an event (selecting eligible devices, sending ramped commands, restoring) is built on these by the
dispatch engine; these services own the rules every path must respect.
"""

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch.choices import (
    COMMAND_TRANSITIONS,
    DISPATCH_EVENT_TRANSITIONS,
    CommandPurpose,
    CommandSlug,
    CommandStatus,
    DispatchEventStatus,
    DispatchTrigger,
)
from dispatch.events import DispatchEventType, command_data, dispatch_event_data
from dispatch.models import BatchCommand, Command, DispatchAction, DispatchEvent
from fleet.choices import DeviceState
from fleet.services import device_tags_get_or_create
from programs.models import Program
from programs.selectors import program_current_strategy
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events.services import event_emit
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
    for field in _command_move(
        locked, status=status, actor=actor, reason=reason, reason_code=reason_code, oem_reference=oem_reference,
        source=source,
    ):  # fmt: skip
        setattr(command, field, getattr(locked, field))
    return command


def _command_move(
    locked: Command,
    *,
    status: CommandStatus | str,
    actor=None,
    reason: str = "",
    reason_code: str = "",
    oem_reference: str = "",
    source: AuditSource | str = AuditSource.TASK,
    also: dict | None = None,
) -> list[str]:
    """`command_set_status` on a command the caller holds locked in its transaction; `also`: more fields
    written in the same statement. Returns the fields written."""
    COMMAND_TRANSITIONS.check(locked.status, status)
    if status == CommandStatus.SKIPPED and not reason.strip():
        raise ApplicationError("A skipped command needs a reason.")
    before = locked.status
    now = timezone.now()
    locked.status = status
    locked.status_reason = reason[:500]
    update_fields = ["status", "status_reason", "last_updated"]
    if status == CommandStatus.SENT:
        locked.sent_at = now
        locked.attempts += 1
        update_fields += ["sent_at", "attempts"]
    if status in (CommandStatus.SUCCESS, CommandStatus.FAILED, CommandStatus.SKIPPED):
        locked.completed_at = now
        locked.lease_until, locked.lease_owner = None, ""
        update_fields += ["completed_at", "lease_until", "lease_owner"]
    if oem_reference:
        locked.oem_reference = oem_reference
        update_fields.append("oem_reference")
    for field, value in (also or {}).items():
        setattr(locked, field, value)
        update_fields.append(field)
    locked.save(update_fields=update_fields)
    audit_record(
        actor=actor,
        action=AuditAction.COMMAND_STATUS_CHANGED,
        target=locked,
        source=source,
        changes={"status": [before, str(status)]},
        reason=reason,
    )
    if status in COMMAND_STATUS_EVENT:
        event_emit(
            workspace_id=locked.workspace_id,
            type=COMMAND_STATUS_EVENT[status],
            key=f"{COMMAND_STATUS_EVENT[status]}:{locked.pk}",
            data=command_data(locked),
        )
    if locked.participation_id is not None and status != CommandStatus.SENT:
        from dispatch.engine import participation_follow_command

        participation_follow_command(command=locked, status=str(status), reason=reason, code=reason_code, now=now)
    return update_fields


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
    from dispatch.tasks import command_send_task

    Command.objects.filter(pk=command.pk, queued_at__isnull=True).update(queued_at=timezone.now())
    transaction.on_commit(partial(command_send_task.delay, command.pk))


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


CLAIM_FIELDS = [
    *(field.name for field in Command._meta.concrete_fields),
    *(
        f"device__{name}"
        for name in ("workspace_id", "state", "system_identifier", "oem_device_id", "oem_data", "device_type")
    ),
    "device__manufacturer__name",
    "device__manufacturer__integration_channel",
    "device__latest_telemetry__is_storm_mode_active",
]


@transaction.atomic
def _command_claim(*, command_id: int, owner: str):
    """Lock the command and decide: send it (the command, its integration, None), or why not (…, reason).
    Sending takes a lease in the same statement (status `sent`, `lease_until`, `lease_owner`): another
    delivery of the task finds the command leased and leaves it alone, so a command is never sent by two
    workers at once; the task's own retry (same owner) and, once the lease has run out, anyone may take it
    again: such a second attempt (the reason is RESUME) asks the OEM first what of the command took effect."""
    from integrations.models import WorkspaceIntegration

    # lock the command row only (the device's latest reading is an outer join PostgreSQL cannot lock), and
    # read of the device only what sending needs: this runs once per command
    locked = (
        Command.objects.select_for_update(of=("self",))
        .select_related("device__manufacturer", "device__latest_telemetry")
        .only(*CLAIM_FIELDS)
        .get(pk=command_id)
    )
    now = timezone.now()
    if locked.status not in (CommandStatus.PENDING, CommandStatus.SENT):
        return locked, None, "done"
    leased = locked.status == CommandStatus.SENT and locked.lease_until and locked.lease_until > now
    if leased and locked.lease_owner != owner:
        return locked, None, IN_FLIGHT
    if locked.status == CommandStatus.PENDING and locked.not_before > now + NOT_DUE_SLACK:
        Command.objects.filter(pk=locked.pk).update(queued_at=None)  # early (a task run in-process): later
        return locked, None, "not due"
    device = locked.device
    channel = device.manufacturer.integration_channel
    integration = WorkspaceIntegration.objects.filter(
        workspace_id=locked.workspace_id, channel=channel, enabled=True
    ).first()
    reason, code = None, ""
    if device.state != DeviceState.ON_WORKSPACE:
        reason, code = f"The device is {device.get_state_display()}, not reachable through its OEM.", "not_on_workspace"
    elif integration is None:
        reason = f"The {device.manufacturer.name} integration is not enabled for this workspace."
        code = "integration_disabled"
    elif (
        locked.slug in BATTERY_COMMANDS
        and locked.purpose != CommandPurpose.RESTORE  # giving a battery back its own mode is always right
        and device.latest_telemetry is not None
        and device.latest_telemetry.is_storm_mode_active
    ):
        reason, code = (
            "Storm Guard is active: the battery keeps its backup charge and does not take part.",
            "storm_guard",
        )
    if reason:
        final = CommandStatus.SKIPPED if locked.status == CommandStatus.PENDING else CommandStatus.FAILED
        _command_move(locked, status=final, reason=reason, reason_code=code)
        return locked, integration, reason
    lease = now + timedelta(seconds=settings.DISPATCH_COMMAND_LEASE_SECONDS)
    if locked.status == CommandStatus.PENDING:
        _command_move(locked, status=CommandStatus.SENT, also={"lease_until": lease, "lease_owner": owner})
        return locked, integration, None
    # A retry by the task (its own lease) or a take-over after a worker died mid-call: the earlier attempt may
    # have written some or all of it (a 503 on Tesla's second POST, a kill between two), so it resumes.
    locked.attempts, locked.sent_at, locked.lease_until, locked.lease_owner = locked.attempts + 1, now, lease, owner
    locked.save(update_fields=["attempts", "sent_at", "lease_until", "lease_owner", "last_updated"])
    return locked, integration, RESUME


RESUME = "resume"
MAX_RETRY_COUNTDOWN = 600  # seconds: the longest a command task waits before its retry (no long ETAs)


def command_send(*, command: Command, final_attempt: bool = True, owner: str = "") -> Command:
    """Send a pending command through its device's OEM adapter and record the outcome.

    Idempotent: a command already succeeded, failed or skipped is returned untouched, and one another worker
    is sending (its lease) is left to it. Skipped (with why) when the device is not on the workspace, its
    integration is disabled, or Storm Guard holds a battery. A transient OEM error leaves the command `sent`,
    leased to `owner` (the task's id) until its retry, and is raised for the task to retry, unless this
    is the final attempt, which marks it failed. A second attempt (the task's retry, or a take-over from a
    worker that died mid-call) asks the OEM first what of it already took effect (`command_resume`): that
    is not written again.

    Four statements lock the command, read its integration, lease and audit it (the claim), one HTTP call or a
    few send it, and one transaction records the outcome with its participation; the thread's adapter is
    reused between commands (`adapter_reused`), so a worker keeps its OEM connections warm.
    """
    from integrations.adapters import DeviceRef, IntegrationError, adapter_reused
    from integrations.services import integration_credentials_persist

    owner = owner or f"call-{uuid.uuid4()}"
    locked, integration, reason = _command_claim(command_id=command.pk, owner=owner)
    if reason and reason != RESUME:
        return locked
    device = locked.device
    ref = DeviceRef(
        serial=device.system_identifier,
        external_id=device.oem_device_id,
        oem_data=device.oem_data,
        device_type=device.device_type,
    )
    outcome = None
    try:
        # inside the try: the command is already `sent`, so no failure here may leave it there for good
        with adapter_reused(integration) as adapter:
            try:
                send = adapter.command_resume if reason == RESUME else adapter.send_command
                result = adapter.command_status(ref, send(ref, locked.slug, locked.input))
                outcome = (result.status, result.message, result.oem_reference)
            finally:
                integration_credentials_persist(integration=integration, adapter=adapter)
    except IntegrationError as exc:
        if exc.transient and not final_attempt:
            # keep the lease until the task's own retry, so the tick does not hand the command to another
            hold = timedelta(seconds=MAX_RETRY_COUNTDOWN + settings.DISPATCH_COMMAND_LEASE_SECONDS)
            Command.objects.filter(pk=locked.pk).update(lease_until=timezone.now() + hold)
            raise
        return command_set_status(
            command=locked, status=CommandStatus.FAILED, reason=f"{integration.get_channel_display()}: {exc.message}"
        )
    except Exception as exc:
        # a malformed OEM answer or an adapter bug: not retried (it would fail the same way), but recorded
        log.exception("Command %s: unexpected error sending through %s", locked.pk, integration.channel)
        return command_set_status(
            command=locked,
            status=CommandStatus.FAILED,
            reason=f"{integration.get_channel_display()}: unexpected error ({type(exc).__name__}: {exc})",
        )
    status, message, oem_reference = outcome
    if status == "accepted":
        return command_set_status(
            command=locked, status=CommandStatus.SUCCESS, reason=message, oem_reference=oem_reference
        )
    if status in ("rejected", "failed"):
        return command_set_status(command=locked, status=CommandStatus.FAILED, reason=message or status)
    return locked
