"""Reads of programs: the current strategy, eligibility counts, and the measured phase exit criteria."""

from fleet.choices import DeviceState
from programs.choices import EnrollmentStatus, ProgramPhase
from programs.models import Enrollment, EventStrategy, Program


def program_current_strategy(*, program: Program) -> EventStrategy | None:
    return program.strategies.order_by("-version").first()


def program_enrolled_count(*, program: Program) -> int:
    return Enrollment.objects.filter(
        program=program, status__in=[EnrollmentStatus.SUBMITTED, EnrollmentStatus.APPROVED]
    ).count()


def program_dispatch_eligible_count(*, program: Program) -> int:
    """Approved enrollments whose device is reachable (Device on Workspace)."""
    return Enrollment.objects.filter(
        program=program, status=EnrollmentStatus.APPROVED, device__state=DeviceState.ON_WORKSPACE
    ).count()


def program_phase_exit_blockers(*, program: Program) -> list[str]:
    """The measurable exit criteria of the program's current phase that are not met yet.

    The other criteria of the implementation guide are staff sign-offs, which the person moving the phase
    gives by doing so (and the audit log records who did).
    """
    phase = program.phase
    blockers: list[str] = []
    if phase == ProgramPhase.BULK_IMPORT and program_enrolled_count(program=program) == 0:
        blockers.append("No devices are imported and enrolled in the program yet.")
    elif phase == ProgramPhase.DISCOVERY and program_dispatch_eligible_count(program=program) == 0:
        blockers.append("No enrolled device is reporting telemetry (Device on Workspace) yet.")
    elif phase == ProgramPhase.TESTING and program.test_event_passed_id is None:
        blockers.append(
            "No test event has completed end to end yet (a device confirmed by its telemetry and every "
            "commanded device restored)."
        )
    elif phase == ProgramPhase.TRAINING:
        eligible = program_dispatch_eligible_count(program=program)
        if eligible < program.launch_threshold:
            blockers.append(
                f"{eligible} enrolled dispatch-eligible devices; the launch threshold is {program.launch_threshold}."
            )
    return blockers
