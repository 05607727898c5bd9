"""Writes of programs, event strategies, enrollments and launch-checklist sign-offs. Atomic and audited."""

import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from programs.choices import (
    ENROLLMENT_TRANSITIONS,
    PHASE_ORDER,
    PROGRAM_PHASE_TRANSITIONS,
    EnrollmentApproval,
    EnrollmentStatus,
    EventType,
    LaunchCriterion,
    ProgramPhase,
    ProgramType,
)
from programs.events import EnrollmentEventType, enrollment_data
from programs.launch import CRITERIA, SIGN_OFF_CRITERIA
from programs.models import Enrollment, EventStrategy, LaunchCriterionSignOff, Program, ProgramHealthDay
from programs.selectors import program_launch_checklist
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events.services import event_emit
from texture_portal.exceptions import ApplicationError
from texture_portal.model_update import model_update
from texture_portal.tenancy import require_same_workspace

PROGRAM_FIELDS = [
    "slug",
    "name",
    "description",
    "program_type",
    "enrollment_approval",
    "launch_threshold",
    "target_launch_date",
    "reporting_target_percent",
    "timezone",
]
STRATEGY_FIELDS = [
    "allowed_event_types",
    "min_soc_percent",
    "max_soc_percent",
    "ramp_minutes",
    "max_event_duration_minutes",
    "enable_grid_interaction",
    "participation_floor_percent",
    "baseline_days",
    "baseline_highest",
    "baseline_lookback_days",
    "baseline_same_day_type",
    "baseline_min_days",
    "baseline_adjustment",
    "baseline_window_start_minutes",
    "baseline_window_end_minutes",
    "baseline_factor_min",
    "baseline_factor_max",
    "notes",
]

DEFAULT_EVENT_TYPES = {
    ProgramType.BATTERY: [EventType.CHARGE, EventType.DISCHARGE, EventType.IDLE],
    ProgramType.EVSE: [EventType.CHARGE, EventType.IDLE],
    ProgramType.EV: [EventType.CHARGE, EventType.IDLE],
    ProgramType.THERMOSTAT: [EventType.IDLE],
}


@transaction.atomic
def program_create(
    *, workspace, actor, source: AuditSource | str = AuditSource.SERVICE, strategy: dict | None = None, **data
) -> Program:
    """Create a program in the kickoff phase, with version 1 of its event strategy (defaults for its type,
    overridden by `strategy`)."""
    program = Program(workspace=workspace, **{k: v for k, v in data.items() if k in PROGRAM_FIELDS})
    program.full_clean()
    program.save()
    audit_record(actor=actor, action=AuditAction.PROGRAM_CREATED, target=program, source=source)
    defaults = {"allowed_event_types": [str(t) for t in DEFAULT_EVENT_TYPES[ProgramType(program.program_type)]]}
    event_strategy_create_version(program=program, data={**defaults, **(strategy or {})}, actor=actor, source=source)
    return program


@transaction.atomic
def program_update(*, program: Program, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE) -> dict:
    """Edit a program's descriptive fields. Phase and production dispatch have their own services."""
    changes = model_update(instance=program, fields=PROGRAM_FIELDS, data=data)
    if changes:
        audit_record(actor=actor, action=AuditAction.OBJECT_CHANGED, target=program, source=source, changes=changes)
    return changes


