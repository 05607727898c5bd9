"""The manufacturer catalog and each workspace's OEM integrations."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from fleet.choices import DeviceType
from integrations.choices import IntegrationChannel, IntegrationStatus, PlatformEventType, SupportLevel
from texture_portal.fields import EncryptedJSONField
from texture_portal.models import BaseModel, WorkspaceScopedModel, WorkspaceScopedQuerySet


class Manufacturer(BaseModel):
    """An OEM the portal knows (global catalog, seeded by a migration; not tenant data).

    `slug` is the `manufacturerSlug` of the CSV and API; `aliases` are other slugs accepted for it (e.g.
    `solaredge-monitoring-api`). `integration_channel` names the adapter that reaches its devices.
    """

    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    name = models.CharField(_("name"), max_length=120)
    aliases = models.JSONField(_("aliases"), default=list, blank=True)
    device_types = models.JSONField(_("device types"), default=list)
    integration_channel = models.CharField(_("integration channel"), max_length=30, choices=IntegrationChannel.choices)
    supports_grid_services = models.BooleanField(_("supports grid services"), default=False)
    is_read_only = models.BooleanField(
        _("read-only"), default=False, help_text=_("Monitoring only: the OEM API takes no commands.")
    )
    support_level = models.CharField(
        _("support level"), max_length=20, choices=SupportLevel.choices, default=SupportLevel.PRODUCTION
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("manufacturer")
        verbose_name_plural = _("manufacturers")

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        unknown = set(self.device_types) - set(DeviceType.values)
        if unknown:
            from django.core.exceptions import ValidationError

            raise ValidationError({"device_types": f"Unknown device types: {sorted(unknown)}"})


class WorkspaceIntegration(WorkspaceScopedModel):
    """One OEM channel wired to one workspace (an "integration tile"): on/off, credentials, health.

    Credentials are encrypted at rest and never shown back in full. Discovery and telemetry sync run only for
    enabled integrations.
    """

    channel = models.CharField(_("channel"), max_length=30, choices=IntegrationChannel.choices)
    enabled = models.BooleanField(_("enabled"), default=False)
    credentials = EncryptedJSONField(_("credentials"))
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


class PlatformEvent(models.Model):
    """Something integrators may want to hear about, recorded in the same transaction as the change that
    caused it (a transactional outbox). Destinations deliver these after commit.

    The envelope integrators receive is `{type, version, key, timestamp, data}`; `key` is unique in the
    workspace, so emitting the same fact twice records it once.
    """

    workspace = models.ForeignKey("texture_portal.Workspace", on_delete=models.PROTECT, related_name="+")
    type = models.CharField(_("type"), max_length=60, choices=PlatformEventType.choices)
    version = models.PositiveSmallIntegerField(_("schema version"), default=1)
    key = models.CharField(_("key"), max_length=200)
    timestamp = models.DateTimeField(_("timestamp"), default=timezone.now)
    data = models.JSONField(_("data"), default=dict)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        verbose_name = _("platform event")
        verbose_name_plural = _("platform events")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="platform_event_key_unique"),
            models.CheckConstraint(condition=Q(type__in=PlatformEventType.values), name="platform_event_type_valid"),
        ]
        indexes = [models.Index(fields=["workspace", "type", "-timestamp"], name="platform_event_type_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.key}"

    def envelope(self) -> dict:
        return {
            "type": self.type,
            "version": self.version,
            "key": self.key,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


# Destinations live in their own module; imported here so Django registers them with this app.
from integrations.destinations import DeliveryAttempt, Destination  # noqa: E402, F401
