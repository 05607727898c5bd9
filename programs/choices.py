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
