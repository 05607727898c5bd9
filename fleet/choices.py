from django.db import models
from django.utils.translation import gettext_lazy as _

from texture_portal.state_machine import Transitions


class DeviceType(models.TextChoices):
    BATTERY = "battery", _("Battery")
    CHARGER = "charger", _("EV charger")
    VEHICLE = "vehicle", _("Vehicle")
    INVERTER = "inverter", _("Inverter")
    THERMOSTAT = "thermostat", _("Thermostat")


class DeviceState(models.TextChoices):
    REGISTERED = "registered", _("Registered System")
    ON_WORKSPACE = "on_workspace", _("Device on Workspace")
    OFFLINE = "offline", _("Offline")


DEVICE_STATE_TRANSITIONS = Transitions(
    "A device",
    DeviceState,
    {
        # discovered through the OEM API
        DeviceState.REGISTERED: {DeviceState.ON_WORKSPACE},
        # stops reporting, or is unbound at the OEM (credentials removed, device re-homed)
        DeviceState.ON_WORKSPACE: {DeviceState.OFFLINE, DeviceState.REGISTERED},
        # reports again, or is unbound
        DeviceState.OFFLINE: {DeviceState.ON_WORKSPACE, DeviceState.REGISTERED},
    },
)


class GridServicesStatus(models.TextChoices):
    """Whether the device takes part in its OEM's grid-services channel, as the OEM's API last showed it."""

    ENROLLED = "enrolled", _("Enrolled")
    # the OEM tests and configures a device before it takes grid-services commands (not instantaneous)
    PENDING = "pending", _("Pending (OEM testing)")
    NOT_ENROLLED = "not_enrolled", _("Not enrolled")
    # its OEM has no grid-services channel this portal reaches
    UNSUPPORTED = "unsupported", _("Unsupported")
    UNKNOWN = "unknown", _("Unknown")


class ChargingState(models.TextChoices):
    CHARGING = "charging", _("Charging")
    DISCHARGING = "discharging", _("Discharging")
    IDLE = "idle", _("Idle")
    UNKNOWN = "unknown", _("Unknown")


class GridStatus(models.TextChoices):
    IDLE = "idle", _("Idle")
    IMPORTING = "importing", _("Importing")
    EXPORTING = "exporting", _("Exporting")
    UNKNOWN = "unknown", _("Unknown")


class BatteryStrategy(models.TextChoices):
    SELF_CONSUMPTION = "self_consumption", _("Self consumption")
    TIME_OF_USE = "time_of_use", _("Time of use")
    BACKUP = "backup", _("Backup")
    UNKNOWN = "unknown", _("Unknown")


class ImportJobStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded")
    VALIDATING = "validating", _("Validating")
    VALIDATED = "validated", _("Ready to import")
    INVALID = "invalid", _("Has errors")
    IMPORTING = "importing", _("Importing")
    IMPORTED = "imported", _("Imported")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired (file removed)")


IMPORT_JOB_TRANSITIONS = Transitions(
    "An import job",
    ImportJobStatus,
    {
        ImportJobStatus.UPLOADED: {ImportJobStatus.VALIDATING, ImportJobStatus.EXPIRED},
        ImportJobStatus.VALIDATING: {ImportJobStatus.VALIDATED, ImportJobStatus.INVALID, ImportJobStatus.FAILED},
        ImportJobStatus.VALIDATED: {ImportJobStatus.IMPORTING, ImportJobStatus.EXPIRED},
        ImportJobStatus.INVALID: {ImportJobStatus.EXPIRED},
        # the data may have changed since the preview: importing re-checks and can still find errors
        ImportJobStatus.IMPORTING: {ImportJobStatus.IMPORTED, ImportJobStatus.INVALID, ImportJobStatus.FAILED},
        ImportJobStatus.FAILED: {ImportJobStatus.EXPIRED},
    },
)


class SupportLevel(models.TextChoices):
    PRODUCTION = "production", _("Production")
    PLANNED = "planned", _("Planned")


