"""Dispatch admin: program events with their action windows, live counts and participation, each device's
participation (opt-out), the command log, and the device page's events and commands."""

import csv
import io
from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from dispatch import engine, schedules, services
from dispatch.choices import CommandSlug, DispatchEventStatus, ExclusionReason, ParticipationStatus
from dispatch.filtersets import CommandFilterSet, DispatchEventFilterSet, ParticipationFilterSet
from dispatch.models import (
    BatchCommand,
    Command,
    DispatchAction,
    DispatchEvent,
    DispatchSchedule,
    EventReportDevice,
    Participation,
)
from dispatch.reports import event_report_recompile
from dispatch.selectors import (
    batch_command_summary,
    event_participation_counts,
    event_report_csv_rows,
    event_report_devices,
    event_report_of,
    program_dispatch_history,
    program_enrollment_over_time,
    program_health_over_time,
)
from dispatch.timeline import (
    Milestone,
    event_milestones,
    event_progress_series,
    event_timeline_page,
    milestones_sorted,
)
from fleet.admin import DeviceAdmin
from programs.models import Program
from texture_portal.admin_actions import run_service_for_each
from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
    WorkspaceScopedTabularInline,
    scope_to_user,
    scoped_object_or_none,
)
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.filters import MAX_ID, FilterSetAdminMixin
from texture_portal.timezones import (
    abbreviation,
    local_label,
    local_to_aware,
    local_window_label,
    utc_window_label,
    zone_name,
    zone_or_utc,
)


def _is_draft(event) -> bool:
    return event is None or event.status == DispatchEventStatus.DRAFT


# -- event windows in the program's timezone -------------------------------------------------------------------
#
# Staff enter and read an event's window times in its program's timezone; they are stored in UTC. On the add
# page the program is not known until it is chosen, so the times typed are read in the zone of the program
# submitted with them (whichever that is): simpler and as correct as a two-step form, and the program list
# shows each program's zone. Opened as ?program=ID, the program is fixed and the inputs name its zone.


def _program_by_id(request, raw) -> Program | None:
    return scoped_object_or_none(Program.objects.all(), request.user, raw)


def _fixed_program(request) -> Program | None:
    """The program an add page was opened for (?program=ID), when the user may see it."""
    return _program_by_id(request, request.GET.get("program"))


def _program_to_add_for(request) -> Program | None:
    """The add page's program: fixed by ?program=, else the one submitted with the form."""
    return _fixed_program(request) or _program_by_id(request, request.POST.get("program"))


def window_zone(request, event=None):
    """The zone an event's window times are entered and shown in: its program's (None: not chosen yet)."""
    if event is not None and event.pk:
        return event.program.zone
    program = _program_to_add_for(request)
    return program.zone if program else None


class WindowDateTimeWidget(widgets.AdminSplitDateTime):
    """The admin's date and time inputs showing the value in `zone` (the program's), labelled with it."""

    zone = None  # set per request; None: the program is not chosen yet

    def decompress(self, value):
        if value and self.zone is not None:
            local = value.astimezone(self.zone)
            return [local.date(), local.time()]
        return super().decompress(value)

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        if self.zone is None:
            label = _("In the chosen program's timezone (shown beside its name).")
        elif isinstance(value, datetime):
            label = f"{zone_name(self.zone)} ({value.astimezone(self.zone).tzname()})"
        else:
            label = zone_name(self.zone)
        return format_html('{}<div class="help window-zone">{}</div>', html, label)


class WindowDateTimeField(forms.SplitDateTimeField):
    """A date and a time read in `zone` (the program's; else the active one), cleaned to UTC. A time the clocks
    skip or pass twice in that zone is a form error saying so, never a silent shift."""

    zone = None

    def compress(self, data_list):
        if data_list and data_list[0] not in self.empty_values and data_list[1] not in self.empty_values:
            local = datetime.combine(*data_list)
            return local_to_aware(local, self.zone or timezone.get_current_timezone()).astimezone(UTC)
        return super().compress(data_list)


WINDOW_FIELD_OVERRIDES = {models.DateTimeField: {"form_class": WindowDateTimeField, "widget": WindowDateTimeWidget}}


def _zone_window_fields(form_class, zone) -> None:
    for name in ("starts_at", "ends_at"):
        field = form_class.base_fields.get(name)
        if isinstance(field, WindowDateTimeField):
            field.zone = field.widget.zone = zone


class DispatchActionInline(WorkspaceScopedTabularInline):
    model = DispatchAction
    fields = ["action_type", "starts_at", "ends_at"]
    show_change_link = False
    formfield_overrides = WINDOW_FIELD_OVERRIDES

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        _zone_window_fields(formset.form, window_zone(request, obj))
        return formset

    def has_add_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_delete_permission(request, obj)


