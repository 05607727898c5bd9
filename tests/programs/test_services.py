"""Program services: creation with a strategy, phases and their measured exit criteria, enrollments."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from dispatch.events import dispatch_event_data
from dispatch.models import DispatchEvent
from dispatch.services import dispatch_event_set_status
from fleet.models import Device
from fleet.services import device_mark_on_workspace
from programs.choices import EnrollmentStatus, ProgramPhase
from programs.selectors import program_current_strategy, program_phase_exit_blockers
from programs.services import (
    enrollment_approve,
    enrollment_reject,
    enrollment_submit,
    enrollment_unenroll,
    event_strategy_create_version,
    launch_criterion_sign_off,
    program_set_phase,
    program_set_production_dispatch,
)
from tests.factories import DeviceFactory, WorkspaceFactory, make_program, staff_user
from texture_portal.choices import AuditAction, Role
from texture_portal.events.services import event_emit
from texture_portal.exceptions import ApplicationError, InvalidTransition
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def test_a_new_program_starts_at_kickoff_with_strategy_version_1():
    program = make_program(WorkspaceFactory(), program_type="evse")
    strategy = program_current_strategy(program=program)
    assert program.phase == ProgramPhase.KICKOFF
    assert strategy.version == 1 and strategy.allowed_event_types == ["charge", "idle"]


def test_a_strategy_change_is_a_new_version_carrying_the_rest_over():
    program = make_program(WorkspaceFactory(), strategy={"min_soc_percent": 25, "ramp_minutes": 15})
    v2 = event_strategy_create_version(program=program, data={"min_soc_percent": 30}, actor=None)
    assert (v2.version, v2.min_soc_percent, v2.ramp_minutes) == (2, 30, 15)
    assert program.strategies.get(version=1).min_soc_percent == 25  # history kept as it was
    entry = AuditLogEntry.objects.filter(action=AuditAction.EVENT_STRATEGY_VERSIONED).order_by("-id").first()
    assert entry.changes == {"min_soc_percent": [25, 30]}


def test_a_strategy_sets_its_reports_baseline_checked_before_it_is_saved():
    from dispatch.baselines import ADDITIVE, baseline_method_of

    program = make_program(WorkspaceFactory())
    v1 = program_current_strategy(program=program)
    assert baseline_method_of(v1).describe() == (
        "10 of 10 eligible days (same kind of day, within 45 days), multiplicative adjustment clamped to 0.8–1.2 "
        "over 4 h to 1 h before the event"
    )
    v2 = event_strategy_create_version(
        program=program, data={"baseline_highest": 5, "baseline_adjustment": "additive"}, actor=None
    )
    method = baseline_method_of(v2)
    assert (method.days, method.highest, method.adjustment) == (10, 5, ADDITIVE)
    with pytest.raises(ValidationError) as refused:
        event_strategy_create_version(program=program, data={"baseline_highest": 12}, actor=None)
    assert refused.value.message_dict == {
        "baseline_highest": ["Between 1 and the baseline days (10), or empty for all of them."]
    }
    with pytest.raises(ValidationError) as refused:
        event_strategy_create_version(
            program=program,
            data={
                "baseline_adjustment": "multiplicative",
                "baseline_factor_min": 1.1,
                "baseline_window_end_minutes": 300,
            },
            actor=None,
        )
    assert set(refused.value.message_dict) == {"baseline_factor_max", "baseline_window_end_minutes"}
    assert program.strategies.count() == 2  # nothing written by the refused versions


def advance(program, to, **kwargs):
    return program_set_phase(program=program, phase=to, actor=None, **kwargs)


def test_phases_move_one_step_at_a_time():
    program = make_program(WorkspaceFactory())
    with pytest.raises(InvalidTransition):
        advance(program, ProgramPhase.BULK_IMPORT, override_reason="Skipping ahead.")
    advance(program, ProgramPhase.SETUP, override_reason="Kickoff agreed by phone.")
    advance(program, ProgramPhase.KICKOFF)  # one step back is allowed
    assert program.phase == ProgramPhase.KICKOFF


def test_exit_criteria_gate_each_phase_up_to_launch_and_production_dispatch():
    workspace = WorkspaceFactory()
    lead = staff_user("lead", workspace, Role.PROGRAM_LEAD)
    program = make_program(workspace, launch_threshold=2)

    def sign(*keys):
        for key in keys:
            launch_criterion_sign_off(program=program, criterion=key, actor=lead)

    with pytest.raises(ApplicationError, match="Data scope and OEM"):
        advance(program, ProgramPhase.SETUP)
    sign("data_scope_confirmed", "contacts_and_launch_date_agreed")
    advance(program, ProgramPhase.SETUP)
    sign("enrollment_requirements_confirmed", "dispatch_configuration_confirmed")
    advance(program, ProgramPhase.BULK_IMPORT)
    assert program_phase_exit_blockers(program=program) == ["No devices imported and enrolled yet."]
    with pytest.raises(ApplicationError, match="No devices imported"):
        advance(program, ProgramPhase.DISCOVERY)
    devices = [DeviceFactory(site__contact__workspace=workspace) for _ in range(2)]
    for device in devices:
        enrollment_submit(device=device, program=program, actor=None)
    advance(program, ProgramPhase.DISCOVERY)
    with pytest.raises(ApplicationError, match="0 of 2 enrolled devices reporting"):
        advance(program, ProgramPhase.TESTING)
    for device in devices:
        device_mark_on_workspace(device=device, reason="found")
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(last_seen_at=timezone.now())
    advance(program, ProgramPhase.TESTING)
    with pytest.raises(ApplicationError, match="No test event has completed"):
        advance(program, ProgramPhase.TRAINING)
    now = timezone.now()

    def completed_test_event(end_to_end: bool) -> DispatchEvent:
        event = DispatchEvent.objects.create(
            workspace=workspace,
            program=program,
            strategy=program_current_strategy(program=program),
            name="Test 1",
            is_test=True,
            status="in_progress",
            starts_at=now - timedelta(hours=2),
            ends_at=now - timedelta(hours=1),
            completed_end_to_end=end_to_end,
        )
        return dispatch_event_set_status(event=event, status="completed")  # as the engine completes it

    completed_test_event(end_to_end=False)  # nothing confirmed, or not every device restored
    with pytest.raises(ApplicationError, match="No test event has completed end to end"):
        advance(program, ProgramPhase.TRAINING)
    passed = completed_test_event(end_to_end=True)
    program.refresh_from_db()
    assert program.test_event_passed_id == passed.pk
    # its report, as dispatch announces it once compiled
    event_emit(
        workspace_id=workspace.pk,
        type="program_event.report_compiled",
        key=f"program_event.report_compiled:{passed.pk}",
        data={**dispatch_event_data(passed), "report": {"compiledAt": now.isoformat(), "deliveredKwh": 1.0}},
    )
    program.refresh_from_db()
    assert program_phase_exit_blockers(program=program) == []
    with pytest.raises(ApplicationError, match="Dispatch validated end to end and signed off"):
        advance(program, ProgramPhase.TRAINING)
    sign("test_signed_off")
    advance(program, ProgramPhase.TRAINING)
    sign("ops_trained", "customer_support_trained", "engineering_trained", "program_leads_trained")
    advance(program, ProgramPhase.LAUNCHED)
    with pytest.raises(ApplicationError, match="needs every launch criterion; 2 not met"):
        program_set_production_dispatch(program=program, enabled=True, actor=None)
    sign("support_path_confirmed", "post_launch_check_in_scheduled")
    program_set_production_dispatch(program=program, enabled=True, actor=None)
    assert program.production_dispatch_enabled
    # stepping back out of launch turns production dispatch off
    advance(program, ProgramPhase.TRAINING)
    assert not program.production_dispatch_enabled
    assert (
        AuditLogEntry.objects.filter(action=AuditAction.PROGRAM_PHASE_CHANGED, object_id=str(program.pk)).count() == 7
    )


def test_production_dispatch_needs_launch():
    program = make_program(WorkspaceFactory())
    with pytest.raises(ApplicationError, match="not launched"):
        program_set_production_dispatch(program=program, enabled=True, actor=None)


def test_automatic_programs_approve_at_once_manual_ones_wait():
    workspace = WorkspaceFactory()
    auto = make_program(workspace, slug="auto")
    manual = make_program(workspace, slug="manual", enrollment_approval="manual")
    device = DeviceFactory(site__contact__workspace=workspace)
    assert enrollment_submit(device=device, program=auto, actor=None).status == EnrollmentStatus.APPROVED
    pending = enrollment_submit(device=device, program=manual, actor=None)
    assert pending.status == EnrollmentStatus.SUBMITTED
    with pytest.raises(ApplicationError, match="already enrolled"):
        enrollment_submit(device=device, program=manual, actor=None)
    enrollment_approve(enrollment=pending, actor=None)
    enrollment_unenroll(enrollment=pending, actor=None, reason="Customer moved")
    assert pending.status == EnrollmentStatus.UNENROLLED
    with pytest.raises(InvalidTransition):
        enrollment_approve(enrollment=pending, actor=None)


def test_rejection_needs_a_reason_and_is_final():
    workspace = WorkspaceFactory()
    program = make_program(workspace, enrollment_approval="manual")
    enrollment = enrollment_submit(
        device=DeviceFactory(site__contact__workspace=workspace), program=program, actor=None
    )
    with pytest.raises(ApplicationError):
        enrollment_reject(enrollment=enrollment, actor=None, reason="")
    enrollment_reject(enrollment=enrollment, actor=None, reason="Not in service territory")
    assert enrollment.status == EnrollmentStatus.REJECTED and enrollment.reason == "Not in service territory"
    with pytest.raises(InvalidTransition):
        enrollment_approve(enrollment=enrollment, actor=None)


def test_a_program_timezone_is_changed_through_the_service_audited_and_checked():
    from programs.services import program_update

    program = make_program(WorkspaceFactory())
    changes = program_update(program=program, data={"timezone": "America/Los_Angeles"}, actor=None)
    assert changes == {"timezone": ["UTC", "America/Los_Angeles"]}
    assert AuditLogEntry.objects.filter(object_id=str(program.pk), changes__has_key="timezone").exists()
    with pytest.raises(ValidationError, match="not an IANA timezone name"):
        program_update(program=program, data={"timezone": "Mars/Olympus_Mons"}, actor=None)
