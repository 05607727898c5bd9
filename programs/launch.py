"""The launch checklist: the implementation guide's phases and their exit criteria, in one place.

Each criterion belongs to one phase and is either *measured* (computed from the program's data by
`programs.selectors.program_launch_checklist`) or *signed off* by staff (`LaunchCriterionSignOff`, written by
`programs.services.launch_criterion_sign_off` / `launch_criterion_revoke`).

How the checklist gates the program (`programs.services`):
- moving forward out of a phase needs that phase's criteria, or an override reason (audited with the criteria
  it skipped): the guide's phases overlap in practice (training can be booked before the test event), so
  staff may move on knowingly, but never silently;
- production dispatch needs every criterion of every phase, with no override: it is the one step that
  commands customers' devices for real.
"""

from dataclasses import dataclass

from programs.choices import CriterionKind, LaunchCriterion, ProgramPhase

# "Reporting" for the discovery criterion: a Device on Workspace whose telemetry was seen this recently.
REPORTING_WINDOW_HOURS = 24


@dataclass(frozen=True)
class Criterion:
    key: LaunchCriterion
    phase: ProgramPhase
    kind: CriterionKind
    help: str = ""

    @property
    def label(self) -> str:
        return str(self.key.label)

    @property
    def is_measured(self) -> bool:
        return self.kind == CriterionKind.MEASURED


M, S = CriterionKind.MEASURED, CriterionKind.SIGN_OFF
C, P = LaunchCriterion, ProgramPhase

LAUNCH_CHECKLIST: tuple[Criterion, ...] = (
    Criterion(C.DATA_SCOPE_CONFIRMED, P.KICKOFF, S, "Program type, OEMs (all supported integrations), device count."),
    Criterion(C.CONTACTS_AND_LAUNCH_DATE_AGREED, P.KICKOFF, S, "Program manager, technical lead, project team."),
    Criterion(C.ENROLLMENT_REQUIREMENTS_CONFIRMED, P.SETUP, S),
    Criterion(C.DISPATCH_CONFIGURATION_CONFIRMED, P.SETUP, S, "Event types, SoC bounds, ramp (the event strategy)."),
    Criterion(
        C.DEVICES_IMPORTED_AND_LINKED,
        P.BULK_IMPORT,
        M,
        "At least one device enrolled; every enrolled device linked to its site and the site's contact.",
    ),
    Criterion(
        C.FLEET_REPORTING,
        P.DISCOVERY,
        M,
        f"Share of enrolled devices that are Device on Workspace and reported within {REPORTING_WINDOW_HOURS} h, "
        "against the program's reporting target.",
    ),
    Criterion(
        C.TEST_EVENT_COMPLETED,
        P.TESTING,
        M,
        "A device confirmed by its telemetry and every commanded device restored (program_event.completed).",
    ),
    Criterion(
        C.TEST_REPORT_COMPILED,
        P.TESTING,
        M,
        "The report of a test event that completed end to end (program_event.report_compiled).",
    ),
    Criterion(C.TEST_SIGNED_OFF, P.TESTING, S, "Command roundtrip, telemetry cadence, recovery after a drop."),
    Criterion(C.OPS_TRAINED, P.TRAINING, S, "Alerts, dispatch monitoring."),
    Criterion(C.CUSTOMER_SUPPORT_TRAINED, P.TRAINING, S, "Site lookup, first-line troubleshooting."),
    Criterion(C.ENGINEERING_TRAINED, P.TRAINING, S, "API access, programmatic pulls, webhooks."),
    Criterion(C.PROGRAM_LEADS_TRAINED, P.TRAINING, S, "KPIs, rollups, dispatch history."),
    Criterion(
        C.LAUNCH_THRESHOLD_MET,
        P.LAUNCHED,
        M,
        "Approved enrollments whose device is Device on Workspace, against the program's launch threshold.",
    ),
    Criterion(C.SUPPORT_PATH_CONFIRMED, P.LAUNCHED, S),
    Criterion(C.POST_LAUNCH_CHECK_IN_SCHEDULED, P.LAUNCHED, S),
)

CRITERIA: dict[str, Criterion] = {str(c.key): c for c in LAUNCH_CHECKLIST}
SIGN_OFF_CRITERIA: tuple[str, ...] = tuple(str(c.key) for c in LAUNCH_CHECKLIST if not c.is_measured)

assert set(CRITERIA) == set(LaunchCriterion.values), "every LaunchCriterion is on the checklist exactly once"


def criteria_of(phase: ProgramPhase | str) -> list[Criterion]:
    return [c for c in LAUNCH_CHECKLIST if c.phase == phase]
