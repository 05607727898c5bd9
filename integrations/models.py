"""Each workspace's OEM integrations and their runs. (The manufacturer catalog is the fleet's: `fleet.models`.)"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from integrations.choices import (
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
