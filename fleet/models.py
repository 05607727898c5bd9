"""Customers (contacts), their sites and devices, device state history, telemetry, and alerts."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from fleet.choices import (
    ALERT_ACTIVE,
    AlertSeverity,
    AlertStatus,
    AlertType,
    BatteryStrategy,
    ChargingState,
    DeviceState,
    DeviceType,
    GridServicesStatus,
    GridStatus,
    ImportJobStatus,
    SupportLevel,
)
from texture_portal.choices import AuditSource
from texture_portal.models import BaseModel, WorkspaceScopedModel, WorkspaceScopedQuerySet

models.CharField.register_lookup(Length)


class Manufacturer(BaseModel):
    """An OEM the portal knows (global catalog, seeded by a migration from `fleet/catalog.py`; not tenant data).

    `slug` is the `manufacturerSlug` of the CSV and API; `aliases` are other slugs accepted for it (e.g.
    `solaredge-monitoring-api`). `integration_channel` names the adapter that reaches its devices.
    """

    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    name = models.CharField(_("name"), max_length=120)
    aliases = models.JSONField(_("aliases"), default=list, blank=True)
    device_types = models.JSONField(_("device types"), default=list)
    # The name of the integrations adapter (`integrations.choices.IntegrationChannel`); no choices here: the
    # fleet does not know the adapters, integrations reads this to route a device to one.
    integration_channel = models.CharField(_("integration channel"), max_length=30)
    supports_grid_services = models.BooleanField(_("supports grid services"), default=False)
    is_read_only = models.BooleanField(
        _("read-only"), default=False, help_text=_("Monitoring only: the OEM API takes no commands.")
    )
    support_level = models.CharField(
        _("support level"), max_length=20, choices=SupportLevel.choices, default=SupportLevel.PRODUCTION
    )

    class Meta:
        db_table = "integrations_manufacturer"  # created there; moved with its rows (fleet 0008)
        ordering = ["name"]
        verbose_name = _("manufacturer")
        verbose_name_plural = _("manufacturers")

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        unknown = set(self.device_types) - set(DeviceType.values)
        if unknown:
            raise ValidationError({"device_types": f"Unknown device types: {sorted(unknown)}"})


class Contact(WorkspaceScopedModel):
    """A utility customer. `reference_id` is the utility account number: the join key back to the utility's
    system of record, unique in the workspace."""

    # No index of its own: every (workspace, …) index below starts with it.
    workspace = models.ForeignKey(
        "texture_portal.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
        db_index=False,
    )
    reference_id = models.CharField(_("reference ID"), max_length=100, help_text=_("Utility account number."))
    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True, help_text=_("E.164, e.g. +15035550123."))

    class Meta:
        ordering = ["last_name", "first_name", "reference_id"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "reference_id"], name="contact_reference_id_unique"),
            models.CheckConstraint(condition=Q(reference_id__length__gt=0), name="contact_reference_id_not_blank"),
        ]
        indexes = [
            models.Index(fields=["workspace", "last_name", "first_name"], name="contact_name_idx"),
            models.Index(fields=["workspace", "email"], name="contact_email_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.reference_id})"


class Site(WorkspaceScopedModel):
    """A physical address of a contact, where devices are installed. Carries map coordinates and timezone."""

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="sites", verbose_name=_("contact"))
    site_name = models.CharField(_("site name"), max_length=200, blank=True)
    site_reference_id = models.CharField(_("site reference ID"), max_length=100, blank=True)
    street_one = models.CharField(_("street"), max_length=200)
    street_two = models.CharField(_("street (line 2)"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=100)
    state = models.CharField(_("state"), max_length=50)
    postal_code = models.CharField(_("postal code"), max_length=20)
    country = models.CharField(_("country"), max_length=2, default="US", help_text=_("ISO 3166-1 alpha-2."))
    latitude = models.FloatField(_("latitude"), null=True, blank=True)
    longitude = models.FloatField(_("longitude"), null=True, blank=True)
    timezone = models.CharField(
        _("timezone"), max_length=64, blank=True, help_text=_("IANA name, e.g. America/Denver.")
    )

    class Meta:
        ordering = ["contact", "street_one"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="site_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="site_longitude_range",
            ),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True, longitude__isnull=True)
                | Q(latitude__isnull=False, longitude__isnull=False),
                name="site_coordinates_paired",
            ),
            models.UniqueConstraint(
                fields=["workspace", "site_reference_id"],
                condition=~Q(site_reference_id=""),
                name="site_reference_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.site_name or f"{self.street_one}, {self.city} {self.state} {self.postal_code}"

    def clean(self):
        super().clean()
        if self.timezone:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValidationError({"timezone": f"Unknown timezone “{self.timezone}”."}) from exc

    @property
    def address(self) -> str:
        parts = [
            self.street_one,
            self.street_two,
            self.city,
            f"{self.state} {self.postal_code}",
            self.country,
        ]
        return ", ".join(p for p in parts if p)


class DeviceTag(WorkspaceScopedModel):
    """A fleet grouping label, `prefix:value` (e.g. `feeder:12`), that events and filters target."""

    name = models.CharField(_("name"), max_length=100)

    class Meta:
        ordering = ["name"]
        verbose_name = _("device tag")
        verbose_name_plural = _("device tags")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="device_tag_unique_per_workspace"),
            models.CheckConstraint(condition=Q(name__length__gt=0), name="device_tag_not_blank"),
        ]

    def __str__(self) -> str:
        return self.name


class Device(WorkspaceScopedModel):
    """A customer's battery, charger, vehicle, inverter or thermostat, known by its OEM serial.

    `system_identifier` (serial, Tesla DIN, VIN…) is unique per workspace and manufacturer. `state` moves
    Registered System → Device on Workspace ↔ Offline only through `fleet.services`, which records each
    change in `DeviceStateChange` and the audit log. `contact` is the site's contact (kept in step).
    `grid_services_status` is what the OEM's API last showed of the device's grid-services enrollment (read by
    discovery and telemetry sync, at `grid_services_checked_at`); `unknown` until an OEM read says.
    """

    # No index of its own: every (workspace, …) index below starts with it.
    workspace = models.ForeignKey(
        "texture_portal.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
        db_index=False,
    )
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="devices", verbose_name=_("contact"))
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="devices", verbose_name=_("site"))
    manufacturer = models.ForeignKey(
        Manufacturer,
        on_delete=models.PROTECT,
        related_name="devices",
        verbose_name=_("manufacturer"),
    )
    system_identifier = models.CharField(_("system identifier"), max_length=100, help_text=_("OEM serial number."))
    device_type = models.CharField(_("device type"), max_length=20, choices=DeviceType.choices)
    name = models.CharField(_("name"), max_length=200, blank=True)
    tags = models.ManyToManyField(DeviceTag, blank=True, related_name="devices", verbose_name=_("tags"))
    state = models.CharField(_("state"), max_length=20, choices=DeviceState.choices, default=DeviceState.REGISTERED)
    state_changed_at = models.DateTimeField(_("state changed"), default=timezone.now)
    state_reason = models.CharField(_("state reason"), max_length=300, blank=True)
    oem_device_id = models.CharField(_("OEM device ID"), max_length=200, blank=True)
    oem_data = models.JSONField(_("OEM data"), default=dict, blank=True, help_text=_("Ids and details from the OEM."))
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    # Written with last_seen_at by telemetry sync, so not indexed either (HOT updates, see below). The
    # database default lets the column be added to a large table without rewriting it, and rows written by
    # other paths (COPY) get it too.
    grid_services_status = models.CharField(
        _("grid services"),
        max_length=20,
        choices=GridServicesStatus.choices,
        default=GridServicesStatus.UNKNOWN,
        db_default=GridServicesStatus.UNKNOWN,
    )
    grid_services_checked_at = models.DateTimeField(_("grid services checked"), null=True, blank=True)
    # Moved forward by every telemetry sync. Neither indexed nor constrained in the database, so that moving
    # it (and last_seen_at) changes no indexed column and PostgreSQL updates the row in place (a HOT update,
    # helped by the table's fillfactor) instead of adding an entry to each of the table's indexes for every
    # reading. SET_NULL on deleting a reading is Django's (its deletion collector), not the database's.
    latest_telemetry = models.ForeignKey(
        "fleet.TelemetryReading",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("latest telemetry"),
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "manufacturer", "system_identifier"], name="device_serial_unique"
            ),
            models.CheckConstraint(condition=Q(system_identifier__length__gt=0), name="device_serial_not_blank"),
            models.CheckConstraint(condition=Q(state__in=DeviceState.values), name="device_state_valid"),
            models.CheckConstraint(condition=Q(device_type__in=DeviceType.values), name="device_type_valid"),
            models.CheckConstraint(
                condition=Q(grid_services_status__in=GridServicesStatus.values), name="device_grid_services_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "system_identifier"], name="device_serial_idx"),
            models.Index(fields=["workspace", "state", "manufacturer"], name="device_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.manufacturer_id and self.manufacturer.slug}:{self.system_identifier}"

    def clean(self):
        super().clean()
        if self.site_id and self.contact_id and self.site.contact_id != self.contact_id:
            raise ValidationError({"site": "The site belongs to another contact."})
        if self.manufacturer_id and self.device_type and self.device_type not in self.manufacturer.device_types:
            raise ValidationError(
                {"device_type": f"{self.manufacturer} makes no devices of type “{self.device_type}”."}
            )


class DeviceStateChange(WorkspaceScopedModel):
    """One state change of a device: from, to, when, why and who (a person, a sync job, an import)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="state_changes", db_index=False)
    from_state = models.CharField(_("from"), max_length=20, choices=DeviceState.choices, blank=True)
    to_state = models.CharField(_("to"), max_length=20, choices=DeviceState.choices)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    source = models.CharField(_("source"), max_length=20, choices=AuditSource.choices)

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("device state change")
        verbose_name_plural = _("device state history")
        indexes = [models.Index(fields=["device", "-changed_at"], name="device_state_history_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(from_state=F("to_state")), name="state_change_changes_state"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}: {self.from_state or '—'} → {self.to_state}"


class TelemetryReading(models.Model):
    """One normalized snapshot of a device as its OEM measured it (SI units, UTC, the OEM's own time).

    Signs follow docs/domain.md: `charge_rate_w` + discharging; `grid_power_w` + importing. One reading per device
    and measurement time: re-syncing the same reading never duplicates it.
    """

    # No database constraint (the device's, below, stays): the readings are the largest table, written only by
    # the ingest with the device's own workspace, and a second check per reading cost a tenth of writing it.
    # PROTECT still holds through Django's deletion collector.
    workspace = models.ForeignKey(
        "texture_portal.Workspace", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    # no index of its own: the (device, measured_at) unique constraint's index starts with it
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="telemetry", db_index=False)
    measured_at = models.DateTimeField(_("measured at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    charge_percentage = models.FloatField(_("state of charge (%)"), null=True, blank=True)
    charge_rate_w = models.FloatField(_("charge rate (W, + discharging)"), null=True, blank=True)
    grid_power_w = models.FloatField(_("grid power (W, + importing)"), null=True, blank=True)
    solar_power_w = models.FloatField(_("solar power (W)"), null=True, blank=True)
    backup_reserve_percent = models.FloatField(_("backup reserve (%)"), null=True, blank=True)
    charging_state = models.CharField(
        _("charging state"), max_length=20, choices=ChargingState.choices, default=ChargingState.UNKNOWN
    )
    grid_status = models.CharField(
        _("grid status"), max_length=20, choices=GridStatus.choices, default=GridStatus.UNKNOWN
    )
    strategy = models.CharField(_("strategy"), max_length=30, choices=BatteryStrategy.choices, blank=True)
    is_storm_mode_enabled = models.BooleanField(_("Storm Guard enabled"), null=True, blank=True)
    is_storm_mode_active = models.BooleanField(_("Storm Guard active"), null=True, blank=True)
    is_plugged_in = models.BooleanField(_("plugged in"), null=True, blank=True)
    charger_wattage_w = models.FloatField(_("charger power (W)"), null=True, blank=True)
    charge_limit_percent = models.FloatField(_("charge limit (%)"), null=True, blank=True)
    range_km = models.FloatField(_("range (km)"), null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-measured_at"]
        verbose_name = _("telemetry reading")
        verbose_name_plural = _("telemetry")
        constraints = [
            models.UniqueConstraint(fields=["device", "measured_at"], name="telemetry_unique_per_device_time"),
            models.CheckConstraint(
                condition=Q(charge_percentage__isnull=True) | Q(charge_percentage__gte=0, charge_percentage__lte=100),
                name="telemetry_soc_range",
            ),
            models.CheckConstraint(
                condition=Q(backup_reserve_percent__isnull=True)
                | Q(backup_reserve_percent__gte=0, backup_reserve_percent__lte=100),
                name="telemetry_reserve_range",
            ),
        ]

    def __str__(self) -> str:
        soc = "—" if self.charge_percentage is None else f"{self.charge_percentage:.0f}%"
        return f"{self.measured_at:%Y-%m-%d %H:%M} SoC {soc}"


class TelemetryRollup(models.Model):
    """A device's readings averaged over one 15-minute interval (UTC-aligned): what baselines, event reports
    and charts read over days and weeks instead of the raw readings (at most 96 rows a device a day, whatever
    the OEM's cadence). Written only by `fleet.services.telemetry_rollups_refresh`, which recomputes an
    interval from its raw readings (so running it twice changes nothing). Chosen over PostgreSQL partitioning:
    it also works on the demo's SQLite, and it shrinks what a report reads, which partitioning would not."""

    workspace = models.ForeignKey(
        "texture_portal.Workspace", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    # no index of its own: the (device, interval_start) unique constraint's index starts with it
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="telemetry_rollups", db_index=False)
    interval_start = models.DateTimeField(_("interval start"))
    samples = models.PositiveSmallIntegerField(_("readings"))
    charge_rate_w = models.FloatField(_("mean charge rate (W, + discharging)"), null=True, blank=True)
    grid_power_w = models.FloatField(_("mean grid power (W, + importing)"), null=True, blank=True)
    solar_power_w = models.FloatField(_("mean solar power (W)"), null=True, blank=True)
    charger_wattage_w = models.FloatField(_("mean charger power (W)"), null=True, blank=True)
    charge_percentage = models.FloatField(_("mean state of charge (%)"), null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["device", "-interval_start"]
        verbose_name = _("telemetry rollup")
        verbose_name_plural = _("telemetry rollups (15 minutes)")
        constraints = [
            models.UniqueConstraint(fields=["device", "interval_start"], name="telemetry_rollup_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} {self.interval_start:%Y-%m-%d %H:%M} ({self.samples})"


class ImportJob(WorkspaceScopedModel):
    """One upload of a fleet file and what became of it: validation (the preview), then the import.

    Keeps the file until the import is done or the preview is abandoned (a sweep removes it), the counts,
    every error ("row N, column: value — why"), warnings, per-row statuses, timings and who did it.
    """

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(_("source"), max_length=20, choices=AuditSource.choices, default=AuditSource.ADMIN)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", blank=True, max_length=300)
    original_filename = models.CharField(_("file name"), max_length=255)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=ImportJobStatus.choices, default=ImportJobStatus.UPLOADED
    )
    status_reason = models.TextField(_("status reason"), blank=True)
    progress_phase = models.CharField(_("phase"), max_length=20, blank=True)
    progress_done = models.PositiveIntegerField(_("done"), default=0)
    progress_total = models.PositiveIntegerField(_("total"), default=0)
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    warnings = models.JSONField(_("warnings"), default=list, blank=True)
    row_statuses = models.JSONField(
        _("row statuses"), default=list, blank=True, help_text=_("[row, status, referenceId, systemIdentifier]")
    )
    encoding = models.CharField(_("encoding"), max_length=30, blank=True)
    delimiter = models.CharField(_("delimiter"), max_length=5, blank=True)
    timings = models.JSONField(_("timings (s)"), default=dict, blank=True)
    validated_at = models.DateTimeField(_("validated"), null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ImportJobStatus.values), name="import_job_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "created"], name="import_job_status_idx")]

    def __str__(self) -> str:
        return f"Import #{self.pk}: {self.original_filename}"


class Alert(WorkspaceScopedModel):
    """Something about the fleet that staff should look at, in Texture's shape: type and subtype, severity,
    status (OPEN → ACKNOWLEDGED | IGNORED | RESOLVED, moved only by `fleet.services`, which records who and
    when), an optional snooze, the device's and site's ids and a snapshot of the device as it was.

    `cause` is what raised it, as a key (`device_offline:device:42`, `dispatch:command_failed:device:42`): an
    alert about something the fleet does not know (a dispatch event, an integration) names it by `cause` and
    a plain-words `subject_label` / `subject_ref`, never by a foreign key. Invariant (database): at most one
    alert per workspace and cause that is not resolved; raising the cause again while it exists counts on it
    (`raise_count`, `last_seen_at`). A resolved alert is final.
    """

    # No index of its own: every (workspace, …) index below starts with it.
    workspace = models.ForeignKey(
        "texture_portal.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
        db_index=False,
    )
    cause = models.CharField(_("cause"), max_length=200, help_text=_("What raised it: one live alert per cause."))
    type = models.CharField(_("type"), max_length=30, choices=AlertType.choices)
    subtype = models.CharField(_("subtype"), max_length=60, blank=True)
    severity = models.CharField(_("severity"), max_length=10, choices=AlertSeverity.choices)
    status = models.CharField(_("status"), max_length=15, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    site = models.ForeignKey(
        Site, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts", verbose_name=_("site")
    )
    device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts", verbose_name=_("device")
    )
    subject_label = models.CharField(
        _("about"), max_length=200, blank=True, help_text=_("What it is about when that is not a device or site.")
    )
    subject_ref = models.CharField(_("about (reference)"), max_length=100, blank=True)
    source_system = models.CharField(_("source system"), max_length=60)
    external_id = models.CharField(_("external ID"), max_length=200, blank=True)
    # the device as it was when the alert was raised (kept if the device changes or goes)
    manufacturer_device_id = models.CharField(_("manufacturer device ID"), max_length=200, blank=True)
    device_name = models.CharField(_("device name"), max_length=200, blank=True)
    device_type = models.CharField(_("device type"), max_length=20, blank=True)
    device_model = models.CharField(_("device model"), max_length=200, blank=True)
    device_serial_number = models.CharField(_("device serial number"), max_length=100, blank=True)
    manufacturer = models.CharField(_("manufacturer"), max_length=120, blank=True)
    last_seen_at = models.DateTimeField(_("last raised"), default=timezone.now)
    raise_count = models.PositiveIntegerField(_("times raised"), default=1)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_by_label = models.CharField(_("acknowledged by"), max_length=200, blank=True)
    ignored_at = models.DateTimeField(_("ignored at"), null=True, blank=True)
    ignored_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ignored_by_label = models.CharField(_("ignored by"), max_length=200, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_by_label = models.CharField(
        _("resolved by"), max_length=200, blank=True, help_text=_("“system” when its cause cleared.")
    )
    snoozed_until = models.DateTimeField(_("snoozed until"), null=True, blank=True)
    notified_at = models.DateTimeField(_("mailed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "cause"],
                condition=Q(status__in=ALERT_ACTIVE),
                name="alert_one_active_per_cause",
            ),
            models.CheckConstraint(condition=Q(cause__length__gt=0), name="alert_cause_not_blank"),
            models.CheckConstraint(condition=Q(status__in=AlertStatus.values), name="alert_status_valid"),
            models.CheckConstraint(condition=Q(severity__in=AlertSeverity.values), name="alert_severity_valid"),
            models.CheckConstraint(condition=Q(type__in=AlertType.values), name="alert_type_valid"),
            models.CheckConstraint(condition=Q(raise_count__gte=1), name="alert_raise_count_positive"),
            models.CheckConstraint(
                condition=~Q(status=AlertStatus.RESOLVED) | Q(resolved_at__isnull=False),
                name="alert_resolved_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=AlertStatus.ACKNOWLEDGED) | Q(acknowledged_at__isnull=False),
                name="alert_acknowledged_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=AlertStatus.IGNORED) | Q(ignored_at__isnull=False),
                name="alert_ignored_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "status", "-created"], name="alert_status_idx"),
            models.Index(fields=["workspace", "-id"], name="alert_workspace_id_idx"),
            # the snooze sweep: only snoozed rows are in it
            models.Index(fields=["snoozed_until"], condition=Q(snoozed_until__isnull=False), name="alert_snoozed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_severity_display()}: {self.title}"

    @property
    def is_snoozed(self) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > timezone.now()


class AlertNotificationSetting(WorkspaceScopedModel):
    """Where a workspace's new alerts are e-mailed, and which: the types and severities chosen (empty: all).

    One per workspace. Mailed after commit, once per alert (and again when its snooze ends while it is still
    open or acknowledged); a snoozed, ignored or resolved alert is not mailed.
    """

    email = models.EmailField(_("e-mail address"))
    alert_types = models.JSONField(_("alert types"), default=list, blank=True, help_text=_("Empty: every type."))
    severities = models.JSONField(_("severities"), default=list, blank=True, help_text=_("Empty: every severity."))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["workspace"]
        verbose_name = _("alert e-mail setting")
        verbose_name_plural = _("alert e-mail settings")
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="alert_notification_one_per_workspace"),
        ]

    def __str__(self) -> str:
        return f"Alerts to {self.email}"

    def clean(self):
        super().clean()
        errors = {}
        for name, choices in (("alert_types", AlertType), ("severities", AlertSeverity)):
            values = getattr(self, name)
            if not isinstance(values, list):
                errors[name] = "A list."
            elif set(values) - set(choices.values):
                errors[name] = f"Unknown: {', '.join(sorted(set(values) - set(choices.values)))}."
        if errors:
            raise ValidationError(errors)

    def wants(self, alert) -> bool:
        return (
            self.is_active
            and (not self.alert_types or alert.type in self.alert_types)
            and (not self.severities or alert.severity in self.severities)
        )
