from django.db import models
from django.utils.translation import gettext_lazy as _

from texture_portal.state_machine import Transitions


class ProgramType(models.TextChoices):
    BATTERY = "battery", _("Battery")
    EVSE = "evse", _("EV charger (EVSE)")
    EV = "ev", _("Electric vehicle")
    THERMOSTAT = "thermostat", _("Thermostat")


class ProgramPhase(models.TextChoices):
    """The implementation guide's phases, in order."""

    KICKOFF = "kickoff", _("Kickoff & prerequisites")
    SETUP = "setup", _("Program setup")
    BULK_IMPORT = "bulk_import", _("Bulk import")
    DISCOVERY = "discovery", _("Device discovery")
    TESTING = "testing", _("Testing period")
    TRAINING = "training", _("Training")
    LAUNCHED = "launched", _("Launched")


PHASE_ORDER = list(ProgramPhase.values)

# One step forward at a time (each phase has exit criteria), or one step back to correct a mistake.
PROGRAM_PHASE_TRANSITIONS = Transitions(
    "A program",
    ProgramPhase,
    {
        phase: {PHASE_ORDER[j] for j in (i - 1, i + 1) if 0 <= j < len(PHASE_ORDER)}
        for i, phase in enumerate(PHASE_ORDER)
    },
)


class EnrollmentApproval(models.TextChoices):
    AUTOMATIC = "automatic", _("Automatic")
    MANUAL = "manual", _("Manual")


class EnrollmentStatus(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    UNENROLLED = "unenrolled", _("Unenrolled")


ENROLLMENT_TRANSITIONS = Transitions(
    "An enrollment",
    EnrollmentStatus,
    {
        EnrollmentStatus.SUBMITTED: {EnrollmentStatus.APPROVED, EnrollmentStatus.REJECTED},
        EnrollmentStatus.APPROVED: {EnrollmentStatus.UNENROLLED},
    },
)


class EventType(models.TextChoices):
    CHARGE = "charge", _("Charge")
    DISCHARGE = "discharge", _("Discharge")
    IDLE = "idle", _("Idle")


class BaselineAdjustment(models.TextChoices):
    """The day-of adjustment of an event report's baseline (dispatch-anchors.md §1)."""

    MULTIPLICATIVE = "multiplicative", _("Multiplicative (scaled to the hours before, clamped)")
    ADDITIVE = "additive", _("Additive (shifted by the difference in the hours before)")
    NONE = "none", _("None")


class CriterionKind(models.TextChoices):
    """How a launch criterion holds: computed from the program's data, or signed off by staff."""

    MEASURED = "measured", _("Measured")
    SIGN_OFF = "sign_off", _("Signed off by staff")


class LaunchCriterion(models.TextChoices):
    """The exit criteria of the implementation guide's phases (their phase, kind and wording: programs.launch)."""

    # kickoff
    DATA_SCOPE_CONFIRMED = "data_scope_confirmed", _("Data scope and OEM(s) confirmed")
    CONTACTS_AND_LAUNCH_DATE_AGREED = "contacts_and_launch_date_agreed", _("Key contacts and target launch date agreed")
    # program setup
    ENROLLMENT_REQUIREMENTS_CONFIRMED = (
        "enrollment_requirements_confirmed",
        _("Enrollment requirements confirmed (who qualifies; automatic or manual approval)"),
    )
    DISPATCH_CONFIGURATION_CONFIRMED = "dispatch_configuration_confirmed", _("Dispatch configuration confirmed")
    # bulk import
    DEVICES_IMPORTED_AND_LINKED = "devices_imported_and_linked", _("Devices imported, enrolled and correctly linked")
    # device discovery
    FLEET_REPORTING = "fleet_reporting", _("Enough of the fleet reporting telemetry (Device on Workspace)")
    # testing
    TEST_EVENT_COMPLETED = "test_event_completed", _("A test event completed end to end")
    TEST_REPORT_COMPILED = "test_report_compiled", _("A test event's report compiled")
    TEST_SIGNED_OFF = "test_signed_off", _("Dispatch validated end to end and signed off")
    # training
    OPS_TRAINED = "ops_trained", _("Ops trained on live data")
    CUSTOMER_SUPPORT_TRAINED = "customer_support_trained", _("Customer Support trained on live data")
    ENGINEERING_TRAINED = "engineering_trained", _("Engineering trained on live data")
    PROGRAM_LEADS_TRAINED = "program_leads_trained", _("Program Leads trained on live data")
    # launch
    LAUNCH_THRESHOLD_MET = "launch_threshold_met", _("Enrolled dispatch-eligible devices meet the launch threshold")
    SUPPORT_PATH_CONFIRMED = "support_path_confirmed", _("Ongoing support cadence and escalation path confirmed")
    POST_LAUNCH_CHECK_IN_SCHEDULED = "post_launch_check_in_scheduled", _("Post-launch check-in scheduled")
