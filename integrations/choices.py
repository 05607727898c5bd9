from django.db import models
from django.utils.translation import gettext_lazy as _


class IntegrationChannel(models.TextChoices):
    """The OEM clouds the portal speaks to: one adapter each. EV brands come through Smartcar."""

    TESLA = "tesla", _("Tesla Fleet API")
    FRANKLINWH = "franklinwh", _("FranklinWH")
    ENPHASE = "enphase", _("Enphase Enlighten v4")
    SOLAREDGE = "solaredge", _("SolarEdge Monitoring API")
    EMPORIA = "emporia", _("Emporia")
    CHARGEPOINT = "chargepoint", _("ChargePoint")
    SMARTCAR = "smartcar", _("Smartcar")


class SupportLevel(models.TextChoices):
    PRODUCTION = "production", _("Production")
    PLANNED = "planned", _("Planned")


class IntegrationStatus(models.TextChoices):
    NOT_CONFIGURED = "not_configured", _("Not configured")
    CONNECTED = "connected", _("Connected")
    ERROR = "error", _("Error")


class PlatformEventType(models.TextChoices):
    """Event types of DOMAIN.md: what integrators receive through destinations (webhooks out)."""

    DEVICE_DISCOVERED = "device.discovered", "device.discovered"
    DEVICE_CONNECTED = "device.connected", "device.connected"
    DEVICE_DISCONNECTED = "device.disconnected", "device.disconnected"
    DEVICE_UPDATED = "device.updated", "device.updated"
    COMMAND_SUCCEEDED = "command.succeeded", "command.succeeded"
    COMMAND_FAILED = "command.failed", "command.failed"
    ENROLLMENT_SUBMITTED = "enrollment.submitted", "enrollment.submitted"
    ENROLLMENT_APPROVED = "enrollment.approved", "enrollment.approved"
    ENROLLMENT_REJECTED = "enrollment.rejected", "enrollment.rejected"
    ENROLLMENT_UNENROLLED = "enrollment.unenrolled", "enrollment.unenrolled"
    CUSTOMER_CREATED = "customer.created", "customer.created"
    CUSTOMER_UPDATED = "customer.updated", "customer.updated"
    SITE_CREATED = "site.created", "site.created"
    SITE_UPDATED = "site.updated", "site.updated"
    PROGRAM_EVENT_SCHEDULED = "program_event.scheduled", "program_event.scheduled"
    PROGRAM_EVENT_STARTED = "program_event.started", "program_event.started"
    PROGRAM_EVENT_COMPLETED = "program_event.completed", "program_event.completed"
    PROGRAM_EVENT_CANCELLED = "program_event.cancelled", "program_event.cancelled"


class RunKind(models.TextChoices):
    DISCOVERY = "discovery", _("Discovery")
    TELEMETRY = "telemetry", _("Telemetry sync")


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    PARTIAL = "partial", _("Partly failed")
    FAILED = "failed", _("Failed")
