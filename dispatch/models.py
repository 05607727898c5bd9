"""Dispatch events (program events) with their actions, and the commands sent to devices."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dispatch.choices import CommandSlug, CommandStatus, DispatchEventStatus, DispatchTrigger
from programs.choices import EventType
from texture_portal.models import WorkspaceScopedModel


class DispatchEvent(WorkspaceScopedModel):
    """A program event: one or more actions (charge / discharge / idle windows) for the program's enrolled,
    dispatch-eligible devices, optionally narrowed to tags.

    draft → scheduled → in_progress → completed | cancelled (`dispatch.services`). Runs with the strategy
    version it was created with. Until the program launches only test events may run.
    """

    program = models.ForeignKey("programs.Program", on_delete=models.PROTECT, related_name="dispatch_events")
    strategy = models.ForeignKey(
        "programs.EventStrategy",
        on_delete=models.PROTECT,
        related_name="dispatch_events",
        verbose_name=_("strategy version"),
    )
    name = models.CharField(_("name"), max_length=200)
    is_test = models.BooleanField(_("test event"), default=True)
    trigger = models.CharField(
        _("trigger"), max_length=20, choices=DispatchTrigger.choices, default=DispatchTrigger.MANUAL
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=DispatchEventStatus.choices,
        default=DispatchEventStatus.DRAFT,
        db_index=True,
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    target_tags = models.ManyToManyField(
        "fleet.DeviceTag",
        blank=True,
        related_name="dispatch_events",
        verbose_name=_("target tags"),
        help_text=_("Empty: the whole program. Otherwise devices with any of these tags."),
    )
    signal_reference = models.CharField(_("signal reference"), max_length=200, blank=True)
    status_reason = models.CharField(_("status reason"), max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-starts_at", "-id"]
        verbose_name = _("dispatch event")
        verbose_name_plural = _("dispatch events")
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="dispatch_event_ends_after_start"),
            models.CheckConstraint(
                condition=Q(status__in=DispatchEventStatus.values), name="dispatch_event_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "starts_at"], name="dispatch_event_due_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.starts_at:%Y-%m-%d %H:%M} UTC)"


class DispatchAction(WorkspaceScopedModel):
    """One window of a dispatch event: charge, discharge or idle from `starts_at` to `ends_at`."""

    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="actions")
    action_type = models.CharField(_("action"), max_length=20, choices=EventType.choices)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))

    class Meta:
        ordering = ["event", "starts_at"]
        verbose_name = _("dispatch action")
        verbose_name_plural = _("dispatch actions")
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="dispatch_action_ends_after_start"),
            models.CheckConstraint(condition=Q(action_type__in=EventType.values), name="dispatch_action_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_type_display()} {self.starts_at:%H:%M}–{self.ends_at:%H:%M}"


class Command(WorkspaceScopedModel):
    """One instruction to one device through its OEM: pending → sent → success | failed (| skipped, with why).

    `idempotency_key` is unique in the workspace and checked at send time, so a retried task never sends the
    same command twice.
    """

    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="commands")
    dispatch_event = models.ForeignKey(
        DispatchEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="commands"
    )
    action = models.ForeignKey(
        DispatchAction, on_delete=models.SET_NULL, null=True, blank=True, related_name="commands"
    )
    slug = models.CharField(_("command"), max_length=40, choices=CommandSlug.choices)
    input = models.JSONField(_("input"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=CommandStatus.choices, default=CommandStatus.PENDING)
    status_reason = models.CharField(_("status reason"), max_length=500, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    oem_reference = models.CharField(_("OEM reference"), max_length=200, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
    not_before = models.DateTimeField(_("send not before"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("command")
        verbose_name_plural = _("commands")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="command_idempotency_key_unique"),
            models.CheckConstraint(condition=Q(status__in=CommandStatus.values), name="command_status_valid"),
            models.CheckConstraint(condition=Q(slug__in=CommandSlug.values), name="command_slug_valid"),
        ]
        indexes = [
            models.Index(fields=["device", "-created"], name="command_device_idx"),
            models.Index(fields=["status", "not_before"], name="command_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} → {self.device_id} ({self.get_status_display()})"