@transaction.atomic
def program_set_phase(
    *,
    program: Program,
    phase: ProgramPhase | str,
    actor,
    override_reason: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> Program:
    """Move a program one phase forward or one phase back.

    Forward needs every launch-checklist criterion of the phase being left (`programs.launch`), measured and
    signed off; with `override_reason` staff may move on without them, and the audit row names the criteria
    skipped and the reason. (Production dispatch needs every criterion anyway, with no override.) Moving back
    out of `launched` also turns production dispatch off. Raises InvalidTransition or ApplicationError
    (listing the unmet criteria in `extra["unmet"]`).
    """
    locked = Program.objects.select_for_update().get(pk=program.pk)
    PROGRAM_PHASE_TRANSITIONS.check(locked.phase, phase)
    forward = PHASE_ORDER.index(phase) > PHASE_ORDER.index(locked.phase)
    changes = {"phase": [locked.phase, str(phase)]}
    override_reason = override_reason.strip()
    if forward:
        unmet = program_launch_checklist(program=locked).phase(locked.phase).unmet
        if unmet and not override_reason:
            raise ApplicationError(
                f"{locked} cannot leave “{locked.get_phase_display()}” yet: "
                + " ".join(f"{c.label}: {c.figure}" for c in unmet)
                + " (or give an override reason).",
                extra={"unmet": [c.key for c in unmet]},
            )
        if unmet:
            changes["overridden_criteria"] = [c.key for c in unmet]
    locked.phase = phase
    update_fields = ["phase", "last_updated"]
    if phase != ProgramPhase.LAUNCHED and locked.production_dispatch_enabled:
        locked.production_dispatch_enabled = False
        update_fields.append("production_dispatch_enabled")
        changes["production_dispatch_enabled"] = [True, False]
    locked.save(update_fields=update_fields)
    audit_record(
        actor=actor,
        action=AuditAction.PROGRAM_PHASE_CHANGED,
        target=locked,
        source=source,
        changes=changes,
        reason=override_reason if "overridden_criteria" in changes else "",
    )
    program.refresh_from_db()
    return program


@transaction.atomic
def program_set_production_dispatch(
    *, program: Program, enabled: bool, actor, source: AuditSource | str = AuditSource.SERVICE
) -> Program:
    """Turn production dispatch on (a launched program whose launch checklist holds entirely: every
    criterion of every phase, measured now or signed off) or off (always). Raises ApplicationError naming
    the unmet criteria (`extra["unmet"]`)."""
    locked = Program.objects.select_for_update().get(pk=program.pk)
    if enabled and locked.phase != ProgramPhase.LAUNCHED:
        raise ApplicationError(f"{locked} is not launched: only test events may run before launch.")
    if enabled and not locked.production_dispatch_enabled:
        unmet = program_launch_checklist(program=locked).unmet
        if unmet:
            raise ApplicationError(
                f"Production dispatch of {locked} needs every launch criterion; {len(unmet)} not met: "
                + " ".join(f"{c.label}: {c.figure}" for c in unmet),
                extra={"unmet": [c.key for c in unmet]},
            )
    if locked.production_dispatch_enabled != enabled:
        locked.production_dispatch_enabled = enabled
        locked.save(update_fields=["production_dispatch_enabled", "last_updated"])
        audit_record(
            actor=actor,
            action=AuditAction.PROGRAM_PRODUCTION_DISPATCH_CHANGED,
            target=locked,
            source=source,
            changes={"production_dispatch_enabled": [not enabled, enabled]},
        )
    program.refresh_from_db()
    return program


def _sign_off_criterion(criterion: LaunchCriterion | str) -> str:
    if str(criterion) not in CRITERIA:
        raise ApplicationError(f"“{criterion}” is not a launch criterion.")
    if str(criterion) not in SIGN_OFF_CRITERIA:
        raise ApplicationError(f"“{CRITERIA[str(criterion)].label}” is measured, not signed off.")
    return str(criterion)


@transaction.atomic
def launch_criterion_sign_off(
    *,
    program: Program,
    criterion: LaunchCriterion | str,
    actor,
    note: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> LaunchCriterionSignOff:
    """Sign off one of the program's staff-signed launch criteria, as `actor` (a user: who signed is the point),
    now, with an optional note. Raises ApplicationError if it is measured, unknown, or already signed off."""
    key = _sign_off_criterion(criterion)
    if not getattr(actor, "pk", None):
        raise ApplicationError("A launch criterion is signed off by a person: no user given.")
    locked = Program.objects.select_for_update().get(pk=program.pk)  # serializes with enabling production dispatch
    existing = LaunchCriterionSignOff.objects.filter(program=locked, criterion=key).first()
    if existing:
        raise ApplicationError(
            f"“{CRITERIA[key].label}” is already signed off by {existing.signed_off_by_label} "
            f"on {existing.signed_off_at:%Y-%m-%d %H:%M} UTC."
        )
    sign_off = LaunchCriterionSignOff(
        workspace_id=locked.workspace_id,
        program=locked,
        criterion=key,
        signed_off_by=actor,
        signed_off_by_label=actor.get_full_name() or actor.get_username(),
        signed_off_at=timezone.now(),
        note=note.strip()[:500],
    )
    sign_off.full_clean()
    sign_off.save()
    audit_record(
        actor=actor,
        action=AuditAction.PROGRAM_CRITERION_SIGNED_OFF,
        target=locked,
        source=source,
        changes={"criterion": key, "signed_off_at": sign_off.signed_off_at},
        reason=sign_off.note,
    )
    return sign_off


@transaction.atomic
def launch_criterion_revoke(
    *,
    program: Program,
    criterion: LaunchCriterion | str,
    actor,
    reason: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> None:
    """Withdraw a sign-off (the audit row keeps who had signed it and when). Production dispatch already on
    stays on: turning it off is its own decision. Raises ApplicationError if it is not signed off."""
    key = _sign_off_criterion(criterion)
    locked = Program.objects.select_for_update().get(pk=program.pk)
    sign_off = LaunchCriterionSignOff.objects.filter(program=locked, criterion=key).first()
    if sign_off is None:
        raise ApplicationError(f"“{CRITERIA[key].label}” is not signed off.")
    audit_record(
        actor=actor,
        action=AuditAction.PROGRAM_CRITERION_REVOKED,
        target=locked,
        source=source,
        changes={
            "criterion": key,
            "signed_off_by": sign_off.signed_off_by_label,
            "signed_off_at": sign_off.signed_off_at,
            "note": sign_off.note,
        },
        reason=reason.strip(),
    )
    sign_off.delete()


@transaction.atomic
def event_strategy_create_version(
    *, program: Program, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE
) -> EventStrategy:
    """Add the next version of the program's strategy. Fields not given are carried over from the current
    version. Versions are never edited: dispatch events keep the exact rules they ran with."""
    Program.objects.select_for_update().filter(pk=program.pk).first()  # serialize version numbering
    current = program.strategies.order_by("-version").first()
    values = {name: getattr(current, name) for name in STRATEGY_FIELDS} if current else {}
    values.update({k: v for k, v in data.items() if k in STRATEGY_FIELDS})
    strategy = EventStrategy(
        workspace_id=program.workspace_id,
        program=program,
        version=(current.version + 1) if current else 1,
        created_by=actor if getattr(actor, "pk", None) else None,
        **values,
    )
    strategy.full_clean()
    strategy.save()
    changes = {}
    if current:
        changes = {
            name: [getattr(current, name), getattr(strategy, name)]
            for name in STRATEGY_FIELDS
            if getattr(current, name) != getattr(strategy, name)
        }
    audit_record(
        actor=actor,
        action=AuditAction.EVENT_STRATEGY_VERSIONED,
        target=strategy,
        source=source,
        changes=changes,
    )
    return strategy


@transaction.atomic
def enrollment_submit(
    *, device, program: Program, actor, source: AuditSource | str = AuditSource.SERVICE
) -> Enrollment:
    """Enroll a device in a program: submitted, then approved at once when the program approves
    automatically. Raises ApplicationError if the device is already enrolled there."""
    require_same_workspace(program.workspace_id, device)
    if Enrollment.objects.filter(device=device, program=program).exists():
        raise ApplicationError(f"{device} is already enrolled in {program}.")
    enrollment = Enrollment(
        workspace_id=program.workspace_id,
        device=device,
        program=program,
        status=EnrollmentStatus.SUBMITTED,
        source=source,
    )
    enrollment.full_clean()
    enrollment.save()
    audit_record(actor=actor, action=AuditAction.ENROLLMENT_SUBMITTED, target=enrollment, source=source)
    event_emit(
        workspace_id=enrollment.workspace_id,
        type=EnrollmentEventType.ENROLLMENT_SUBMITTED,
        key=f"enrollment.submitted:{enrollment.pk}",
        data=enrollment_data(enrollment),
    )
    if program.enrollment_approval == EnrollmentApproval.AUTOMATIC:
        enrollment_approve(enrollment=enrollment, actor=actor, source=source, reason="Automatic approval")
    return enrollment


ENROLLMENT_EVENT = {
    EnrollmentStatus.APPROVED: EnrollmentEventType.ENROLLMENT_APPROVED,
    EnrollmentStatus.REJECTED: EnrollmentEventType.ENROLLMENT_REJECTED,
    EnrollmentStatus.UNENROLLED: EnrollmentEventType.ENROLLMENT_UNENROLLED,
}


def _enrollment_decide(*, enrollment: Enrollment, status, action, actor, source, reason: str) -> Enrollment:
    locked = Enrollment.objects.select_for_update().get(pk=enrollment.pk)
    ENROLLMENT_TRANSITIONS.check(locked.status, status)
    before = locked.status
    locked.status = status
    locked.decided_at = timezone.now()
    locked.decided_by = actor if getattr(actor, "pk", None) else None
    locked.reason = reason[:300]
    locked.save(update_fields=["status", "decided_at", "decided_by", "reason", "last_updated"])
    audit_record(
        actor=actor,
        action=action,
        target=locked,
        source=source,
        changes={"status": [before, str(status)]},
        reason=reason,
    )
    event_emit(
        workspace_id=locked.workspace_id,
        type=ENROLLMENT_EVENT[status],
        key=f"{ENROLLMENT_EVENT[status]}:{locked.pk}",
        data=enrollment_data(locked),
    )
    enrollment.refresh_from_db()
    return enrollment


@transaction.atomic
def enrollment_approve(*, enrollment: Enrollment, actor, source=AuditSource.SERVICE, reason: str = "") -> Enrollment:
    return _enrollment_decide(
        enrollment=enrollment,
        status=EnrollmentStatus.APPROVED,
        action=AuditAction.ENROLLMENT_APPROVED,
        actor=actor,
        source=source,
        reason=reason,
    )


@transaction.atomic
def enrollment_reject(*, enrollment: Enrollment, actor, reason: str, source=AuditSource.SERVICE) -> Enrollment:
    if not reason.strip():
        raise ApplicationError("Rejecting an enrollment needs a reason.")
    return _enrollment_decide(
        enrollment=enrollment,
        status=EnrollmentStatus.REJECTED,
        action=AuditAction.ENROLLMENT_REJECTED,
        actor=actor,
        source=source,
        reason=reason,
    )


@transaction.atomic
def enrollment_unenroll(*, enrollment: Enrollment, actor, reason: str = "", source=AuditSource.SERVICE) -> Enrollment:
    return _enrollment_decide(
        enrollment=enrollment,
        status=EnrollmentStatus.UNENROLLED,
        action=AuditAction.ENROLLMENT_UNENROLLED,
        actor=actor,
        source=source,
        reason=reason,
    )


def program_test_event_record(*, workspace_id: int, data: dict, timestamp, **_) -> None:
    """Subscriber of `program_event.completed` (`ProgramsConfig.ready()`): the first test event of a program
    that completed end to end meets its testing phase's measured exit. Idempotent."""
    if not (data.get("isTest") and data.get("completedEndToEnd")):
        return
    Program.objects.filter(workspace_id=workspace_id, pk=data["programId"], test_event_passed_id__isnull=True).update(
        test_event_passed_id=data["id"], test_event_passed_at=timestamp, last_updated=timezone.now()
    )


def program_test_report_record(*, workspace_id: int, data: dict, timestamp, **_) -> None:
    """Subscriber of `program_event.report_compiled` (`ProgramsConfig.ready()`): the first compiled report of
    a test event that completed end to end meets the testing phase's report criterion. Idempotent (a report
    recomputed later changes nothing)."""
    if not (data.get("isTest") and data.get("completedEndToEnd")):
        return
    compiled_at = parse_datetime(str((data.get("report") or {}).get("compiledAt") or "")) or timestamp
    if timezone.is_naive(compiled_at):
        compiled_at = timezone.make_aware(compiled_at, datetime.UTC)
    Program.objects.filter(workspace_id=workspace_id, pk=data["programId"], test_report_event_id__isnull=True).update(
        test_report_event_id=data["id"], test_report_compiled_at=compiled_at, last_updated=timezone.now()
    )


def program_health_record(*, now=None) -> int:
    """Measure every program's enrolled fleet now and keep it as the program's row for today (its local day):
    approved enrollments, their devices on the workspace, and those that reported within the last 24 hours.
    One aggregate query for all programs and one upsert: running it twice, or twice at once, leaves one row
    per program and day holding the latest measure. Returns the rows written."""
    from django.db.models import Count, Q

    from fleet.choices import DeviceState

    now = now or timezone.now()
    counts = (
        Enrollment.objects.filter(status=EnrollmentStatus.APPROVED)
        .values("program_id")
        .annotate(
            enrolled=Count("pk"),
            online=Count("pk", filter=Q(device__state=DeviceState.ON_WORKSPACE)),
            reporting=Count("pk", filter=Q(device__last_seen_at__gte=now - datetime.timedelta(hours=24))),
        )
        .order_by()
    )
    by_program = {row["program_id"]: row for row in counts}
    rows = [
        ProgramHealthDay(
            workspace_id=program.workspace_id,
            program_id=program.pk,
            day=now.astimezone(program.zone).date(),
            enrolled=by_program.get(program.pk, {}).get("enrolled", 0),
            online=by_program.get(program.pk, {}).get("online", 0),
            reporting=by_program.get(program.pk, {}).get("reporting", 0),
            measured_at=now,
        )
        for program in Program.objects.only("pk", "workspace_id", "timezone")
    ]
    ProgramHealthDay.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["program", "day"],
        update_fields=["enrolled", "online", "reporting", "measured_at", "last_updated"],
    )
    return len(rows)
