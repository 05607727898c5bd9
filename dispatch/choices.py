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
        CommandStatus.SENT: {CommandStatus.SUCCESS, CommandStatus.FAILED},
    },
)
