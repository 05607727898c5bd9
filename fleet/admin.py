"""Fleet admin: the manufacturer catalog (read-only for staff), contacts (looked up by account number), sites,
devices with state history and telemetry."""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from fleet import selectors as fleet_selectors
from fleet import services
from fleet.admin_customer import CustomerPagesMixin
from fleet.admin_imports import FleetImportExportMixin
from fleet.charts import telemetry_chart_svg
from fleet.choices import ALERT_ACTIVE, AlertSeverity, AlertStatus, AlertType, DeviceState, GridServicesStatus
from fleet.filtersets import AlertFilterSet, ContactFilterSet, DeviceFilterSet, SiteFilterSet
from fleet.models import (
    Alert,
    AlertNotificationSetting,
    Contact,
    Device,
    DeviceStateChange,
    DeviceTag,
    Manufacturer,
    Site,
    TelemetryReading,
)
from fleet.timeline import MAX_PAGE, device_timeline_page, device_timeline_sources, device_zone, timeline_kind_label
from programs.models import Enrollment, Program
from texture_portal.admin_actions import run_service_for_each
from texture_portal.admin_base import (
    HardenedAdminMixin,
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
    object_id_or_none,
    scope_to_user,
)
from texture_portal.choices import AuditSource
from texture_portal.filters import MAX_ID, FilterSetAdminMixin
from texture_portal.text import cut, quoting_cut
from texture_portal.timezones import abbreviation, zone_name


