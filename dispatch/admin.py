"""Dispatch admin: program events with their action windows, live counts and participation, each device's
participation (opt-out), the command log, and the device page's events and commands."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from dispatch import engine, schedules, services
from dispatch.choices import CommandSlug, DispatchEventStatus, ExclusionReason
from dispatch.filtersets import CommandFilterSet, DispatchEventFilterSet
from dispatch.models import BatchCommand, Command, DispatchAction, DispatchEvent, DispatchSchedule, Participation
from dispatch.selectors import batch_command_summary, event_participation_counts
from fleet.admin import DeviceAdmin
from texture_portal.admin_actions import run_service_for_each
from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
    WorkspaceScopedTabularInline,
)
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.filters import FilterSetAdminMixin


def _is_draft(event) -> bool:
    return event is None or event.status == DispatchEventStatus.DRAFT


class DispatchActionInline(WorkspaceScopedTabularInline):
    model = DispatchAction
    fields = ["action_type", "starts_at", "ends_at"]
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_delete_permission(request, obj)


class DispatchActionProgressInline(ReadOnlyWorkspaceScopedTabularInline):
    """A running or finished event's windows, with where the engine is in each."""

    model = DispatchAction
    fields = ["action_type", "starts_at", "ends_at", "fanned_out_at", "restore_started_at", "note"]
    readonly_fields = fields
    verbose_name_plural = _("actions")


@admin.register(DispatchEvent)
class DispatchEventAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = DispatchEventFilterSet  # the API's filters, by the API's names
    list_display = ["name", "program", "status", "is_test", "trigger", "starts_at", "ends_at", "workspace"]
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

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/schedule/", wrap(self.schedule_view), name="dispatch_dispatchevent_schedule"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="dispatch_dispatchevent_cancel"),
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

    def _confirm_page(self, request, event, what: str):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "event": event,
            "what": what,
            "title": f"{'Schedule' if what == 'schedule' else 'Cancel'} “{event.name}”",
            "problems": services.dispatch_event_problems(event=event) if what == "schedule" else [],
            "preview": engine.dispatch_event_preview(event=event) if what == "schedule" else None,
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
            return format_html(
                '<a href="{}?{}">{}: {}</a>', base, urlencode({"event__id__exact": obj.pk, **query}), label, value
            )

        rows = [
            link("Targeted", counts["targeted"]),
            link("Excluded", counts["excluded"], status__exact="excluded"),
            *(
                link(f"— {ExclusionReason(code).label}", n, reason_code__exact=code)
                for code, n in sorted(counts["excluded_by_reason"].items())
            ),
            format_html("Commanded: {}", counts["commanded"]),
            format_html("Confirmed by telemetry: {}", counts["confirmed"]),
            link("Not responding", counts["not_responding"], status__exact="not_responding"),
            link("Failed", counts["failed"], status__exact="failed"),
            link("Opted out", counts["opted_out"], status__exact="opted_out"),
            format_html("Restored: {}", counts["restored"]),
            format_html(
                '<a href="{}?{}">Commands</a>',
                reverse("admin:dispatch_command_changelist"),
                urlencode({"dispatchEventId": obj.pk}),
            ),
        ]
        return format_html_join("", "<div>{}</div>", ((row,) for row in rows))

    def get_readonly_fields(self, request, obj=None):
        fixed = ["status", "status_reason", "participation_summary", "strategy", "created_by"]
        if obj is None:
            return fixed
        if not _is_draft(obj):
            return list(self.fields)
        return ["workspace", "program", *fixed]

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
class ParticipationAdmin(WorkspaceScopedAdmin):
    """Each targeted device of each event, written by the engine: nothing is edited here; Ops and Program
    Leads opt devices out (with a reason), which restores them alone."""

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
    class Meta:
        model = DispatchSchedule
        fields = SCHEDULE_FIELDS

    def clean(self):
        """A new schedule's problems (a rule that never fires, overlaps, breaks the strategy) are form errors."""
        cleaned = super().clean()
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
