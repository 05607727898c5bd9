"""Programs, their versioned event strategies, device enrollments, and the launch checklist's sign-offs."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from programs.choices import (
    BaselineAdjustment,
    EnrollmentApproval,
    EnrollmentStatus,
    EventType,
    LaunchCriterion,
    ProgramPhase,
    ProgramType,
)
from programs.launch import SIGN_OFF_CRITERIA
from texture_portal.choices import AuditSource
from texture_portal.models import WorkspaceScopedModel
from texture_portal.timezones import validate_timezone_name, zone_or_utc


class Program(WorkspaceScopedModel):
    """A utility DER program: the container devices auto-enroll into during bulk import.

    Moves through the implementation phases one step at a time (`programs.services.program_set_phase`), each
    phase left once its launch-checklist criteria hold (`programs.launch`) or with an audited override.
    Production dispatch can be on only once launched and every criterion holds; before, only test events run.
    `timezone` is the IANA zone its staff think in: event windows are entered and shown in it, and stored in UTC.
    """

    slug = models.SlugField(_("slug"), max_length=100, help_text=_("E.g. timber-ridge-2026-vpp."))
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    program_type = models.CharField(_("program type"), max_length=20, choices=ProgramType.choices)
    phase = models.CharField(_("phase"), max_length=20, choices=ProgramPhase.choices, default=ProgramPhase.KICKOFF)
    enrollment_approval = models.CharField(
        _("enrollment approval"),
        max_length=20,
        choices=EnrollmentApproval.choices,
        default=EnrollmentApproval.AUTOMATIC,
    )
    launch_threshold = models.PositiveIntegerField(
        _("launch threshold"), default=0, help_text=_("Enrolled dispatch-eligible devices needed to launch.")
    )
    target_launch_date = models.DateField(_("target launch date"), null=True, blank=True)
    reporting_target_percent = models.PositiveSmallIntegerField(
        _("reporting target (%)"),
        default=80,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_(
            "Device discovery's exit: the share of enrolled devices that must be Device on Workspace and have "
            "reported within the last day."
        ),
    )
    production_dispatch_enabled = models.BooleanField(_("production dispatch enabled"), default=False)
    timezone = models.CharField(
        _("timezone"),
        max_length=64,
        default="UTC",
        validators=[validate_timezone_name],
        help_text=_(
            "IANA name, e.g. America/Los_Angeles. Event windows are entered and shown in it (and stored in UTC); "
            "changing it moves no event already planned."
        ),
    )
    # The testing phase's measured exit: the first test event that completed end to end (a device confirmed by
    # its telemetry, every commanded device restored), as dispatch announced it (`program_event.completed`).
    # Its id, not a foreign key: programs know nothing of dispatch.
    test_event_passed_id = models.PositiveBigIntegerField(_("test event completed end to end"), null=True, blank=True)
    test_event_passed_at = models.DateTimeField(_("test event completed at"), null=True, blank=True)
    # ...and the first such test event whose report was compiled (`program_event.report_compiled`).
    test_report_event_id = models.PositiveBigIntegerField(_("test event report compiled"), null=True, blank=True)
    test_report_compiled_at = models.DateTimeField(_("test event report compiled at"), null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("program")
        verbose_name_plural = _("programs")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="program_slug_unique_per_workspace"),
            models.CheckConstraint(condition=Q(phase__in=ProgramPhase.values), name="program_phase_valid"),
            models.CheckConstraint(
                condition=Q(production_dispatch_enabled=False) | Q(phase=ProgramPhase.LAUNCHED),
                name="program_production_dispatch_only_when_launched",
            ),
            models.CheckConstraint(
                condition=Q(reporting_target_percent__gte=1, reporting_target_percent__lte=100),
                name="program_reporting_target_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self):
        """The program's timezone as a tzinfo."""
        return zone_or_utc(self.timezone)