class DispatchActionProgressInline(ReadOnlyWorkspaceScopedTabularInline):
    """A running or finished event's windows, with where the engine is in each, in the program's time."""

    model = DispatchAction
    fields = ["action_type", "window", "selected_and_commanded", "restore_started", "note"]
    readonly_fields = fields
    verbose_name_plural = _("actions")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event__program")

    @admin.display(description=_("window"))
    def window(self, obj):
        return local_window_label(obj.starts_at, obj.ends_at, obj.event.program.zone)

    @admin.display(description=_("devices selected and commanded"))
    def selected_and_commanded(self, obj):
        return local_label(obj.fanned_out_at, obj.event.program.zone)

    @admin.display(description=_("restore started"))
    def restore_started(self, obj):
        return local_label(obj.restore_started_at, obj.event.program.zone)


class NoBaselineFilter(admin.SimpleListFilter):
    title = _("baseline")
    parameter_name = "baseline"

    def lookups(self, request, model_admin):
        return [("yes", _("Measured against a baseline")), ("no", _("No baseline"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(battery_delivered_kwh__isnull=False)
        if self.value() == "no":
            return queryset.exclude(battery_no_baseline="")
        return queryset


class _Echo:
    """A file-like object whose write returns the line: csv.writer into a streamed response."""

    def write(self, value):
        return value


def _csv_response(filename: str, rows: list[dict]):
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if v is None else v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
            )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


TIMELINE_PER_PAGE = 50
# what the event timeline filters by: a participation status, or a step reached
TIMELINE_OUTCOMES = [
    ("", _("Every outcome")),
    ("commanded", _("Commanded (accepted by the OEM)")),
    ("confirmed", _("Confirmed by telemetry")),
    ("failed", _("Failed (command or restore)")),
    *ParticipationStatus.choices,
]


# the bar's parts are where each device stands now: two statuses read better with what they wait for
TIMELINE_BAR_LABELS = {
    ParticipationStatus.INCLUDED: _("Included, waiting for its slot"),
    ParticipationStatus.COMMANDED: _("Commanded, not yet confirmed"),
}


class EventTimelineForm(forms.Form):
    outcome = forms.ChoiceField(required=False, choices=TIMELINE_OUTCOMES)
    device = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, label=_("device id"))
    q = forms.CharField(required=False, max_length=100, strip=True, label=_("serial (from its start)"))
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)


def _local_time(value: datetime, zone) -> str:
    local = value.astimezone(zone)
    return f"{local:%H:%M:%S} {abbreviation(local)}"


def _utc(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.0f} %)" if whole else "—"