@admin.register(Manufacturer)
class ManufacturerAdmin(HardenedAdminMixin, admin.ModelAdmin):
    """A global catalog, seeded by migration: staff read it; only superusers change it."""

    list_display = [
        "slug",
        "name",
        "integration_channel",
        "device_types",
        "supports_grid_services",
        "is_read_only",
    ]
    list_filter = ["integration_channel", "supports_grid_services"]
    search_fields = ["slug", "name"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False


def _filter_id(request, model, value):
    """The id a sidebar filter's value names; anything else is the changelist's "invalid filter" answer."""
    pk = object_id_or_none(model, value)
    if pk is None:
        raise ValueError(f"“{cut(value)}” is not a {model._meta.verbose_name} id.")
    return pk


class ProgramListFilter(admin.SimpleListFilter):
    """Devices enrolled in a program; choices are the user's programs only."""

    title = _("program")
    parameter_name = "program"

    def lookups(self, request, model_admin):
        programs = scope_to_user(Program.objects.all(), request.user).order_by("name")
        return [(str(p.pk), p.name) for p in programs.only("pk", "name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(enrollments__program_id=_filter_id(request, Program, self.value()))
        return queryset


class TagListFilter(admin.SimpleListFilter):
    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        tags = scope_to_user(DeviceTag.objects.all(), request.user).order_by("name")
        return [(str(t.pk), t.name) for t in tags.only("pk", "name")[:500]]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tags__id=_filter_id(request, DeviceTag, self.value()))
        return queryset


class FilterSetChoiceListFilter(admin.SimpleListFilter):
    """A sidebar filter that is one of the API's FilterSet choice filters: the same query name, the same
    choices and the same query (the FilterSet's own method), so a link built for the API or from the Ops home
    lists what it counted. A value the filter refuses says so and lists nothing."""

    filterset_class = DeviceFilterSet
    parameter_name: str

    def _filter(self):
        return self.filterset_class.base_filters[self.parameter_name]

    def lookups(self, request, model_admin):
        return list(self._filter().extra["choices"])

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        filterset = self.filterset_class({self.parameter_name: value}, queryset=queryset, request=request)
        if not filterset.is_valid():
            errors = " ".join(quoting_cut(msg, [value]) for msgs in filterset.errors.values() for msg in msgs)
            messages.error(request, f"Invalid filter — {self.parameter_name}: {errors}")
            return queryset.none()
        return filterset.qs  # only this filter has a value


class LastSeenListFilter(FilterSetChoiceListFilter):
    """When the device last reported (its OEM's measurement time)."""

    title = _("last seen")
    parameter_name = "lastSeen"


class SocBandListFilter(FilterSetChoiceListFilter):
    """The state of charge its latest reading shows."""

    title = _("state of charge")
    parameter_name = "socBand"


# -- inlines ----------------------------------------------------------------------------------------------
class SiteInline(ReadOnlyWorkspaceScopedTabularInline):
    model = Site
    fields = ["street_one", "city", "state", "postal_code", "site_name", "site_reference_id"]
    readonly_fields = fields


class ContactDeviceInline(ReadOnlyWorkspaceScopedTabularInline):
    model = Device
    fk_name = "contact"
    fields = ["system_identifier", "manufacturer", "device_type", "state", "site", "last_seen_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("manufacturer", "site")


class DeviceStateChangeInline(ReadOnlyWorkspaceScopedTabularInline):
    model = DeviceStateChange
    fields = ["changed_at", "from_state", "to_state", "reason", "source", "actor"]
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = _("state history")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class DeviceEnrollmentInline(ReadOnlyWorkspaceScopedTabularInline):
    model = Enrollment
    fields = ["program", "status", "submitted_at", "decided_at", "reason"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("program")


# -- contacts and sites -----------------------------------------------------------------------------------
@admin.register(Contact)
class ContactAdmin(CustomerPagesMixin, FleetImportExportMixin, FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = ContactFilterSet  # the API's filters, by the API's names
    list_display = ["reference_id", "last_name", "first_name", "email", "phone", "customer_page", "workspace"]
    list_display_links = ["reference_id", "last_name"]
    list_select_related = ["workspace__organization"]
    list_filter = [("workspace", ScopedRelatedFieldListFilter)]
    # Prefix and exact lookups: an account number or a name is typed from its start (and can use an index).
    search_fields = ["^reference_id", "^last_name", "^first_name", "^email", "=phone"]
    search_help_text = _("Account number, name or email (from the start), or the exact phone number.")
    fields = ["workspace", "reference_id", "first_name", "last_name", "email", "phone"]
    inlines = [SiteInline, ContactDeviceInline]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace"] if obj else []

    @admin.display(description=_("customer page"))
    def customer_page(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:fleet_contact_customer", args=[obj.pk]), _("Open"))

    def perform_save(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.CONTACT_FIELDS if name in form.cleaned_data}
        if change:
            services.contact_update(
                contact=Contact.objects.get(pk=obj.pk),
                data=data,
                actor=request.user,
                source=AuditSource.ADMIN,
            )
            obj.refresh_from_db()
        else:
            created = services.contact_create(
                workspace=obj.workspace, actor=request.user, source=AuditSource.ADMIN, **data
            )
            obj.pk = created.pk

    def audit_save(self, request, obj, form, change):
        """The services audit."""


@admin.register(Site)
class SiteAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = SiteFilterSet  # the API's filters, by the API's names
    list_display = ["__str__", "city", "state", "postal_code", "contact", "workspace"]
    list_select_related = ["contact", "workspace__organization"]
    list_filter = [("workspace", ScopedRelatedFieldListFilter), "state"]
    search_fields = ["^postal_code", "^city", "^street_one", "=contact__reference_id", "^site_reference_id"]
    autocomplete_fields = ["contact"]
    readonly_fields = ["map_link"]
    fieldsets = [
        (None, {"fields": ["workspace", "contact", "site_name", "site_reference_id"]}),
        (_("Address"), {"fields": ["street_one", "street_two", "city", "state", "postal_code", "country"]}),
        (_("Location"), {"fields": ["latitude", "longitude", "timezone", "map_link"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "map_link"] if obj else ["map_link"]

    @admin.display(description=_("map"))
    def map_link(self, obj):
        if obj is None or obj.latitude is None:
            return "—"
        return format_html(
            '<a href="https://www.openstreetmap.org/?mlat={0}&mlon={1}#map=16/{0}/{1}" target="_blank" '
            'rel="noopener">{0:.5f}, {1:.5f}</a>',
            obj.latitude,
            obj.longitude,
        )

    def perform_save(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.SITE_FIELDS if name in form.cleaned_data}
        if change:
            services.site_update(
                site=Site.objects.get(pk=obj.pk), data=data, actor=request.user, source=AuditSource.ADMIN
            )
            obj.refresh_from_db()
        else:
            contact = data.pop("contact")
            created = services.site_create(
                workspace=obj.workspace, contact=contact, actor=request.user, source=AuditSource.ADMIN, **data
            )
            obj.pk = created.pk

    def audit_save(self, request, obj, form, change):
        """The services audit."""


# -- devices ----------------------------------------------------------------------------------------------
@admin.register(DeviceTag)
class DeviceTagAdmin(WorkspaceScopedAdmin):
    list_display = ["name", "workspace"]
    list_select_related = ["workspace__organization"]
    list_filter = [("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["name"]


@admin.register(Device)
class DeviceAdmin(FleetImportExportMixin, FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = DeviceFilterSet  # the API's filters, by the API's names
    list_display = [
        "system_identifier",
        "manufacturer",
        "device_type",
        "state_badge",
        "contact_reference",
        "site_city",
        "soc",
        "grid_services",
        "last_seen_at",
        "workspace",
    ]
    list_select_related = ["manufacturer", "contact", "site", "latest_telemetry", "workspace__organization"]
    list_filter = [
        "state",
        "grid_services_status",
        ("manufacturer", admin.RelatedFieldListFilter),
        "device_type",
        LastSeenListFilter,
        SocBandListFilter,
        ProgramListFilter,
        TagListFilter,
        ("workspace", ScopedRelatedFieldListFilter),
    ]
    search_fields = ["^system_identifier", "=contact__reference_id"]
    search_help_text = _("Serial (from the start) or the owner's exact account number.")
    autocomplete_fields = ["site", "tags"]
    inlines = [DeviceStateChangeInline, DeviceEnrollmentInline]
    # Read-only history other apps add to an existing device's page (dispatch: its events and commands): the
    # fleet shows them without knowing them, and a device being added has none.
    history_inlines: list = []

    def get_inlines(self, request, obj):
        return [*self.inlines, *(self.history_inlines if obj is not None else [])]

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "workspace",
                    "site",
                    "contact",
                    "customer_page",
                    "manufacturer",
                    "system_identifier",
                    "device_type",
                    "name",
                    "tags",
                ]
            },
        ),
        (_("State"), {"fields": ["state", "state_changed_at", "state_reason", "last_seen_at"]}),
        # as the OEM's API last showed it (discovery and telemetry sync read it)
        (_("Grid services"), {"fields": ["grid_services_status", "grid_services_checked_at"]}),
        (_("Latest telemetry"), {"fields": ["latest_telemetry_panel", "telemetry_chart"]}),
        (_("OEM"), {"fields": ["oem_device_id", "oem_data"], "classes": ["collapse"]}),
    ]
    readonly_fields = [
        "contact",
        "customer_page",
        "state",
        "state_changed_at",
        "state_reason",
        "last_seen_at",
        "grid_services_status",
        "grid_services_checked_at",
        "latest_telemetry_panel",
        "telemetry_chart",
        "oem_device_id",
        "oem_data",
    ]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["workspace", "manufacturer", "system_identifier"] if obj else []
        return [*fixed, *self.readonly_fields]

    def get_urls(self):
        return [
            path(
                "<int:pk>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name="fleet_device_timeline",
            ),
            *super().get_urls(),
        ]

    def timeline_view(self, request, pk):
        """The device's timeline: state changes, readings (per hour) and what other apps add (commands, events,
        opt-outs, alerts), newest first, paged by time."""
        if pk > MAX_ID:
            raise Http404("No such device.")  # not an id the database could hold
        device = self.get_object(request, str(pk))  # 404 outside the user's workspaces
        if not self.has_view_permission(request, device):
            raise PermissionDenied(f"You may not view “{device}”.")
        device = Device.objects.select_related("manufacturer", "site", "contact").get(pk=device.pk)
        zone = device_zone(device)
        sources = device_timeline_sources()
        form = DeviceTimelineForm(request.GET, sources=sources, zone=zone)
        page, status = None, 200
        if form.is_valid():
            data = form.cleaned_data
            page = device_timeline_page(
                device=device,
                until=data["until"],
                skip=data["skip"] or 0,
                sources=data["source"] or None,
                limit=data["per_page"] or 50,
            )
        else:
            status = 400
        entries, day = [], None
        for entry in page.entries if page else []:
            local = entry.at.astimezone(zone)
            entries.append(
                {
                    "entry": entry,
                    "day": local.date() if local.date() != day else None,
                    "time": f"{local:%H:%M:%S} {abbreviation(local)}",
                    "kind": timeline_kind_label(entry.kind),
                    "utc": f"{entry.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
                }
            )
            day = local.date()
        older = None
        if page and page.next_until is not None:
            query = request.GET.copy()
            query.pop("date", None)
            query["until"] = page.next_until.astimezone(UTC).isoformat()
            query["skip"] = str(page.next_skip)
            older = "?" + query.urlencode()
        newest = request.GET.copy()
        for name in ("until", "skip", "date"):
            newest.pop(name, None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "device": device,
            "original": device,
            "title": f"Timeline: {device.manufacturer.slug}:{device.system_identifier}",
            "form": form,
            "sources": sources,
            "chosen": set(form.cleaned_data.get("source") or []) if form.is_valid() else set(),
            "entries": entries,
            "zone": zone_name(zone),
            "older_url": older,
            "newest_url": "?" + newest.urlencode(),
            "paged": bool(request.GET.get("until")),
        }
        return TemplateResponse(request, "admin/fleet/device/timeline.html", context, status=status)

    @admin.display(description=_("customer page"))
    def customer_page(self, obj):
        """Support's view of the owner, opened on this device."""
        if obj is None or obj.pk is None:
            return "—"
        url = reverse("admin:fleet_contact_customer", args=[obj.contact_id])
        return format_html('<a id="customer-page" href="{}?device={}#device-{}">{}</a>', url, obj.pk, obj.pk, _("Open"))

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj):
        colours = {
            DeviceState.REGISTERED: "#6b7280",
            DeviceState.ON_WORKSPACE: "#15803d",
            DeviceState.OFFLINE: "#b91c1c",
        }
        return format_html(
            '<span style="color:{};font-weight:600">{}</span>',
            colours.get(obj.state, "#000"),
            obj.get_state_display(),
        )

    @admin.display(description=_("grid services"), ordering="grid_services_status")
    def grid_services(self, obj):
        colours = {
            GridServicesStatus.ENROLLED: "#15803d",
            GridServicesStatus.PENDING: "#b45309",
            GridServicesStatus.NOT_ENROLLED: "#b91c1c",
        }
        return format_html(
            '<span style="color:{}">{}</span>',
            colours.get(obj.grid_services_status, "#6b7280"),
            obj.get_grid_services_status_display(),
        )

    @admin.display(description=_("account"), ordering="contact__reference_id")
    def contact_reference(self, obj):
        return obj.contact.reference_id

    @admin.display(description=_("city"), ordering="site__city")
    def site_city(self, obj):
        return obj.site.city

    @admin.display(description=_("SoC"))
    def soc(self, obj):
        reading = obj.latest_telemetry
        if reading is None or reading.charge_percentage is None:
            return "—"
        return f"{reading.charge_percentage:.0f}%"

    @admin.display(description=_("latest reading"))
    def latest_telemetry_panel(self, obj):
        reading = obj.latest_telemetry if obj else None
        if reading is None:
            return _("No telemetry yet (the device is a Registered System until discovery reaches it).")
        rows = [
            (_("measured at (UTC)"), f"{reading.measured_at:%Y-%m-%d %H:%M:%S}"),
            (_("state of charge"), _fmt(reading.charge_percentage, "%")),
            (_("charge rate (+ discharging)"), _fmt(reading.charge_rate_w, " W")),
            (_("grid power (+ importing)"), _fmt(reading.grid_power_w, " W")),
            (_("solar power"), _fmt(reading.solar_power_w, " W")),
            (_("backup reserve"), _fmt(reading.backup_reserve_percent, "%")),
            (_("charging state"), reading.get_charging_state_display()),
            (_("grid status"), reading.get_grid_status_display()),
            (_("Storm Guard"), _storm(reading)),
            (
                _("plugged in"),
                "—" if reading.is_plugged_in is None else (_("yes") if reading.is_plugged_in else _("no")),
            ),
            (_("charger power"), _fmt(reading.charger_wattage_w, " W")),
            (_("charge limit"), _fmt(reading.charge_limit_percent, "%")),
            (_("range"), _fmt(reading.range_km, " km")),
        ]
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((str(k), v) for k, v in rows)),
        )

    @admin.display(description=_("last day"))
    def telemetry_chart(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        end = timezone.now()
        start = end - timedelta(days=1)
        return telemetry_chart_svg(
            fleet_selectors.device_telemetry_series(device=obj, since=start), start=start, end=end
        )

    def perform_save(self, request, obj, form, change):
        data = form.cleaned_data
        tag_names = [tag.name for tag in data.get("tags", [])]
        if change:
            device = Device.objects.get(pk=obj.pk)
            services.device_update(
                device=device,
                data={k: data[k] for k in ("site", "name", "device_type") if k in data},
                tags=tag_names,
                actor=request.user,
                source=AuditSource.ADMIN,
            )
        else:
            device = services.device_register(
                workspace=obj.workspace,
                site=data["site"],
                manufacturer=data["manufacturer"],
                system_identifier=data["system_identifier"],
                device_type=data["device_type"],
                name=data.get("name", ""),
                tags=tag_names,
                actor=request.user,
                source=AuditSource.ADMIN,
            )
        obj.pk = device.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        """Tags are set by the service; only the (read-only) inlines remain."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def audit_save(self, request, obj, form, change):
        """The services audit."""


class DeviceTimelineForm(forms.Form):
    """The timeline's query: which sources, and where the page ends (a cursor, or a local date to jump to)."""

    source = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    until = forms.DateTimeField(required=False, help_text=_("ISO 8601; the page ends here (inclusive)."))
    skip = forms.IntegerField(required=False, min_value=0, max_value=100_000)
    date = forms.DateField(required=False, label=_("up to the day"))
    per_page = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE)

    def __init__(self, data, *, sources, zone):
        super().__init__(data)
        self.zone = zone
        self.fields["source"].choices = [(s.key, s.label) for s in sources]

    def clean(self):
        cleaned = super().clean()
        day = cleaned.get("date")
        if day and not cleaned.get("until"):
            # the end of that day where the device is
            cleaned["until"] = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone) - timedelta(
                microseconds=1
            )
            cleaned["skip"] = 0
        return cleaned


def _fmt(value, unit: str) -> str:
    return "—" if value is None else f"{value:,.0f}{unit}"


def _storm(reading) -> str:
    if reading.is_storm_mode_enabled is None:
        return "—"
    if reading.is_storm_mode_active:
        return str(_("active"))
    return str(_("enabled")) if reading.is_storm_mode_enabled else str(_("off"))


@admin.register(DeviceStateChange)
class DeviceStateChangeAdmin(ReadOnlyWorkspaceScopedAdmin):
    list_display = ["changed_at", "device", "from_state", "to_state", "reason", "source", "actor"]
    list_select_related = ["device__manufacturer", "actor"]
    list_filter = ["to_state", "source", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["^device__system_identifier"]


@admin.register(TelemetryReading)
class TelemetryReadingAdmin(ReadOnlyWorkspaceScopedAdmin):
    list_display = [
        "measured_at",
        "device",
        "charge_percentage",
        "charge_rate_w",
        "grid_power_w",
        "solar_power_w",
        "charging_state",
        "is_storm_mode_active",
    ]
    list_select_related = ["device__manufacturer"]
    list_filter = ["charging_state", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["=device__system_identifier"]
    search_help_text = _("Exact serial.")


# -- alerts ------------------------------------------------------------------------------------------------------


class AlertAttentionFilter(admin.SimpleListFilter):
    """Open and not snoozed (what staff have yet to look at), or snoozed for now."""

    title = _("attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("needed", _("Needs attention")), ("snoozed", _("Snoozed"))]

    def queryset(self, request, queryset):
        if self.value() == "needed":
            return queryset.filter(fleet_selectors.alerts_needing_attention_q())
        if self.value() == "snoozed":
            return queryset.filter(snoozed_until__gt=timezone.now())
        return queryset


class AlertDeviceFilter(admin.SimpleListFilter):
    """The devices that have live alerts (of the user's workspaces), by serial; any device by `?deviceId=`."""

    title = _("device")
    parameter_name = "device"

    def lookups(self, request, model_admin):
        rows = (
            scope_to_user(Alert.objects.filter(status__in=ALERT_ACTIVE, device__isnull=False), request.user)
            .values_list("device_id", "device_serial_number")
            .distinct()
            .order_by("device_serial_number")[:200]
        )
        return [(str(device_id), serial) for device_id, serial in rows]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            return queryset.filter(device_id=int(self.value()))
        return queryset


SEVERITY_COLOURS = {
    AlertSeverity.CRITICAL: "#b91c1c",
    AlertSeverity.WARNING: "#b45309",
    AlertSeverity.INFO: "#1d4ed8",
}


@admin.register(Alert)
class AlertAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    """Alerts are raised and resolved by the portal's rules; staff acknowledge, ignore, resolve and snooze
    them with the actions (who and when recorded by the services). The page itself is read-only."""

    filterset_class = AlertFilterSet  # the API's filters, by the API's names (`?deviceId=`, `?subtype=`)
    list_display = [
        "severity_badge",
        "title",
        "status",
        "type",
        "subtype",
        "device_serial_number",
        "subject_label",
        "raise_count",
        "last_seen_at",
        "snoozed_until",
        "created",
        "workspace",
    ]
    list_display_links = ["title"]
    list_select_related = ["workspace__organization"]
    list_filter = [
        AlertAttentionFilter,
        "status",
        "severity",
        "type",
        AlertDeviceFilter,
        ("workspace", ScopedRelatedFieldListFilter),
    ]
    search_fields = ["title", "^device_serial_number", "subject_label", "=cause", "=external_id"]
    search_help_text = _("Title, device serial (from the start), what it is about, or its exact cause.")
    ordering = ["-created", "-id"]
    actions = ["acknowledge", "ignore", "resolve", "snooze_24h"]
    fieldsets = [
        (
            None,
            {"fields": ["title", "severity", "status", "type", "subtype", "description", "workspace"]},
        ),
        (_("About"), {"fields": ["device", "site", "subject_label", "subject_ref", "cause"]}),
        (
            _("Device (as it was when raised)"),
            {
                "fields": [
                    "manufacturer",
                    "device_type",
                    "device_model",
                    "device_serial_number",
                    "manufacturer_device_id",
                    "device_name",
                ]
            },
        ),
        (
            _("Timeline"),
            {
                "fields": [
                    "created",
                    "last_seen_at",
                    "raise_count",
                    "acknowledged_at",
                    "acknowledged_by_label",
                    "ignored_at",
                    "ignored_by_label",
                    "resolved_at",
                    "resolved_by_label",
                    "snoozed_until",
                    "notified_at",
                ]
            },
        ),
        (_("Source"), {"fields": ["source_system", "external_id"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [name for _title, section in self.fieldsets for name in section["fields"]]

    def has_add_permission(self, request):
        return False  # raised by the rules

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what happened

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        extra_context["show_save_and_add_another"] = False
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("severity"), ordering="severity")
    def severity_badge(self, obj):
        return format_html(
            '<span style="color:{};font-weight:600">{}</span>',
            SEVERITY_COLOURS.get(obj.severity, "#000"),
            obj.get_severity_display(),
        )

    def _move(self, request, queryset, status, done):
        run_service_for_each(
            self,
            request,
            queryset,
            lambda alert: services.alert_change_status(
                alert=alert, status=status, actor=request.user, source=AuditSource.ADMIN
            ),
            done=done,
        )

    @admin.action(description=_("Acknowledge the selected alerts"), permissions=["change"])
    def acknowledge(self, request, queryset):
        self._move(request, queryset, AlertStatus.ACKNOWLEDGED, "Acknowledged")

    @admin.action(description=_("Ignore the selected alerts"), permissions=["change"])
    def ignore(self, request, queryset):
        self._move(request, queryset, AlertStatus.IGNORED, "Ignored")

    @admin.action(description=_("Resolve the selected alerts"), permissions=["change"])
    def resolve(self, request, queryset):
        self._move(request, queryset, AlertStatus.RESOLVED, "Resolved")

    @admin.action(description=_("Snooze the selected alerts for 24 hours"), permissions=["change"])
    def snooze_24h(self, request, queryset):
        until = timezone.now() + timedelta(hours=24)
        run_service_for_each(
            self,
            request,
            queryset,
            lambda alert: services.alert_snooze(alert=alert, until=until, actor=request.user, source=AuditSource.ADMIN),
            done=f"Snoozed until {until:%Y-%m-%d %H:%M} UTC",
        )


class AlertNotificationSettingForm(forms.ModelForm):
    alert_types = forms.MultipleChoiceField(
        choices=AlertType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("alert types"),
        help_text=_("None ticked: every type."),
    )
    severities = forms.MultipleChoiceField(
        choices=AlertSeverity.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("severities"),
        help_text=_("None ticked: every severity."),
    )

    class Meta:
        model = AlertNotificationSetting
        fields = ["workspace", "email", "alert_types", "severities", "is_active"]


@admin.register(AlertNotificationSetting)
class AlertNotificationSettingAdmin(WorkspaceScopedAdmin):
    """Where a workspace's new alerts are e-mailed (after commit; again when a snooze runs out)."""

    form = AlertNotificationSettingForm
    list_display = ["email", "alert_types", "severities", "is_active", "workspace"]
    list_select_related = ["workspace__organization"]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace"] if obj is not None else []

    def perform_save(self, request, obj, form, change):
        saved = services.alert_notification_setting_save(
            workspace=obj.workspace,
            email=obj.email,
            alert_types=obj.alert_types,
            severities=obj.severities,
            is_active=obj.is_active,
            actor=request.user,
            source=AuditSource.ADMIN,
        )
        obj.pk, obj.created = saved.pk, saved.created

    def audit_save(self, request, obj, form, change):
        """The service audits."""
