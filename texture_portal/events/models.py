"""The outbox (platform events), destinations (webhooks out) and the log of every delivery attempt.

The tables keep the names they had in `integrations` (`db_table`): moving the code moved no data.
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.envelope import iso
from texture_portal.events.types import event_type_choices
from texture_portal.fields import EncryptedJSONField
from texture_portal.models import WorkspaceScopedModel, WorkspaceScopedQuerySet

SECRET_NAMESPACE = "whsec_"  # noqa: S105 (a label, not a secret)


def destination_secret_generate() -> str:
    return SECRET_NAMESPACE + secrets.token_urlsafe(32)


class PlatformEvent(models.Model):
    """Something integrators may want to hear about, recorded in the same transaction as the change that
    caused it (a transactional outbox). Destinations deliver these after commit.

    The envelope integrators receive is `{type, version, key, timestamp, data}`; `key` is unique in the
    workspace, so emitting the same fact twice records it once. `type` is one an app registered
    (`texture_portal.events.types`): the outbox's services refuse any other. No database check lists them:
    the list belongs to the apps, and a check changed with every new type would rescan this, the largest
    table.
    """

    # No index of its own: the (workspace, key) and (workspace, type, timestamp) indexes start with it.
    # No database constraint either: this is the highest-volume table (every import row, every telemetry
    # reading announces itself), always written by services that hold a checked workspace, and a check per
    # row cost about a third of writing it. PROTECT still holds: Django's deletion collector enforces it.
    workspace = models.ForeignKey(
        "texture_portal.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    type = models.CharField(_("type"), max_length=60, choices=event_type_choices)
    version = models.PositiveSmallIntegerField(_("schema version"), default=1)
    key = models.CharField(_("key"), max_length=200)
    timestamp = models.DateTimeField(_("timestamp"), default=timezone.now)
    data = models.JSONField(_("data"), default=dict)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        db_table = "integrations_platformevent"
        ordering = ["-timestamp", "-id"]
        verbose_name = _("platform event")
        verbose_name_plural = _("platform events")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="platform_event_key_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "type", "-timestamp"], name="platform_event_type_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.key}"

    def envelope(self) -> dict:
        return {
            "type": self.type,
            "version": self.version,
            "key": self.key,
            "timestamp": iso(self.timestamp),
            "data": self.data,
        }


class Destination(WorkspaceScopedModel):
    """A webhook endpoint of an integrator: every platform event of the workspace whose type is in
    `event_types` (empty: every type) is POSTed to `url`, signed with the destination's secret.

    The secret is encrypted at rest (it must be read back to sign). A destination whose deliveries keep
    failing is deactivated with `deactivated_reason`; reactivating it is a staff decision.
    """

    label = models.CharField(_("label"), max_length=100)
    url = models.URLField(_("URL"), max_length=500)
    signing_secret = EncryptedJSONField(_("signing secret"), editable=False)
    event_types = models.JSONField(
        _("event types"), default=list, blank=True, help_text=_("Empty: every event type (firehose).")
    )
    is_active = models.BooleanField(_("active"), default=True)
    deactivated_at = models.DateTimeField(_("deactivated"), null=True, blank=True, editable=False)
    deactivated_reason = models.CharField(_("deactivation reason"), max_length=300, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0, editable=False)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        db_table = "integrations_destination"
        ordering = ["label", "id"]
        verbose_name = _("destination")
        verbose_name_plural = _("destinations")
        constraints = [
            models.CheckConstraint(
                condition=Q(is_active=True) | ~Q(deactivated_reason=""), name="destination_inactive_has_reason"
            ),
        ]
        indexes = [models.Index(fields=["workspace", "is_active"], name="destination_active_idx")]

    def __str__(self) -> str:
        return f"{self.label} ({self.url})"

    @property
    def secret(self) -> str:
        return (self.signing_secret or {}).get("secret", "")

    def accepts(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryAttempt(WorkspaceScopedModel):
    """One POST of one event to one destination. The row is written (as in flight) before the request goes
    out and is unique per (destination, event, attempt): a task that runs twice cannot send twice."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="attempts")
    event = models.ForeignKey(PlatformEvent, on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveSmallIntegerField(_("attempt"))
    status = models.CharField(_("status"), max_length=20, choices=DeliveryStatus.choices)
    response_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    response_excerpt = models.CharField(_("response (excerpt)"), max_length=500, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)

    class Meta:
        db_table = "integrations_deliveryattempt"
        ordering = ["-created", "-id"]
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        constraints = [
            models.UniqueConstraint(fields=["destination", "event", "attempt"], name="delivery_attempt_unique"),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="delivery_attempt_positive"),
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="delivery_status_valid"),
        ]
        indexes = [
            models.Index(fields=["destination", "-created"], name="delivery_destination_idx"),
            models.Index(fields=["event", "destination", "status"], name="delivery_event_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.destination_id} #{self.attempt} ({self.get_status_display()})"