@admin.register(DispatchEvent)
class DispatchEventAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = DispatchEventFilterSet  # the API's filters, by the API's names
    list_display = ["name", "program", "status", "is_test", "trigger", "window", "workspace"]
    list_select_related = ["program", "workspace__organization"]
    list_filter = [
        "status",
        "is_test",
        "trigger",
        ("program", ScopedRelatedFieldListFilter),
        ("workspace", ScopedRelatedFieldListFilter),
    ]
    search_fields = ["name", "=signal_reference"]
    autocomplete_fields = ["target_tags"]
    inlines = [DispatchActionInline]
    actions = ["schedule", "cancel"]
    change_form_template = "admin/dispatch/dispatchevent/change_form.html"
    formfield_overrides = WINDOW_FIELD_OVERRIDES
    fields = [
        "workspace",
        "program",
        "name",
        "is_test",
        "trigger",
        "starts_at",
        "ends_at",
        "target_tags",
        "signal_reference",
        "status",
        "status_reason",
        "participation_summary",
        "strategy",
        "created_by",
    ]

    def get_inlines(self, request, obj):
        return [DispatchActionInline] if _is_draft(obj) else [DispatchActionProgressInline]

    def get_fields(self, request, obj=None):
        fields = list(self.fields)
        if obj is None:
            return fields
        if _is_draft(obj):  # the inputs show the program's time; what is stored, below them
            fields.insert(fields.index("ends_at") + 1, "window_utc")
            return fields
        return [{"starts_at": "window", "ends_at": "window_utc"}.get(name, name) for name in fields]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        _zone_window_fields(form, window_zone(request, obj))
        program = form.base_fields.get("program")
        if program is not None:
            program.label_from_instance = lambda p: f"{p} ({p.timezone})"
            fixed = _fixed_program(request) if obj is None else None
            if fixed:  # the inputs are labelled with this program's zone: it cannot change under them
                program.initial, program.disabled = fixed.pk, True
        return form

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        program = _fixed_program(request)
        if program is not None:
            initial["workspace"] = program.workspace_id
        return initial

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """With the program's timezone active, so Django's own rendering (read-only values, the calendar's
        "Now") speaks the program's time too; rendered before the zone is let go."""
        if object_id is None:
            zone = window_zone(request)
        else:
            try:
                scoped = self.get_queryset(request).filter(pk=unquote(object_id))
                found = scoped.values_list("program__timezone", flat=True).first()
                zone = zone_or_utc(found) if found else None
            except (ValueError, ValidationError):
                zone = None  # not an id: the page answers 404
        with timezone.override(zone):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.render()
        return response

    @admin.display(description=_("window"), ordering="starts_at")
    def window(self, obj):
        return local_window_label(obj.starts_at, obj.ends_at, obj.program.zone)

    @admin.display(description=_("stored (UTC)"))
    def window_utc(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return utc_window_label(obj.starts_at, obj.ends_at)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/schedule/", wrap(self.schedule_view), name="dispatch_dispatchevent_schedule"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="dispatch_dispatchevent_cancel"),
            path("<int:pk>/report/", wrap(self.report_view), name="dispatch_dispatchevent_report"),
            path("<int:pk>/timeline/", wrap(self.timeline_view), name="dispatch_dispatchevent_timeline"),
            path("<int:pk>/report.csv", wrap(self.report_csv_view), name="dispatch_dispatchevent_report_csv"),
            path(
                "program/<int:program_id>/performance/",
                wrap(self.program_performance_view),
                name="dispatch_program_performance",
            ),
            *super().get_urls(),
        ]

    def _event_for(self, request, pk) -> DispatchEvent:
        event = self.get_object(request, str(pk))
        if not self.has_change_permission(request, event):
            raise PermissionDenied(f"You may not change “{event}”.")
        return event

    def schedule_view(self, request, pk):
        """Schedule with a preview: who the event would take and why the others would not, then confirm."""
        event = self._event_for(request, pk)
        if request.method == "POST":
            try:
                services.dispatch_event_schedule(event=event, actor=request.user, source=AuditSource.ADMIN)
                self.message_user(request, f"“{event.name}” is scheduled.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:dispatch_dispatchevent_change", args=[event.pk]))
        return self._confirm_page(request, event, "schedule")

    def cancel_view(self, request, pk):
        """Cancel with a reason; a running event restores its devices at once."""
        event = self._event_for(request, pk)
        if request.method == "POST":
            try:
                services.dispatch_event_cancel(
                    event=event, actor=request.user, reason=request.POST.get("reason", ""), source=AuditSource.ADMIN
                )
                self.message_user(request, f"“{event.name}” is cancelled.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:dispatch_dispatchevent_change", args=[event.pk]))
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return self._confirm_page(request, event, "cancel")

    def _report_event(self, request, pk) -> DispatchEvent:
        if pk > MAX_ID:
            raise Http404("No such dispatch event.")  # not an id the database could hold
        event = self.get_object(request, str(pk))  # 404 outside the user's workspaces
        if not self.has_view_permission(request, event):
            raise PermissionDenied(f"You may not view “{event}”.")
        return event

    def report_view(self, request, pk):
        """The event's report: Event Performance, Device Participation and Program Health, each metric (Net at
        Meter, Battery) a toggle; POST compiles it again (whoever may change the event)."""
        event = self._report_event(request, pk)
        if request.method == "POST":
            if not self.has_change_permission(request, event):
                raise PermissionDenied(f"You may not change “{event}”.")
            try:
                report = event_report_recompile(event=event, actor=request.user)
                self.message_user(
                    request, f"The report was compiled again in {report.compile_ms} ms.", messages.SUCCESS
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:dispatch_dispatchevent_report", args=[event.pk]))
        report = event_report_of(event=event)
        zone = event.program.zone
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "event": event,
            "report": report,
            "title": f"Report: {event.name}",
            "window": local_window_label(event.starts_at, event.ends_at, zone),
            "window_utc": utc_window_label(event.starts_at, event.ends_at),
            "can_compile": self.has_change_permission(request, event),
        }
        if report is not None:
            top = event_report_devices(report=report).exclude(battery_delivered_kwh__isnull=True)
            context.update(
                compiled=local_label(report.compiled_at, zone),
                excluded=[
                    (ExclusionReason(c).label, c, n) for c, n in sorted(report.counts["excluded_by_reason"].items())
                ],
                actions=[
                    {
                        **a,
                        "window": local_window_label(
                            datetime.fromisoformat(a["startsAt"]), datetime.fromisoformat(a["endsAt"]), zone
                        ),
                    }
                    for a in report.actions
                ],
                top_devices=list(top.order_by("-battery_delivered_kwh", "device_id")[:10]),
                devices_url=reverse("admin:dispatch_eventreportdevice_changelist")
                + "?"
                + urlencode({"report__id__exact": report.pk}),
                participation_url=reverse("admin:dispatch_participation_changelist")
                + "?"
                + urlencode({"event__id__exact": event.pk}),
                chart_data={"totals": report.totals, "series": report.series, "actions": report.actions},
                responding=_share(report.counts["confirmed"], report.counts["commanded"]),
                taking_part=_share(report.counts["included"], report.counts["targeted"]),
            )
        return TemplateResponse(request, "admin/dispatch/dispatchevent/report.html", context)

    def timeline_view(self, request, pk):
        """The event in one view: its figures and participation over time at the top, then scheduled → started
        → each device's command roundtrip → restored → completed in time order, filtered by outcome or device,
        paged by devices (a constant number of queries per page)."""
        event = self._report_event(request, pk)  # 404 outside the user's workspaces, or not an id
        event = DispatchEvent.objects.select_related("program", "strategy").get(pk=event.pk)
        zone = event.program.zone
        now = timezone.now()
        form = EventTimelineForm(request.GET)
        status, page = 200, None
        if form.is_valid():
            data = form.cleaned_data
            milestones = event_milestones(event=event, zone=zone)
            if event.status == DispatchEventStatus.IN_PROGRESS:
                milestones = milestones_sorted([*milestones, Milestone(now, "now", gettext("Now"))])
            page = event_timeline_page(
                event=event,
                page=data["page"] or 1,
                per_page=TIMELINE_PER_PAGE,
                outcome=data["outcome"],
                device_id=data["device"],
                serial=data["q"],
                milestones=milestones,
                zone=zone,
            )
        else:
            status = 400
        counts = event_participation_counts(event=event)
        targeted = counts["targeted"]
        segments = [
            {
                "status": code,
                "label": TIMELINE_BAR_LABELS.get(code, label),
                "count": counts["by_status"].get(code, 0),
                "width": 100 * counts["by_status"].get(code, 0) / targeted if targeted else 0,
            }
            for code, label in ParticipationStatus.choices
            if counts["by_status"].get(code)
        ]
        figures = [
            ("targeted", _("targeted"), counts["targeted"], ""),
            ("included", _("included"), counts["included"], ""),
            ("commanded", _("commanded (accepted by the OEM)"), counts["commanded"], "commanded"),
            ("confirmed", _("confirmed by telemetry"), counts["confirmed"], "confirmed"),
            ("not_responding", _("not responding"), counts["not_responding"], "not_responding"),
            ("failed", _("failed"), counts["failed"], "failed"),
            ("opted_out", _("opted out"), counts["opted_out"], "opted_out"),
            ("restored", _("restored"), counts["restored"], "restored"),
            ("excluded", _("excluded"), counts["excluded"], "excluded"),
        ]
        series = event_progress_series(event=event, now=now)
        series["labels"] = [f"{datetime.fromisoformat(t).astimezone(zone):%H:%M}" for t in series["labels"]]
        items, day = [], None
        for kind, obj in page.items if page else []:
            local_day = obj.at.astimezone(zone).date()
            if local_day != day:
                items.append({"kind": "day", "day": local_day})
                day = local_day
            if kind == "milestone":
                items.append({"kind": kind, "m": obj, "time": _local_time(obj.at, zone), "utc": _utc(obj.at)})
            else:
                steps = [
                    {
                        "time": _local_time(at, zone) if at else "",
                        "utc": _utc(at) if at else "",
                        "text": text,
                        "tone": tone,
                    }
                    for at, text, tone in obj.steps
                ]
                items.append(
                    {
                        "kind": kind,
                        "d": obj,
                        "p": obj.participation,
                        "time": _local_time(obj.at, zone),
                        "utc": _utc(obj.at),
                        "steps": steps,
                    }
                )
        query = request.GET.copy()
        query.pop("page", None)
        base = query.urlencode()
        elapsed = (now - event.starts_at).total_seconds()
        length = (event.ends_at - event.starts_at).total_seconds()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "event": event,
            "title": f"Timeline: {event.name}",
            "window": local_window_label(event.starts_at, event.ends_at, zone),
            "window_utc": utc_window_label(event.starts_at, event.ends_at),
            "zone": zone_name(zone),
            "as_of": local_label(now, zone),
            "counts": counts,
            "segments": segments,
            "figures": figures,
            "elapsed_share": max(0, min(100, round(100 * elapsed / length))) if length > 0 else 100,
            "form": form,
            "page": page,
            "items": items,
            "page_query": (base + "&") if base else "",
            "chart_data": series,
            "participation_url": reverse("admin:dispatch_participation_changelist")
            + "?"
            + urlencode({"event__id__exact": event.pk}),
            "commands_url": reverse("admin:dispatch_command_changelist")
            + "?"
            + urlencode({"dispatchEventId": event.pk}),
            "has_report": event.status
            in (DispatchEventStatus.IN_PROGRESS, DispatchEventStatus.COMPLETED, DispatchEventStatus.CANCELLED),
        }
        return TemplateResponse(request, "admin/dispatch/dispatchevent/timeline.html", context, status=status)

    def report_csv_view(self, request, pk):
        """The report's device table as CSV (streamed: 10,000 devices never sit in memory at once)."""
        event = self._report_event(request, pk)
        report = event_report_of(event=event)
        if report is None:
            raise Http404("This event has no report yet.")
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in event_report_csv_rows(report=report)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="event-{event.pk}-report.csv"'
        return response

    def program_performance_view(self, request, program_id):
        """A program's rollups (Program Leads' KPIs): enrolled against the launch threshold over time, each
        event's participation, opt-outs and energy delivered, and Program Health per event; each as CSV."""
        program = None
        if program_id <= MAX_ID:  # else not an id the database could hold
            program = scope_to_user(Program.objects.all(), request.user).filter(pk=program_id).first()
        if program is None or not self.has_view_permission(request, program):
            raise Http404("No such program in your workspaces.")
        history = program_dispatch_history(program=program)
        enrollment = program_enrollment_over_time(program=program)
        health = program_health_over_time(program=program)
        tables = {"events": history, "enrollment": enrollment, "health": health}
        table = request.GET.get("csv")
        if table in tables:
            return _csv_response(f"{program.slug}-{table}.csv", tables[table])
        zone = program.zone
        for row in history:
            row["when"] = local_label(row["startsAt"], zone)
            row["reportUrl"] = reverse("admin:dispatch_dispatchevent_report", args=[row["eventId"]])
        chart = {
            "events": [{k: v for k, v in row.items() if k not in ("startsAt", "reportUrl")} for row in history],
            "enrollment": [{**p, "day": p["day"].isoformat()} for p in enrollment],
            "health": [{**p, "day": p["day"].isoformat()} for p in health],
        }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "program": program,
            "title": f"Performance: {program}",
            "history": history,
            "enrolled": enrollment[-1]["enrolled"] if enrollment else 0,
            "chart_data": chart,
            "delivered_total": round(sum(r["netDeliveredKwh"] or 0 for r in history if not r["isTest"]), 3),
        }
        return TemplateResponse(request, "admin/dispatch/program_performance.html", context)

    def _confirm_page(self, request, event, what: str):
        zone = event.program.zone
        preview = engine.dispatch_event_preview(event=event) if what == "schedule" else None
        for row in (preview or {}).get("actions", []):
            action = row["action"]
            row["window"] = local_window_label(action.starts_at, action.ends_at, zone)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "event": event,
            "what": what,
            "title": f"{'Schedule' if what == 'schedule' else 'Cancel'} “{event.name}”",
            "window": local_window_label(event.starts_at, event.ends_at, zone),
            "window_utc": utc_window_label(event.starts_at, event.ends_at),
            "problems": services.dispatch_event_problems(event=event) if what == "schedule" else [],
            "preview": preview,
            "counts": event_participation_counts(event=event) if what == "cancel" else None,
        }
        return TemplateResponse(request, "admin/dispatch/dispatchevent/confirm.html", context)

    @admin.display(description=_("participation"))
    def participation_summary(self, obj):
        """The live counts, with links to the participation list (filtered) and the event's commands."""
        if obj is None or obj.pk is None:
            return "—"
        counts = event_participation_counts(event=obj)
        if not counts["targeted"]:
            return "No device selected yet: the engine selects them when the first action starts."
        base = reverse("admin:dispatch_participation_changelist")

        def link(label, value, **query):
            query = urlencode({"event__id__exact": obj.pk, **query}, doseq=True)
            return format_html('<a class="participation-figure" href="{}?{}">{}: {}</a>', base, query, label, value)

        rows = [
            link("Targeted", counts["targeted"]),
            link("Excluded", counts["excluded"], status__exact="excluded"),
            *(
                link(f"— {ExclusionReason(code).label}", n, reason_code__exact=code)
                for code, n in sorted(counts["excluded_by_reason"].items())
            ),
            link("Commanded", counts["commanded"], commanded="true"),
            link("Confirmed by telemetry", counts["confirmed"], confirmed="true"),
            link("Not responding", counts["not_responding"], status__exact="not_responding"),
            link("Failed", counts["failed"], status=["failed", "restore_failed"]),
            link("Opted out", counts["opted_out"], status__exact="opted_out"),
            link("Restored", counts["restored"], restored="true"),
            format_html(
                '<a href="{}?{}">Commands</a>',
                reverse("admin:dispatch_command_changelist"),
                urlencode({"dispatchEventId": obj.pk}),
            ),
            format_html(
                '<a href="{}">Timeline: every device\'s roundtrip in time order</a>',
                reverse("admin:dispatch_dispatchevent_timeline", args=[obj.pk]),
            ),
        ]
        return format_html_join("", "<div>{}</div>", ((row,) for row in rows))

    def get_readonly_fields(self, request, obj=None):
        fixed = ["status", "status_reason", "participation_summary", "strategy", "created_by"]
        if obj is None:
            return fixed
        if not _is_draft(obj):
            return [*self.fields, "window", "window_utc"]
        return ["workspace", "program", *fixed, "window_utc"]

    def perform_save(self, request, obj, form, change):
        data = form.cleaned_data
        tags = [t.name for t in data.get("target_tags", [])]
        if change:
            fields = {k: data[k] for k in services.EVENT_EDITABLE_FIELDS if k in data}
            services.dispatch_event_update(
                event=DispatchEvent.objects.get(pk=obj.pk),
                data=fields,
                target_tags=tags,
                actor=request.user,
                source=AuditSource.ADMIN,
            )
            obj.refresh_from_db()
        else:
            created = services.dispatch_event_create(
                program=data["program"],
                name=data["name"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                is_test=data.get("is_test", True),
                trigger=data.get("trigger") or "manual",
                target_tags=tags,
                signal_reference=data.get("signal_reference", ""),
                actor=request.user,
                source=AuditSource.ADMIN,
            )
            obj.pk = created.pk
            obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change):
        """Action windows of a draft: they take the event's workspace, and each change is audited."""
        instances = formset.save(commit=False)
        for deleted in formset.deleted_objects:
            audit_record(
                actor=request.user,
                action=AuditAction.OBJECT_DELETED,
                target=deleted,
                source=AuditSource.ADMIN,
            )
            deleted.delete()
        for instance in instances:
            created = instance.pk is None
            instance.workspace_id = form.instance.workspace_id
            instance.event_id = form.instance.pk
            instance.full_clean()
            instance.save()
            audit_record(
                actor=request.user,
                action=AuditAction.OBJECT_CREATED if created else AuditAction.OBJECT_CHANGED,
                target=instance,
                source=AuditSource.ADMIN,
            )
        formset.save_m2m()

    def audit_save(self, request, obj, form, change):
        """The services audit."""

    @admin.action(description=_("Schedule selected draft events"))
    def schedule(self, request, queryset):
        run_service_for_each(
            self,
            request,
            queryset.select_related("program", "strategy"),
            lambda e: services.dispatch_event_schedule(event=e, actor=request.user, source=AuditSource.ADMIN),
            done="Scheduled",
        )

    @admin.action(description=_("Cancel selected events"))
    def cancel(self, request, queryset):
        run_service_for_each(
            self,
            request,
            queryset,
            lambda e: services.dispatch_event_cancel(
                event=e, actor=request.user, reason=f"Cancelled by {request.user}", source=AuditSource.ADMIN
            ),
            done="Cancelled",
        )


