"""Dispatch admin: program events with their action windows, and the command log."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from dispatch import services
from dispatch.choices import DispatchEventStatus
from dispatch.filtersets import CommandFilterSet, DispatchEventFilterSet
from dispatch.models import Command, DispatchAction, DispatchEvent
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


class EventCommandInline(ReadOnlyWorkspaceScopedTabularInline):
    model = Command
    fk_name = "dispatch_event"
    fields = ["device", "slug", "status", "status_reason", "attempts", "sent_at", "completed_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("device__manufacturer")


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
    inlines = [DispatchActionInline, EventCommandInline]
    actions = ["schedule", "cancel"]
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
        "strategy",
        "created_by",
    ]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["status", "status_reason", "strategy", "created_by"]
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
