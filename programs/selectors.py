"""Reads of programs: the current strategy, eligibility counts, and the launch checklist (measured and signed-off
exit criteria of every phase)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, Q
from django.utils import timezone

from fleet.choices import DeviceState
from programs.choices import PHASE_ORDER, LaunchCriterion, ProgramPhase
from programs.launch import REPORTING_WINDOW_HOURS, Criterion, criteria_of
from programs.models import Enrollment, EventStrategy, LaunchCriterionSignOff, Program

ACTIVE_ENROLLMENT = ["submitted", "approved"]


def program_current_strategy(*, program: Program) -> EventStrategy | None:
    return program.strategies.order_by("-version").first()


def program_enrolled_count(*, program: Program) -> int:
    return Enrollment.objects.filter(program=program, status__in=ACTIVE_ENROLLMENT).count()


def program_dispatch_eligible_count(*, program: Program) -> int:
    """Approved enrollments whose device is reachable (Device on Workspace)."""
    return Enrollment.objects.filter(program=program, status="approved", device__state=DeviceState.ON_WORKSPACE).count()


# -- the launch checklist ------------------------------------------------------------------------------------


@dataclass
class CriterionState:
    """One criterion of one program, as of now: met or not, with the figure that says why."""

    criterion: Criterion
    met: bool
    figure: str
    # measured criteria: the numbers behind the figure (the API's `measurement`)
    measurement: dict = field(default_factory=dict)
    sign_off: LaunchCriterionSignOff | None = None

    @property
    def key(self) -> str:
        return str(self.criterion.key)

    @property
    def label(self) -> str:
        return self.criterion.label


@dataclass
class PhaseChecklist:
    phase: ProgramPhase
    criteria: list[CriterionState]
    is_current: bool
    is_past: bool

    @property
    def label(self) -> str:
        return str(self.phase.label)

    @property
    def met(self) -> bool:
        return all(c.met for c in self.criteria)

    @property
    def unmet(self) -> list[CriterionState]:
        return [c for c in self.criteria if not c.met]


@dataclass
class LaunchChecklist:
    program: Program
    phases: list[PhaseChecklist]

    @property
    def criteria(self) -> list[CriterionState]:
        return [c for phase in self.phases for c in phase.criteria]

    @property
    def unmet(self) -> list[CriterionState]:
        return [c for c in self.criteria if not c.met]

    @property
    def criteria_count(self) -> int:
        return len(self.criteria)

    @property
    def met_count(self) -> int:
        return sum(c.met for c in self.criteria)

    @property
    def all_met(self) -> bool:
        return not self.unmet

    def phase(self, phase: ProgramPhase | str) -> PhaseChecklist:
        return next(p for p in self.phases if p.phase == phase)

    @property
    def production_dispatch_blockers(self) -> list[str]:
        """Why production dispatch could not be enabled now (empty: it could)."""
        blockers = []
        if self.program.phase != ProgramPhase.LAUNCHED:
            blockers.append(f"The program is in “{self.program.get_phase_display()}”, not launched.")
        blockers += [f"{c.label}: {c.figure}" for c in self.unmet]
        return blockers


def _percent(part: int, whole: int) -> str:
    """Rounded down, so a share shown as the target's meets it (399 of 500 is 79 %, not 80 %)."""
    return f"{100 * part // whole} %" if whole else "—"