class EventStrategy(WorkspaceScopedModel):
    """A program's dispatch configuration. Versioned: a change creates a new version, so every dispatch event
    keeps the exact rules it ran with. The program's strategy is its highest version.

    SoC bounds: a discharge never takes a battery below `min_soc_percent`; a charge never above
    `max_soc_percent`. Ramp: device starts and ends are spread over `ramp_minutes`.
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="strategies")
    version = models.PositiveIntegerField(_("version"), default=1)
    allowed_event_types = models.JSONField(_("allowed event types"), default=list)
    min_soc_percent = models.PositiveSmallIntegerField(_("discharge floor (SoC %)"), default=20)
    max_soc_percent = models.PositiveSmallIntegerField(_("charge ceiling (SoC %)"), default=100)
    ramp_minutes = models.PositiveIntegerField(_("ramp (minutes)"), default=0)
    max_event_duration_minutes = models.PositiveIntegerField(_("max event duration (minutes)"), default=240)
    enable_grid_interaction = models.BooleanField(_("grid interaction by default"), default=False)
    participation_floor_percent = models.PositiveSmallIntegerField(
        _("participation floor (%)"),
        null=True,
        blank=True,
        help_text=_(
            "Alert when less than this share of an event's targeted devices takes part (checked when each action "
            "starts and when the event completes). Empty: no alert."
        ),
    )
    # The baseline an event's report measures delivery against (dispatch.baselines): each device's own recent
    # non-event days, X of Y, with a day-of adjustment over a window before the event.
    baseline_days = models.PositiveSmallIntegerField(
        _("baseline days (Y)"), default=10, help_text=_("The most recent eligible non-event days averaged.")
    )
    baseline_highest = models.PositiveSmallIntegerField(
        _("highest days (X)"),
        null=True,
        blank=True,
        help_text=_("Average only the X of those days with the highest load in the event's hours (empty: all Y)."),
    )
    baseline_lookback_days = models.PositiveSmallIntegerField(
        _("baseline lookback (days)"), default=45, help_text=_("Eligible days are searched this far back.")
    )
    baseline_same_day_type = models.BooleanField(
        _("same kind of day"),
        default=True,
        help_text=_("Weekdays for a weekday event, weekend days for a weekend one."),
    )
    baseline_min_days = models.PositiveSmallIntegerField(
        _("minimum baseline days"),
        default=5,
        help_text=_("With fewer eligible days a device has no baseline (counted in the report, not guessed)."),
    )
    baseline_adjustment = models.CharField(
        _("day-of adjustment"),
        max_length=20,
        choices=BaselineAdjustment.choices,
        default=BaselineAdjustment.MULTIPLICATIVE,
    )
    baseline_window_start_minutes = models.PositiveSmallIntegerField(
        _("adjustment window from (minutes before the event)"), default=240
    )
    baseline_window_end_minutes = models.PositiveSmallIntegerField(
        _("adjustment window to (minutes before the event)"), default=60
    )
    baseline_factor_min = models.FloatField(_("adjustment factor at least"), default=0.8)
    baseline_factor_max = models.FloatField(_("adjustment factor at most"), default=1.2)
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["program", "-version"]
        verbose_name = _("event strategy")
        verbose_name_plural = _("event strategies")
        get_latest_by = "version"
        constraints = [
            models.UniqueConstraint(fields=["program", "version"], name="strategy_version_unique"),
            models.CheckConstraint(
                condition=Q(min_soc_percent__gte=0)
                & Q(max_soc_percent__lte=100)
                & Q(min_soc_percent__lt=models.F("max_soc_percent")),
                name="strategy_soc_range_valid",
            ),
            models.CheckConstraint(condition=Q(max_event_duration_minutes__gt=0), name="strategy_duration_positive"),
            models.CheckConstraint(
                condition=Q(ramp_minutes__lte=models.F("max_event_duration_minutes")),
                name="strategy_ramp_within_duration",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="strategy_version_positive"),
            models.CheckConstraint(
                condition=Q(participation_floor_percent__isnull=True) | Q(participation_floor_percent__lte=100),
                name="strategy_participation_floor_range",
            ),
            models.CheckConstraint(
                condition=Q(baseline_adjustment__in=BaselineAdjustment.values),
                name="strategy_baseline_adjustment_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program} — strategy v{self.version}"

    def clean(self):
        super().clean()
        types = self.allowed_event_types
        if not isinstance(types, list) or not types:
            raise ValidationError({"allowed_event_types": "Choose at least one event type."})
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise ValidationError({"allowed_event_types": f"Unknown event types: {', '.join(unknown)}."})
        if len(set(types)) != len(types):
            raise ValidationError({"allowed_event_types": "Each event type once."})
        errors = {}
        days = self.baseline_days or 0
        if days < 1:
            errors["baseline_days"] = "At least one day."
        elif self.baseline_highest is not None and not 1 <= self.baseline_highest <= days:
            errors["baseline_highest"] = f"Between 1 and the baseline days ({days}), or empty for all of them."
        if days and not 1 <= (self.baseline_min_days or 0) <= days:
            errors["baseline_min_days"] = f"Between 1 and the baseline days ({days})."
        if (self.baseline_lookback_days or 0) < days:
            errors["baseline_lookback_days"] = f"At least the baseline days ({days})."
        if self.baseline_adjustment != BaselineAdjustment.NONE and not (
            self.baseline_window_start_minutes > self.baseline_window_end_minutes
        ):
            errors["baseline_window_end_minutes"] = (
                "The adjustment window must end after it starts (fewer minutes before the event)."
            )
        if self.baseline_adjustment == BaselineAdjustment.MULTIPLICATIVE and not (
            0 < self.baseline_factor_min <= 1 <= self.baseline_factor_max
        ):
            errors["baseline_factor_max"] = "The factor's limits must satisfy 0 < at least ≤ 1 ≤ at most."
        if errors:
            raise ValidationError(errors)


class Enrollment(WorkspaceScopedModel):
    """A device's participation in a program: submitted → approved | rejected; approved → unenrolled.

    One enrollment per device and program. Approval is automatic or manual per program.
    """

    # No single-column indexes: (device, program) and (program, status) below start with them.
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="enrollments", db_index=False)
    status = models.CharField(
        _("status"), max_length=20, choices=EnrollmentStatus.choices, default=EnrollmentStatus.SUBMITTED
    )
    submitted_at = models.DateTimeField(_("submitted"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    source = models.CharField(_("source"), max_length=20, choices=AuditSource.choices, default=AuditSource.SERVICE)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        verbose_name = _("enrollment")
        verbose_name_plural = _("enrollments")
        constraints = [
            models.UniqueConstraint(fields=["device", "program"], name="enrollment_unique_per_device_program"),
            models.CheckConstraint(condition=Q(status__in=EnrollmentStatus.values), name="enrollment_status_valid"),
        ]
        indexes = [models.Index(fields=["program", "status"], name="enrollment_program_status_idx")]

    def __str__(self) -> str:
        return f"{self.device} in {self.program} ({self.get_status_display()})"


class LaunchCriterionSignOff(WorkspaceScopedModel):
    """A staff member's sign-off of one of a program's launch-checklist criteria that cannot be measured
    (training done, support path agreed…): who, when, and an optional note.

    At most one per program and criterion; only for signed-off criteria (`programs.launch`). Revoking deletes
    it; the program's audit log keeps both. Always in its program's workspace (written only by
    `programs.services.launch_criterion_sign_off`).
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="sign_offs", db_index=False)
    criterion = models.CharField(_("criterion"), max_length=40, choices=LaunchCriterion.choices)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("signed off by"),
    )
    # the name as it was when signing (the user may be renamed or deleted later)
    signed_off_by_label = models.CharField(_("signed off by (name)"), max_length=150)
    signed_off_at = models.DateTimeField(_("signed off at"), default=timezone.now)
    note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        ordering = ["program", "criterion"]
        verbose_name = _("launch criterion sign-off")
        verbose_name_plural = _("launch criterion sign-offs")
        constraints = [
            models.UniqueConstraint(fields=["program", "criterion"], name="sign_off_unique_per_program_criterion"),
            models.CheckConstraint(
                condition=Q(criterion__in=SIGN_OFF_CRITERIA), name="sign_off_criterion_is_signed_off"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program}: {self.get_criterion_display()} (signed off by {self.signed_off_by_label})"


class ProgramHealthDay(WorkspaceScopedModel):
    """How a program's enrolled fleet stood on one local day (its timezone's): approved enrollments, how many
    of those devices were Device on Workspace, and how many had reported within the last 24 hours, as last
    measured that day (Program Health over time). One row per program and day, written and updated through
    the day by `programs.services.program_health_record` (beat's `programs-health`, hourly)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="health_days", db_index=False)
    day = models.DateField(_("day"))
    enrolled = models.PositiveIntegerField(_("enrolled"))
    online = models.PositiveIntegerField(_("on the workspace"))
    reporting = models.PositiveIntegerField(_("reported within a day"))
    measured_at = models.DateTimeField(_("measured"))

    class Meta:
        ordering = ["program", "day"]
        verbose_name = _("program health (day)")
        verbose_name_plural = _("program health (days)")
        constraints = [
            models.UniqueConstraint(fields=["program", "day"], name="program_health_day_unique"),
            models.CheckConstraint(
                condition=Q(online__lte=models.F("enrolled")) & Q(reporting__lte=models.F("enrolled")),
                name="program_health_day_counts_within_enrolled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program} on {self.day}: {self.online} of {self.enrolled} online"
