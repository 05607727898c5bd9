from django.db import models
from django.utils.translation import gettext_lazy as _

from texture_portal.state_machine import Transitions


class DispatchTrigger(models.TextChoices):
    MANUAL = "manual", _("Manual")
    SCHEDULE = "schedule", _("Schedule")
    SIGNAL = "signal", _("Signal")


class DispatchEventStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


DISPATCH_EVENT_TRANSITIONS = Transitions(
    "A dispatch event",
    DispatchEventStatus,
    {
        DispatchEventStatus.DRAFT: {DispatchEventStatus.SCHEDULED, DispatchEventStatus.CANCELLED},
        DispatchEventStatus.SCHEDULED: {
            DispatchEventStatus.IN_PROGRESS,
            DispatchEventStatus.CANCELLED,
            DispatchEventStatus.DRAFT,
        },
        DispatchEventStatus.IN_PROGRESS: {DispatchEventStatus.COMPLETED, DispatchEventStatus.CANCELLED},
    },
)


class CommandSlug(models.TextChoices):
    BATTERY_SET_OPERATING_MODE = "battery:set-operating-mode", "battery:set-operating-mode"
    BATTERY_SET_RESERVE = "battery:set-reserve", "battery:set-reserve"
    CHARGER_SET_OPERATING_MODE = "charger:set-operating-mode", "charger:set-operating-mode"
    VEHICLE_SET_OPERATING_MODE = "vehicle:set-operating-mode", "vehicle:set-operating-mode"
    VEHICLE_SET_CHARGE_LIMIT = "vehicle:set-charge-limit", "vehicle:set-charge-limit"


class CommandStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    SUCCESS = "success", _("Succeeded")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


COMMAND_TRANSITIONS = Transitions(
    "A command",
    CommandStatus,
    {
        CommandStatus.PENDING: {CommandStatus.SENT, CommandStatus.FAILED, CommandStatus.SKIPPED},
        # sent → skipped: a batch's command its worker had not called yet when its event or action ended
        CommandStatus.SENT: {CommandStatus.SUCCESS, CommandStatus.FAILED, CommandStatus.SKIPPED},
    },
)


class CommandPurpose(models.TextChoices):
    """Why a command exists: sent by a person or an integrator, an event action's command, or a restore."""

    MANUAL = "manual", _("Manual")
    ACTION = "action", _("Event action")
    RESTORE = "restore", _("Restore after the event")


class ParticipationStatus(models.TextChoices):
    """Where one targeted device stands in one event (its latest action)."""

    INCLUDED = "included", _("Included")  # eligible; its command waits for its ramp slot
    EXCLUDED = "excluded", _("Excluded")  # not taking part in this action, with the reason
    COMMANDED = "commanded", _("Commanded")  # the OEM accepted the command
    CONFIRMED = "confirmed", _("Confirmed")  # its telemetry shows it doing what it was asked
    NOT_RESPONDING = "not_responding", _("Not responding")  # accepted, but its telemetry disagrees
    FAILED = "failed", _("Failed")  # the command failed
    OPTED_OUT = "opted_out", _("Opted out")  # taken out of this event by staff or an integrator
    RESTORED = "restored", _("Restored")  # given back the mode and reserve it had before the event
    RESTORE_FAILED = "restore_failed", _("Restore failed")


# Taking part: a device in one of these is counted as busy by overlapping events.
PARTICIPATING = {
    ParticipationStatus.INCLUDED,
    ParticipationStatus.COMMANDED,
    ParticipationStatus.CONFIRMED,
    ParticipationStatus.NOT_RESPONDING,
}
# Holding a commanded state the event must give back.
NEEDS_RESTORE = {
    ParticipationStatus.COMMANDED,
    ParticipationStatus.CONFIRMED,
    ParticipationStatus.NOT_RESPONDING,
}
_RECLASSIFIABLE = {
    ParticipationStatus.EXCLUDED,
    ParticipationStatus.FAILED,
    ParticipationStatus.RESTORED,
    ParticipationStatus.RESTORE_FAILED,
}

PARTICIPATION_TRANSITIONS = Transitions(
    "A participation",
    ParticipationStatus,
    {
        ParticipationStatus.INCLUDED: {
            ParticipationStatus.COMMANDED,
            ParticipationStatus.FAILED,
            ParticipationStatus.EXCLUDED,  # Storm Guard at send time, the window ended before its slot
            ParticipationStatus.OPTED_OUT,
        },
        ParticipationStatus.COMMANDED: {
            ParticipationStatus.INCLUDED,  # the next action follows at once: no restore in between
            ParticipationStatus.CONFIRMED,
            ParticipationStatus.NOT_RESPONDING,
            ParticipationStatus.RESTORED,
            ParticipationStatus.RESTORE_FAILED,
            ParticipationStatus.OPTED_OUT,
        },
        ParticipationStatus.CONFIRMED: {
            ParticipationStatus.INCLUDED,
            ParticipationStatus.RESTORED,
            ParticipationStatus.RESTORE_FAILED,
            ParticipationStatus.OPTED_OUT,
        },
        ParticipationStatus.NOT_RESPONDING: {
            ParticipationStatus.INCLUDED,
            ParticipationStatus.CONFIRMED,
            ParticipationStatus.RESTORED,
            ParticipationStatus.RESTORE_FAILED,
            ParticipationStatus.OPTED_OUT,
        },
        # a later action classifies the device afresh
        **{
            status: {ParticipationStatus.INCLUDED, ParticipationStatus.EXCLUDED, ParticipationStatus.OPTED_OUT}
            for status in _RECLASSIFIABLE
        },
    },
)


class ExclusionReason(models.TextChoices):
    """Why a targeted device does not take part in an action (the code; the participation adds plain words)."""

    NOT_ENROLLED = "not_enrolled", _("Not enrolled")
    NOT_ON_WORKSPACE = "not_on_workspace", _("Not on workspace")
    STALE_TELEMETRY = "stale_telemetry", _("No fresh telemetry")
    UNSUPPORTED = "unsupported", _("Cannot do this action")
    SOC_UNKNOWN = "soc_unknown", _("State of charge unknown")
    SOC_OUT_OF_RANGE = "soc_out_of_range", _("State of charge outside the strategy's range")
    STORM_GUARD = "storm_guard", _("Storm Guard active")
    OVERLAPPING_EVENT = "overlapping_event", _("In another event")
    INTEGRATION_DISABLED = "integration_disabled", _("Integration not enabled")
    NO_GRID_SERVICES = "no_grid_services", _("No grid services")
    WINDOW_ENDED = "window_ended", _("Window ended before its turn")