def _measure(program: Program, counts: dict) -> dict[str, tuple[bool, str, dict]]:
    """The measured criteria from the one aggregate over the program's enrollments and the program's own row."""
    enrolled, mislinked = counts["enrolled"], counts["mislinked"]
    reporting, eligible = counts["reporting"], counts["eligible"]
    target = program.reporting_target_percent
    threshold = program.launch_threshold
    measured: dict[str, tuple[bool, str, dict]] = {}

    if enrolled == 0:
        figure = "No devices imported and enrolled yet."
    elif mislinked:
        figure = f"{mislinked} of {enrolled} enrolled devices not linked to their site's contact in this workspace."
    else:
        figure = f"{enrolled} enrolled devices, each linked to its site and contact."
    measured[LaunchCriterion.DEVICES_IMPORTED_AND_LINKED] = (
        enrolled > 0 and mislinked == 0,
        figure,
        {"count": enrolled - mislinked, "total": enrolled},
    )

    measured[LaunchCriterion.FLEET_REPORTING] = (
        enrolled > 0 and reporting * 100 >= target * enrolled,
        (
            f"{reporting} of {enrolled} enrolled devices reporting "
            f"({_percent(reporting, enrolled)}, target {target} %)."
            if enrolled
            else f"No devices enrolled yet (target {target} % reporting)."
        ),
        {"count": reporting, "total": enrolled, "targetPercent": target},
    )

    if program.test_event_passed_id:
        figure = (
            f"Test event #{program.test_event_passed_id} completed end to end on {_when(program.test_event_passed_at)}."
        )
    else:
        figure = "No test event has completed end to end yet."
    measured[LaunchCriterion.TEST_EVENT_COMPLETED] = (
        program.test_event_passed_id is not None,
        figure,
        {"dispatchEventId": program.test_event_passed_id, "at": program.test_event_passed_at},
    )

    if program.test_report_event_id:
        figure = (
            f"Report of test event #{program.test_report_event_id} compiled on "
            f"{_when(program.test_report_compiled_at)}."
        )
    else:
        figure = "No report of a test event that completed end to end has been compiled yet."
    measured[LaunchCriterion.TEST_REPORT_COMPILED] = (
        program.test_report_event_id is not None,
        figure,
        {"dispatchEventId": program.test_report_event_id, "at": program.test_report_compiled_at},
    )

    measured[LaunchCriterion.LAUNCH_THRESHOLD_MET] = (
        threshold > 0 and eligible >= threshold,
        (
            f"{eligible} enrolled dispatch-eligible devices, launch threshold {threshold}."
            if threshold
            else f"{eligible} enrolled dispatch-eligible devices; no launch threshold set on the program."
        ),
        {"count": eligible, "threshold": threshold},
    )
    return measured


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def program_launch_checklist(*, program: Program, now: datetime | None = None) -> LaunchChecklist:
    """Every phase's exit criteria for `program`, each met or not with its figure, or who signed it off and when.

    Two queries whatever the fleet's size: one aggregate over the program's enrollments and their devices
    and sites, one for the sign-offs (with who signed). The program's own row (test events, targets) is
    read as given: pass a fresh or locked one when deciding on it.
    """
    since = (now or timezone.now()) - timedelta(hours=REPORTING_WINDOW_HOURS)
    counts = Enrollment.objects.filter(program=program, status__in=ACTIVE_ENROLLMENT).aggregate(
        enrolled=Count("pk"),
        # linked: the device's contact is its site's contact, all in the program's workspace
        mislinked=Count(
            "pk",
            filter=~Q(device__contact_id=F("device__site__contact_id"))
            | ~Q(device__workspace_id=program.workspace_id)
            | ~Q(device__site__workspace_id=program.workspace_id),
        ),
        reporting=Count("pk", filter=Q(device__state=DeviceState.ON_WORKSPACE, device__last_seen_at__gte=since)),
        eligible=Count("pk", filter=Q(status="approved", device__state=DeviceState.ON_WORKSPACE)),
    )
    measured = _measure(program, counts)
    sign_offs = {s.criterion: s for s in LaunchCriterionSignOff.objects.filter(program=program)}

    current = PHASE_ORDER.index(program.phase)
    phases = []
    for index, phase in enumerate(PHASE_ORDER):
        states = []
        for criterion in criteria_of(phase):
            if criterion.is_measured:
                met, figure, measurement = measured[criterion.key]
                states.append(CriterionState(criterion, met, figure, measurement))
            else:
                sign_off = sign_offs.get(criterion.key)
                figure = (
                    f"Signed off by {sign_off.signed_off_by_label} on {_when(sign_off.signed_off_at)}."
                    if sign_off
                    else "Not signed off yet."
                )
                states.append(CriterionState(criterion, sign_off is not None, figure, sign_off=sign_off))
        phases.append(PhaseChecklist(ProgramPhase(phase), states, index == current, index < current))
    return LaunchChecklist(program=program, phases=phases)


def program_phase_exit_blockers(*, program: Program) -> list[str]:
    """The measured exit criteria of the program's current phase that are not met yet, as sentences.

    (Leaving a phase also needs its sign-offs: `programs.services.program_set_phase` checks the whole phase.)
    """
    checklist = program_launch_checklist(program=program)
    return [c.figure for c in checklist.phase(program.phase).criteria if c.criterion.is_measured and not c.met]


def programs_overview(*, workspace_ids: list[int]) -> list[dict]:
    """Each program of these workspaces with its phase, enrolled count against its launch threshold and whether
    production dispatch is on: one query, whatever the number of enrollments (the program lead's home)."""
    rows = (
        Program.objects.filter(workspace_id__in=workspace_ids)
        .select_related("workspace")
        .annotate(enrolled=Count("enrollments", filter=Q(enrollments__status__in=ACTIVE_ENROLLMENT)))
        .order_by("workspace__name", "name")
    )
    return [
        {
            "program": program,
            "enrolled": program.enrolled,
            "threshold": program.launch_threshold,
            "share_of_threshold": min(100, round(100 * program.enrolled / program.launch_threshold))
            if program.launch_threshold
            else None,
        }
        for program in rows
    ]
