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


class IntegrationStatus(models.TextChoices):
    NOT_CONFIGURED = "not_configured", _("Not configured")
    CONNECTED = "connected", _("Connected")
    ERROR = "error", _("Error")


class RunKind(models.TextChoices):
    DISCOVERY = "discovery", _("Discovery")
    TELEMETRY = "telemetry", _("Telemetry sync")
    HISTORY = "history", _("Telemetry history backfill")


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    PARTIAL = "partial", _("Partly failed")
    FAILED = "failed", _("Failed")


class ConnectSessionStatus(models.TextChoices):
    """A Connect session's way: opened by the link, at the OEM's consent page, then one of the endings. A
    denied or failed session may be tried again from its link while the link lasts."""

    PENDING = "pending", _("Link sent")
    AUTHORIZING = "authorizing", _("At the manufacturer")
    CONNECTED = "connected", _("Connected")
    DENIED = "denied", _("Consent denied")
    FAILED = "failed", _("Failed")


class ConnectionStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")
