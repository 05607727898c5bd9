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
