"""Dispatch events (program events) with their actions, each targeted device's participation, and the
commands sent to devices."""

from datetime import UTC

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dispatch.choices import (
    CommandPurpose,
    CommandSlug,
    CommandStatus,
    DispatchEventStatus,
    DispatchTrigger,
    ExclusionReason,
    ParticipationStatus,
)
from programs.choices import EventType
from texture_portal.models import WorkspaceScopedModel, WorkspaceScopedQuerySet


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
    # Set by the engine when the event completed with a device confirmed and every commanded device restored.
    completed_end_to_end = models.BooleanField(_("completed end to end"), default=False, editable=False)
    # An event a schedule created: which schedule, and which of its occurrences (created once each).
    schedule = models.ForeignKey(
        "dispatch.DispatchSchedule", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    occurrence_start = models.DateTimeField(_("occurrence"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-starts_at", "-id"]
        verbose_name = _("dispatch event")
        verbose_name_plural = _("dispatch events")
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="dispatch_event_ends_after_start"),
            models.CheckConstraint(
                condition=Q(status__in=DispatchEventStatus.values), name="dispatch_event_status_valid"
            ),
            models.UniqueConstraint(
                fields=["schedule", "occurrence_start"],
                condition=Q(schedule__isnull=False),
                name="dispatch_event_once_per_occurrence",
            ),
        ]
        indexes = [models.Index(fields=["status", "starts_at"], name="dispatch_event_due_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.starts_at:%Y-%m-%d %H:%M} UTC)"


class DispatchSchedule(WorkspaceScopedModel):
    """A program's recurring events (e.g. weekdays 17:00–20:00 discharge from June to September), written as
    an RFC 5545 rule in the schedule's own timezone, so 17:00 stays 17:00 across daylight-saving changes.

    The engine creates each occurrence's event `lead_hours` ahead, once (an event remembers the schedule and
    the occurrence it is), as a draft or already scheduled. `skip_dates` are local dates with no event.
    """

    program = models.ForeignKey("programs.Program", on_delete=models.CASCADE, related_name="dispatch_schedules")
    name = models.CharField(_("name"), max_length=200)
    action_type = models.CharField(_("action"), max_length=20, choices=EventType.choices)
    rrule = models.CharField(
        _("recurrence (RFC 5545)"),
        max_length=500,
        help_text=_("E.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYMONTH=6,7,8,9"),
    )
    timezone = models.CharField(_("timezone"), max_length=60, default="America/Los_Angeles")
    start_time = models.TimeField(_("local start"))
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"))
    valid_from = models.DateField(_("first day"))
    valid_until = models.DateField(_("last day"), null=True, blank=True)
    skip_dates = models.JSONField(_("skip dates"), default=list, blank=True, help_text=_("Local dates, YYYY-MM-DD."))
    lead_hours = models.PositiveIntegerField(_("created ahead (hours)"), default=24)
    schedule_events = models.BooleanField(
        _("schedule the events"), default=True, help_text=_("Off: they are created as drafts for a person to schedule.")
    )
    is_test = models.BooleanField(_("test events"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    target_tags = models.ManyToManyField("fleet.DeviceTag", blank=True, related_name="+", verbose_name=_("target tags"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["program", "name"]
        verbose_name = _("dispatch schedule")
        verbose_name_plural = _("dispatch schedules")
        constraints = [
            models.CheckConstraint(condition=Q(duration_minutes__gt=0), name="dispatch_schedule_duration_positive"),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=F("valid_from")),
                name="dispatch_schedule_until_after_from",
            ),
            models.CheckConstraint(
                condition=Q(action_type__in=EventType.values), name="dispatch_schedule_action_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.program})"


class DispatchAction(WorkspaceScopedModel):
    """One window of a dispatch event: charge, discharge or idle from `starts_at` to `ends_at`."""

    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="actions")
    action_type = models.CharField(_("action"), max_length=20, choices=EventType.choices)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    # The engine's progress markers, each set in the transaction that did the step (so a step is done once).
    fanned_out_at = models.DateTimeField(_("devices selected and commanded"), null=True, blank=True, editable=False)
    restore_started_at = models.DateTimeField(_("restore started"), null=True, blank=True, editable=False)
    note = models.CharField(_("note"), max_length=300, blank=True, editable=False)

    class Meta:
        ordering = ["event", "starts_at"]
        verbose_name = _("dispatch action")
        verbose_name_plural = _("dispatch actions")
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="dispatch_action_ends_after_start"),
            models.CheckConstraint(condition=Q(action_type__in=EventType.values), name="dispatch_action_type_valid"),
        ]

    def __str__(self) -> str:
        starts, ends = self.starts_at.astimezone(UTC), self.ends_at.astimezone(UTC)
        return f"{self.get_action_type_display()} {starts:%H:%M}–{ends:%H:%M} UTC"


class Participation(WorkspaceScopedModel):
    """One targeted device in one dispatch event: whether it takes part (and if not, why), what it was told,
    whether its telemetry confirmed it, and whether it was given back what it had before the event.

    One row per event and device, written in bulk when the event's first action starts and classified again
    at each later action (`dispatch.engine`). The `*_before` fields are what the device had when it was first
    included (its restore target); the times say when each step happened. An opted-out device never takes
    part again in this event.
    """

    # No single-column indexes: the (event, device), (event, status) and (device, status) ones start with them.
    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="participations", db_index=False)
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="participations", db_index=False)
    action = models.ForeignKey(
        DispatchAction, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("action")
    )
    status = models.CharField(_("status"), max_length=20, choices=ParticipationStatus.choices)
    reason_code = models.CharField(_("reason"), max_length=30, choices=ExclusionReason.choices, blank=True)
    reason = models.CharField(_("why"), max_length=300, blank=True)
    mode_before = models.CharField(_("mode before"), max_length=40, blank=True)
    reserve_before = models.FloatField(_("reserve before (%)"), null=True, blank=True)
    was_charging = models.BooleanField(_("was charging"), null=True, blank=True)
    charge_limit_before = models.FloatField(_("charge limit before (%)"), null=True, blank=True)
    included_at = models.DateTimeField(_("included"), null=True, blank=True)
    commanded_at = models.DateTimeField(_("commanded"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    restored_at = models.DateTimeField(_("restored"), null=True, blank=True)
    opted_out_at = models.DateTimeField(_("opted out"), null=True, blank=True)
    opted_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["event", "device_id"]
        verbose_name = _("participation")
        verbose_name_plural = _("participations")
        constraints = [
            models.UniqueConstraint(fields=["event", "device"], name="participation_unique_per_event_device"),
            models.CheckConstraint(
                condition=Q(status__in=ParticipationStatus.values), name="participation_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=ParticipationStatus.EXCLUDED) | ~Q(reason_code=""),
                name="participation_excluded_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["event", "status"], name="participation_event_status_idx"),
            models.Index(fields=["device", "status"], name="participation_device_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} in {self.event_id} ({self.get_status_display()})"


class BatchCommand(WorkspaceScopedModel):
    """One command sent to many devices at once — every device with a tag, or staff's selection: a command
    per compatible device (`commands`), and the devices that got none with why (`skipped`: [{deviceId,
    reason}]). Its status is its commands' (`dispatch.selectors.batch_command_summary`)."""

    slug = models.CharField(_("command"), max_length=40, choices=CommandSlug.choices)
    input = models.JSONField(_("input"), default=dict, blank=True)
    tag = models.ForeignKey("fleet.DeviceTag", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    skipped = models.JSONField(_("devices skipped"), default=list, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("batch command")
        verbose_name_plural = _("batch commands")
        constraints = [
            models.CheckConstraint(condition=Q(slug__in=CommandSlug.values), name="batch_command_slug_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} ({self.created:%Y-%m-%d %H:%M} UTC)"


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
    participation = models.ForeignKey(
        "dispatch.Participation",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="commands",
        db_index=False,  # (participation, purpose) below starts with it
    )
    purpose = models.CharField(
        _("purpose"), max_length=20, choices=CommandPurpose.choices, default=CommandPurpose.MANUAL
    )
    batch = models.ForeignKey(BatchCommand, on_delete=models.SET_NULL, null=True, blank=True, related_name="commands")
    slug = models.CharField(_("command"), max_length=40, choices=CommandSlug.choices)
    input = models.JSONField(_("input"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=CommandStatus.choices, default=CommandStatus.PENDING)
    status_reason = models.CharField(_("status reason"), max_length=500, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    oem_reference = models.CharField(_("OEM reference"), max_length=200, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
    not_before = models.DateTimeField(_("send not before"), default=timezone.now)
    # Handed to a worker at; a command still pending long after is handed again (its task was lost).
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True, editable=False)
    # While a worker sends it: another delivery of the task finds it leased and leaves it alone; after a
    # worker died mid-call the lease runs out and the command is sent again (the OEM calls set a state).
    lease_until = models.DateTimeField(_("sending until"), null=True, blank=True, editable=False)
    lease_owner = models.CharField(_("sent by"), max_length=64, blank=True, editable=False)  # the task's id
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
            models.CheckConstraint(condition=Q(purpose__in=CommandPurpose.values), name="command_purpose_valid"),
            models.CheckConstraint(
                condition=Q(purpose=CommandPurpose.MANUAL) | Q(participation__isnull=False),
                name="command_engine_has_participation",
            ),
        ]
        indexes = [
            models.Index(fields=["device", "-created"], name="command_device_idx"),
            models.Index(fields=["status", "not_before"], name="command_due_idx"),
            models.Index(fields=["participation", "purpose"], name="command_participation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} → {self.device_id} ({self.get_status_display()})"


class EventReport(WorkspaceScopedModel):
    """The proof of one dispatch event: who was targeted and what became of them, and the energy the fleet
    delivered against each device's own baseline, for the two metrics (`battery`: the battery's power, +
    discharging; `net_at_meter`: the site's grid exchange, + importing, less of it delivering).

    Compiled set-based in SQL over the 15-minute telemetry rollups when the event completes, and again on
    demand (`dispatch.reports.event_report_compile`); a compile replaces the whole report (its device rows
    too) in one transaction. The totals are the sums of the device rows (`EventReportDevice`); `series` holds
    the charts' points, `actions` the totals per action window, `method` the baseline's parameters as run.
    """

    event = models.OneToOneField(DispatchEvent, on_delete=models.CASCADE, related_name="report")
    compiled_at = models.DateTimeField(_("compiled"))
    compile_ms = models.PositiveIntegerField(_("compile time (ms)"), default=0)
    method = models.JSONField(_("baseline method"), default=dict)
    method_description = models.CharField(_("baseline"), max_length=400, blank=True)
    timezone = models.CharField(_("timezone"), max_length=64, default="UTC")
    counts = models.JSONField(_("participation counts"), default=dict)
    totals = models.JSONField(_("totals per metric"), default=dict)
    actions = models.JSONField(_("totals per action"), default=list)
    series = models.JSONField(_("chart series"), default=dict)

    class Meta:
        ordering = ["-compiled_at", "-id"]
        verbose_name = _("event report")
        verbose_name_plural = _("event reports")

    def __str__(self) -> str:
        return f"Report of {self.event}"


class EventReportDevice(models.Model):
    """One targeted device's row in an event report: its participation, and for each metric the energy it
    moved over the event's intervals (`*_actual_kwh`), what its baseline says it would have (`*_baseline_kwh`),
    the difference delivered (`*_delivered_kwh`, + delivering), the share of intervals measured
    (`*_coverage`), the baseline days used and the day-of adjustment, or why it has no baseline
    (`*_no_baseline`). Energy is empty for a device never included, and for a metric without a baseline.

    Written only by the report's compile, in one INSERT … SELECT (no row per device in Python).
    """

    workspace = models.ForeignKey("texture_portal.Workspace", on_delete=models.PROTECT, related_name="+")
    report = models.ForeignKey(EventReport, on_delete=models.CASCADE, related_name="devices", db_index=False)
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(_("participation"), max_length=20, choices=ParticipationStatus.choices)
    reason_code = models.CharField(_("reason"), max_length=30, choices=ExclusionReason.choices, blank=True)
    commanded = models.BooleanField(_("commanded"), default=False)
    confirmed = models.BooleanField(_("confirmed"), default=False)
    restored = models.BooleanField(_("restored"), default=False)
    opted_out = models.BooleanField(_("opted out"), default=False)
    battery_actual_kwh = models.FloatField(_("battery kWh"), null=True, blank=True)
    battery_baseline_kwh = models.FloatField(_("battery baseline kWh"), null=True, blank=True)
    battery_delivered_kwh = models.FloatField(_("battery delivered kWh"), null=True, blank=True)
    battery_coverage = models.FloatField(_("battery coverage"), null=True, blank=True)
    battery_days = models.PositiveSmallIntegerField(_("battery baseline days"), null=True, blank=True)
    battery_factor = models.FloatField(_("battery adjustment"), null=True, blank=True)
    battery_no_baseline = models.CharField(_("battery: no baseline"), max_length=200, blank=True)
    net_actual_kwh = models.FloatField(_("net kWh (+ import)"), null=True, blank=True)
    net_baseline_kwh = models.FloatField(_("net baseline kWh"), null=True, blank=True)
    net_delivered_kwh = models.FloatField(_("net delivered kWh"), null=True, blank=True)
    net_coverage = models.FloatField(_("net coverage"), null=True, blank=True)
    net_days = models.PositiveSmallIntegerField(_("net baseline days"), null=True, blank=True)
    net_factor = models.FloatField(_("net adjustment"), null=True, blank=True)
    net_no_baseline = models.CharField(_("net: no baseline"), max_length=200, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["report", "device_id"]
        verbose_name = _("event report device")
        verbose_name_plural = _("event report devices")
        constraints = [
            models.UniqueConstraint(fields=["report", "device"], name="event_report_device_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} in report {self.report_id}"