@admin.register(Command)
class CommandAdmin(FilterSetAdminMixin, ReadOnlyWorkspaceScopedAdmin):
    filterset_class = CommandFilterSet  # the API's filters, by the API's names
    list_display = [
        "created",
        "device",
        "slug",
        "status",
        "attempts",
        "sent_at",
        "completed_at",
        "dispatch_event",
    ]
    list_select_related = ["device__manufacturer", "dispatch_event"]
    list_filter = ["status", "slug", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["^device__system_identifier", "=idempotency_key", "=oem_reference"]


class OptOutActionForm(ActionForm):
    reason = forms.CharField(
        label=_("reason"), required=False, max_length=300, help_text=_("Needed to opt devices out.")
    )


@admin.register(Participation)
class ParticipationAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    """Each targeted device of each event, written by the engine: nothing is edited here; Ops and Program
    Leads opt devices out (with a reason), which restores them alone."""

    filterset_class = ParticipationFilterSet  # the API's filters, by the API's names (commanded=true…)
    action_form = OptOutActionForm
    actions = ["opt_out"]
    list_display = [
        "device",
        "event",
        "status",
        "reason_code",
        "reason",
        "commanded_at",
        "confirmed_at",
        "restored_at",
    ]
    list_select_related = ["device__manufacturer", "event"]
    list_filter = [
        "status",
        "reason_code",
        ("event", ScopedRelatedFieldListFilter),
        ("workspace", ScopedRelatedFieldListFilter),
    ]
    search_fields = ["^device__system_identifier", "=device__contact__reference_id"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def audit_save(self, request, obj, form, change):
        """Nothing is saved from this page."""

    @admin.action(description=_("Opt the selected devices out of their event (restores them)"), permissions=["change"])
    def opt_out(self, request, queryset):
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(request, _("Give a reason to opt devices out."), messages.ERROR)
            return
        run_service_for_each(
            self,
            request,
            queryset.select_related("event"),
            lambda p: engine.participation_opt_out(
                participation=p, reason=reason, actor=request.user, source=AuditSource.ADMIN
            ),
            done="Opted out",
        )


# -- the fleet's device page ---------------------------------------------------------------------------------


class DeviceParticipationInline(ReadOnlyWorkspaceScopedTabularInline):
    model = Participation
    fields = ["event", "status", "reason", "commanded_at", "confirmed_at", "restored_at"]
    readonly_fields = fields
    ordering = ["-event__starts_at"]
    verbose_name_plural = _("dispatch events")
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event")


class DeviceCommandInline(ReadOnlyWorkspaceScopedTabularInline):
    model = Command
    fk_name = "device"
    fields = ["created", "slug", "purpose", "status", "status_reason", "dispatch_event", "completed_at"]
    readonly_fields = fields
    ordering = ["-created", "-id"]
    verbose_name_plural = _("commands")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dispatch_event")


# Dispatch adds its events and commands to the fleet's device page: the fleet knows nothing of dispatch.
DeviceAdmin.history_inlines = [*DeviceAdmin.history_inlines, DeviceParticipationInline, DeviceCommandInline]


class SendCommandForm(forms.Form):
    command = forms.ChoiceField(label=_("command"), choices=CommandSlug.choices)
    input = forms.JSONField(
        label=_("input (JSON)"),
        initial={"operatingMode": "idle"},
        help_text=_('E.g. {"operatingMode": "discharge", "minimumBatteryReserve": 20} or {"chargePercentage": 40}.'),
    )

    def clean(self):
        from dispatch.api.serializers import COMMAND_INPUTS

        cleaned = super().clean()
        if "command" in cleaned and isinstance(cleaned.get("input"), dict):
            checker = COMMAND_INPUTS[cleaned["command"]](data=cleaned["input"])
            if not checker.is_valid():
                self.add_error("input", f"Does not fit {cleaned['command']}: {checker.errors}")
            else:
                cleaned["input"] = dict(checker.validated_data)
        elif "input" in cleaned:
            self.add_error("input", 'A JSON object, e.g. {"operatingMode": "idle"}.')
        return cleaned


@admin.action(description=_("Send a command to the selected devices…"), permissions=["change"])
def send_command(modeladmin, request, queryset):
    """Ops: one command to the selected devices (a batch command; the others are listed as skipped)."""
    if not request.user.has_perm("dispatch.add_command"):
        raise PermissionDenied("Sending commands is for Ops.")
    form = SendCommandForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        workspaces = set(queryset.values_list("workspace_id", flat=True))
        for workspace_id in sorted(workspaces):
            from texture_portal.models import Workspace

            workspace = Workspace.objects.get(pk=workspace_id)
            if not request.user.has_perm("dispatch.add_command", workspace):
                modeladmin.message_user(request, f"You may not send commands in {workspace}.", messages.ERROR)
                continue
            batch = services.batch_command_create(
                workspace=workspace,
                slug=form.cleaned_data["command"],
                input=form.cleaned_data["input"],
                device_ids=list(queryset.filter(workspace_id=workspace_id).values_list("pk", flat=True)),
                actor=request.user,
                source=AuditSource.ADMIN,
            )
            url = reverse("admin:dispatch_batchcommand_change", args=[batch.pk])
            modeladmin.message_user(
                request,
                format_html(
                    '<a href="{}">{}</a>: {} commands queued, {} devices skipped.',
                    url,
                    batch,
                    batch.commands.count(),
                    len(batch.skipped),
                ),
                messages.SUCCESS,
            )
        return None
    return TemplateResponse(
        request,
        "admin/dispatch/send_command.html",
        {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.opts,
            "title": _("Send a command"),
            "form": form,
            "devices": queryset.select_related("manufacturer")[:50],
            "count": queryset.count(),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        },
    )


DeviceAdmin.actions = [*(DeviceAdmin.actions or ()), send_command]


@admin.register(BatchCommand)
class BatchCommandAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Commands sent to many devices at once (a tag, or staff's selection), with their aggregate."""

    list_display = ["created", "slug", "tag", "requested_by", "summary", "workspace"]
    list_select_related = ["tag", "requested_by", "workspace__organization"]
    list_filter = ["slug", ("workspace", ScopedRelatedFieldListFilter)]
    readonly_fields = ["workspace", "slug", "input", "tag", "requested_by", "summary", "skipped_devices", "created"]
    fields = readonly_fields

    @admin.display(description=_("status"))
    def summary(self, obj):
        summary = batch_command_summary(batch=obj)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["by_status"].items()))
        link = f"{reverse('admin:dispatch_command_changelist')}?{urlencode({'batchId': obj.pk})}"
        return format_html('{} — <a href="{}">{}</a>', summary["status"].replace("_", " "), link, counts or "none")

    @admin.display(description=_("devices skipped"))
    def skipped_devices(self, obj):
        if not obj.skipped:
            return "—"
        return format_html_join("", "<div>#{}: {}</div>", ((s["deviceId"], s["reason"]) for s in obj.skipped))


SCHEDULE_FIELDS = [
    "workspace",
    "program",
    "name",
    "action_type",
    "rrule",
    "timezone",
    "start_time",
    "duration_minutes",
    "valid_from",
    "valid_until",
    "skip_dates",
    "lead_hours",
    "schedule_events",
    "is_test",
    "target_tags",
    "is_active",
]


class DispatchScheduleForm(forms.ModelForm):
    timezone = forms.CharField(
        label=_("timezone"),
        max_length=60,
        required=False,
        help_text=_("IANA name, e.g. America/Chicago. Empty: the program's timezone."),
    )

    class Meta:
        model = DispatchSchedule
        fields = SCHEDULE_FIELDS

    def clean(self):
        """A new schedule's problems (a rule that never fires, overlaps, breaks the strategy) are form errors.
        Its timezone is the program's unless another is given."""
        cleaned = super().clean()
        if not cleaned.get("timezone") and cleaned.get("program"):
            cleaned["timezone"] = cleaned["program"].timezone
        if self.instance.pk is None and not self.errors and cleaned.get("program"):
            candidate = DispatchSchedule(
                **{k: v for k, v in cleaned.items() if k not in ("target_tags", "workspace")},
                workspace_id=cleaned["program"].workspace_id,
            )
            for problem in schedules.dispatch_schedule_problems(schedule=candidate):
                self.add_error(None, problem)
        return cleaned


@admin.register(DispatchSchedule)
class DispatchScheduleAdmin(WorkspaceScopedAdmin):
    """Recurring events of a program: created through the service (which refuses rules that cannot work);
    afterwards only paused or resumed (a different rule is a new schedule)."""

    list_display = ["name", "program", "action_type", "rrule", "start_time", "timezone", "is_active", "workspace"]
    list_select_related = ["program", "workspace__organization"]
    list_filter = ["is_active", ("program", ScopedRelatedFieldListFilter), ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["name"]
    autocomplete_fields = ["target_tags"]
    form = DispatchScheduleForm
    fields = [*SCHEDULE_FIELDS, "next_occurrences", "created_by"]
    readonly_fields = ["next_occurrences", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return [name for name in self.fields if name != "is_active"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if "program" in form.base_fields:
            form.base_fields["program"].label_from_instance = lambda p: f"{p} ({p.timezone})"
        return form

    def get_changeform_initial_data(self, request):
        """A new schedule runs in its program's timezone (?program=ID fills it in; empty means the same)."""
        initial = {"timezone": "", **super().get_changeform_initial_data(request)}
        program = _fixed_program(request)
        if program is not None:
            initial.update(workspace=program.workspace_id, timezone=program.timezone)
        return initial

    @admin.display(description=_("next occurrences"))
    def next_occurrences(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        upcoming = schedules.schedule_next_occurrences(schedule=obj)
        if not upcoming:
            return "None in the coming year."
        import zoneinfo

        zone = zoneinfo.ZoneInfo(obj.timezone)
        return format_html_join(
            "",
            "<div>{} – {} ({}) · {} UTC</div>",
            (
                (
                    f"{o.starts_at.astimezone(zone):%a %Y-%m-%d %H:%M}",
                    f"{o.ends_at.astimezone(zone):%H:%M}",
                    obj.timezone,
                    f"{o.starts_at:%H:%M}",
                )
                for o in upcoming
            ),
        )

    def perform_save(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                schedules.dispatch_schedule_set_active(
                    schedule=DispatchSchedule.objects.get(pk=obj.pk),
                    active=data["is_active"],
                    actor=request.user,
                    source=AuditSource.ADMIN,
                )
                return
            created = schedules.dispatch_schedule_create(
                program=data["program"],
                name=data["name"],
                action_type=data["action_type"],
                rrule=data["rrule"],
                timezone_name=data["timezone"],
                start_time=data["start_time"],
                duration_minutes=data["duration_minutes"],
                valid_from=data["valid_from"],
                valid_until=data.get("valid_until"),
                skip_dates=data.get("skip_dates") or [],
                lead_hours=data["lead_hours"],
                schedule_events=data["schedule_events"],
                is_test=data["is_test"],
                target_tags=[tag.name for tag in data.get("target_tags", [])],
                actor=request.user,
                source=AuditSource.ADMIN,
            )
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc
        obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        """The service set the tags."""

    def audit_save(self, request, obj, form, change):
        """The services audit."""


@admin.register(EventReportDevice)
class EventReportDeviceAdmin(ReadOnlyWorkspaceScopedAdmin):
    """A report's device table: sortable by what each device delivered, filterable by its participation and
    whether it had a baseline; reached from the report page (filtered to that report)."""

    list_display = [
        "device_link",
        "status",
        "reason_code",
        "commanded",
        "confirmed",
        "restored",
        "net_delivered_kwh",
        "net_baseline_kwh",
        "battery_delivered_kwh",
        "battery_baseline_kwh",
        "battery_coverage",
        "battery_days",
        "battery_factor",
        "battery_no_baseline",
    ]
    list_select_related = ["device__manufacturer"]
    list_filter = ["status", "reason_code", "commanded", "confirmed", "restored", "opted_out", NoBaselineFilter]
    search_fields = ["=device__system_identifier"]
    ordering = ["-battery_delivered_kwh", "device_id"]
    list_per_page = 100

    def lookup_allowed(self, lookup, value, request=None):
        # the report page links here with its report's id (scoped by the queryset like every row)
        return lookup in ("report__id__exact", "report__event__id__exact") or super().lookup_allowed(
            lookup, value, request
        )

    @admin.display(description=_("device"), ordering="device_id")
    def device_link(self, obj):
        url = reverse("admin:fleet_device_change", args=[obj.device_id])
        return format_html('<a href="{}">{}:{}</a>', url, obj.device.manufacturer.slug, obj.device.system_identifier)
