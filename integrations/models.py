"""Each workspace's OEM integrations and their runs. (The manufacturer catalog is the fleet's: `fleet.models`.)"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from integrations.choices import (
    ConnectionStatus,
    ConnectSessionStatus,
    IntegrationChannel,
    IntegrationStatus,
    RunKind,
    RunStatus,
)
from texture_portal.fields import EncryptedJSONField
from texture_portal.models import WorkspaceScopedModel


class WorkspaceIntegration(WorkspaceScopedModel):
    """One OEM channel wired to one workspace (an "integration tile"): on/off, credentials, health.

    Credentials are encrypted at rest and never shown back, not even in part: staff see which keys are set and
    when each changed (`credentials_changed_at`). Discovery and telemetry sync run only for
    enabled integrations.
    """

    channel = models.CharField(_("channel"), max_length=30, choices=IntegrationChannel.choices)
    enabled = models.BooleanField(_("enabled"), default=False)
    credentials = EncryptedJSONField(_("credentials"))
    # When each credential key was last written ({key: ISO-8601 UTC}), by staff or by a token refresh: what the
    # admin shows of credentials, with which keys are set (never any part of a value). Keys only, so not secret.
    credentials_changed_at = models.JSONField(_("credentials changed at"), default=dict, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=IntegrationStatus.choices,
        default=IntegrationStatus.NOT_CONFIGURED,
    )
    last_error = models.TextField(_("last error"), blank=True)
    last_checked_at = models.DateTimeField(_("last checked"), null=True, blank=True)

    class Meta:
        ordering = ["workspace", "channel"]
        verbose_name = _("workspace integration")
        verbose_name_plural = _("workspace integrations")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "channel"], name="integration_unique_per_workspace"),
            models.CheckConstraint(
                condition=Q(channel__in=IntegrationChannel.values), name="integration_channel_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} ({'enabled' if self.enabled else 'disabled'})"


class IntegrationRun(WorkspaceScopedModel):
    """One discovery or telemetry-sync job of one workspace integration (one row per attempt), so staff can
    see what ran, how far it got and why it failed.

    Counts only grow while `running`; `finished_at` is set exactly when the run leaves `running`.
    """

    integration = models.ForeignKey(
        WorkspaceIntegration, on_delete=models.CASCADE, related_name="runs", verbose_name=_("integration")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=RunKind.choices)
    status = models.CharField(_("status"), max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    devices_total = models.PositiveIntegerField(_("devices"), default=0)
    devices_ok = models.PositiveIntegerField(_("devices OK"), default=0)
    devices_failed = models.PositiveIntegerField(_("devices failed"), default=0)
    readings_written = models.PositiveIntegerField(_("readings written"), default=0)
    http_requests = models.PositiveIntegerField(_("OEM requests"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    message = models.CharField(_("summary"), max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("integration run")
        verbose_name_plural = _("integration runs")
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=RunKind.values), name="integration_run_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="integration_run_status_valid"),
            models.CheckConstraint(
                condition=Q(status=RunStatus.RUNNING, finished_at__isnull=True)
                | (~Q(status=RunStatus.RUNNING) & Q(finished_at__isnull=False)),
                name="integration_run_finished_when_done",
            ),
        ]
        indexes = [models.Index(fields=["integration", "kind", "-started_at"], name="integration_run_recent_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class CustomerConnection(WorkspaceScopedModel):
    """One customer's own OEM account, authorized through a Connect session: their OAuth tokens (or, for an
    OEM without OAuth, the credentials they entered), encrypted at rest, per contact and OEM channel.

    Devices found through it carry its id in `Device.oem_data["connectionId"]`: their telemetry and commands
    use these tokens, never the workspace's. A grant the customer (or the OEM) revoked turns it `revoked`.
    """

    contact = models.ForeignKey(
        "fleet.Contact", on_delete=models.PROTECT, related_name="oem_connections", verbose_name=_("contact")
    )
    channel = models.CharField(_("channel"), max_length=30, choices=IntegrationChannel.choices)
    status = models.CharField(
        _("status"), max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.ACTIVE
    )
    credentials = EncryptedJSONField(_("credentials"))
    reference_id = models.CharField(_("reference ID"), max_length=200, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    connected_at = models.DateTimeField(_("connected"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)

    class Meta:
        ordering = ["workspace", "contact", "channel"]
        verbose_name = _("customer connection")
        verbose_name_plural = _("customer connections")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "contact", "channel"], name="customer_connection_unique_per_contact"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=IntegrationChannel.values), name="customer_connection_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ConnectionStatus.values), name="customer_connection_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} of {self.contact_id} ({self.get_status_display()})"


class ConnectSession(WorkspaceScopedModel):
    """One Texture Connect session: the signed, expiring link a customer follows to connect their own OEM
    account (`POST /v1/connections`, or the contact admin's action), and how it went.

    `oauth` holds the session's OAuth `state` and PKCE `code_verifier` while the customer is at the OEM
    (encrypted; emptied once the code is exchanged). `state_digest` (SHA-256 of the state) finds the session on
    the way back without storing the state in clear.
    """

    public_id = models.UUIDField(_("public ID"), unique=True, editable=False)
    status = models.CharField(
        _("status"), max_length=20, choices=ConnectSessionStatus.choices, default=ConnectSessionStatus.PENDING
    )
    redirect_url = models.URLField(_("redirect URL"), max_length=2000)
    reference_id = models.CharField(_("reference ID"), max_length=200, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    client_name = models.CharField(_("client name"), max_length=200, blank=True)
    contact = models.ForeignKey(
        "fleet.Contact",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="connect_sessions",
        verbose_name=_("contact"),
    )
    customer_info = models.JSONField(_("customer info"), default=dict, blank=True)
    # what the customer confirmed on the page (snake_case names of Contact and Site fields)
    customer_details = models.JSONField(_("confirmed details"), default=dict, blank=True)
    manufacturer_filters = models.JSONField(_("manufacturer filters"), default=dict, blank=True)
    channel = models.CharField(_("channel"), max_length=30, choices=IntegrationChannel.choices, blank=True)
    oauth = EncryptedJSONField(_("OAuth state"))
    state_digest = models.CharField(_("state digest"), max_length=64, blank=True, db_index=True)
    expires_at = models.DateTimeField(_("expires"))
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=500, blank=True)
    connection = models.ForeignKey(
        CustomerConnection,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sessions",
        verbose_name=_("connection"),
    )
    devices_linked = models.PositiveIntegerField(_("devices linked"), default=0)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("Connect session")
        verbose_name_plural = _("Connect sessions")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ConnectSessionStatus.values), name="connect_session_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Connect session {self.public_id} ({self.get_status_display()})"