class SocBand(models.TextChoices):
    """A device's state of charge as its latest reading shows it, in the bands Ops filters the fleet by
    (`fleet.selectors.soc_band_q`)."""

    BELOW_20 = "0-20", _("Below 20 %")
    FROM_20 = "20-50", _("20–50 %")
    FROM_50 = "50-80", _("50–80 %")
    FROM_80 = "80-100", _("80 % and above")
    UNKNOWN = "unknown", _("Unknown (no reading or no SoC)")


class LastSeen(models.TextChoices):
    """When a device last reported (its latest reading's measurement time), as Ops filters the fleet by it
    (`fleet.selectors.last_seen_q`): within a span (cumulative), more than a day ago, or never."""

    WITHIN_15_MINUTES = "15m", _("Within 15 minutes")
    WITHIN_HOUR = "1h", _("Within the last hour")
    WITHIN_DAY = "24h", _("Within the last 24 hours")
    OLDER = "older", _("More than 24 hours ago")
    NEVER = "never", _("Never")


# -- alerts (Texture's shape: upper-case values, as integrators see them) ------------------------------------


class AlertType(models.TextChoices):
    """Texture's alert types, and two of the portal's own (dispatch, integrations)."""

    COMMUNICATIONS = "COMMUNICATIONS", _("Communications")
    POWER_LIMIT = "POWER_LIMIT", _("Power limit")
    GRID_STATUS = "GRID_STATUS", _("Grid status")
    HARDWARE_FAULT = "HARDWARE_FAULT", _("Hardware fault")
    SOFTWARE_PROCESS = "SOFTWARE_PROCESS", _("Software process")
    SAFETY = "SAFETY", _("Safety")
    DISPATCH = "DISPATCH", _("Dispatch")
    INTEGRATION = "INTEGRATION", _("Integration")


class AlertSubtype(models.TextChoices):
    """The subtypes the portal's own rules raise. The column takes others too (an OEM's or partner's subtype,
    e.g. Texture's BATTERY_METER_COMMS), so it has no database check."""

    DEVICE_OFFLINE = "DEVICE_OFFLINE", _("Device offline")
    TELEMETRY_STUCK = "TELEMETRY_STUCK", _("Telemetry not changing")
    IMPORT_FAILED = "IMPORT_FAILED", _("Fleet import failed")
    COMMAND_FAILED = "COMMAND_FAILED", _("Command failed")
    DEVICE_NOT_RESPONDING = "DEVICE_NOT_RESPONDING", _("Device not responding to a command")
    PARTICIPATION_BELOW_FLOOR = "PARTICIPATION_BELOW_FLOOR", _("Event participation below the floor")
    CREDENTIALS_REFUSED = "CREDENTIALS_REFUSED", _("Integration credentials refused")


class AlertSeverity(models.TextChoices):
    CRITICAL = "CRITICAL", _("Critical")
    WARNING = "WARNING", _("Warning")
    INFO = "INFO", _("Info")


class AlertStatus(models.TextChoices):
    OPEN = "OPEN", _("Open")
    ACKNOWLEDGED = "ACKNOWLEDGED", _("Acknowledged")
    IGNORED = "IGNORED", _("Ignored")
    RESOLVED = "RESOLVED", _("Resolved")


# Not resolved: the occurrence of its cause is still the live one. At most one per cause (a database
# constraint); raising the cause again counts on it instead of adding a row. Ignored stays in: ignoring an
# alert silences this occurrence (a periodic rule finding the same cause again must not open a fresh alert),
# and the system resolves it when the cause clears, so the next occurrence is a new alert.
ALERT_ACTIVE = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.IGNORED)
# What snoozing applies to, and what "needs attention" (and the e-mail) is about, once any snooze is over.
ALERT_SNOOZABLE = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)

ALERT_STATUS_TRANSITIONS = Transitions(
    "An alert",
    AlertStatus,
    {
        AlertStatus.OPEN: {AlertStatus.ACKNOWLEDGED, AlertStatus.IGNORED, AlertStatus.RESOLVED},
        AlertStatus.ACKNOWLEDGED: {AlertStatus.IGNORED, AlertStatus.RESOLVED},
        # reopened by staff (ignored by mistake), or resolved (by staff, or by the system: the cause cleared)
        AlertStatus.IGNORED: {AlertStatus.OPEN, AlertStatus.RESOLVED},
        # resolved is final: the cause coming back is a new alert
    },
)
