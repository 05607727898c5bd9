"""Integrations admin: the manufacturer catalog (read-only for staff) and the workspace integration tiles."""

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from integrations import services
from integrations.models import IntegrationRun, Manufacturer, WorkspaceIntegration
from texture_portal.admin_actions import run_service_for_each
from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
)
from texture_portal.choices import AuditSource


@admin.register(Manufacturer)
class ManufacturerAdmin(admin.ModelAdmin):
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


class WorkspaceIntegrationForm(forms.ModelForm):
    """Credentials are write-only: a new JSON object replaces them; empty keeps what is stored."""

    new_credentials = forms.CharField(
        label=_("new credentials (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text=_('E.g. {"client_id": "…", "client_secret": "…"}. Leave empty to keep the stored credentials.'),
    )

    class Meta:
        model = WorkspaceIntegration
        fields = ["workspace", "channel", "enabled"]

    def clean_new_credentials(self):
        text = self.cleaned_data["new_credentials"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from exc
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise forms.ValidationError("Credentials must be a JSON object of named values.")
        return value


class IntegrationRunInline(ReadOnlyWorkspaceScopedTabularInline):
    model = IntegrationRun
    fields = ["started_at", "kind", "status", "attempt", "devices_total", "devices_ok", "readings_written", "message"]
    readonly_fields = fields
    verbose_name_plural = _("recent runs")
    max_num = 0

    def get_formset(self, request, obj=None, **kwargs):
        request._runs_of_integration = obj  # admin instances are shared between requests: keep it on the request
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request):
        # the latest runs of this integration only: a busy one has thousands
        qs = super().get_queryset(request)
        parent = getattr(request, "_runs_of_integration", None)
        if parent is None:
            return qs.none()
        recent = qs.filter(integration=parent).order_by("-started_at", "-id").values_list("pk", flat=True)[:20]
        return qs.filter(pk__in=list(recent))


@admin.register(WorkspaceIntegration)
class WorkspaceIntegrationAdmin(WorkspaceScopedAdmin):
    """The integration tiles: one per OEM channel and workspace, with health, test and run buttons."""

    form = WorkspaceIntegrationForm
    list_display = ["channel", "workspace", "enabled", "status", "last_checked_at", "last_error"]
    actions = ["test_connection", "discover_now", "sync_telemetry_now"]
    inlines = [IntegrationRunInline]
    list_select_related = ["workspace__organization"]
    list_filter = ["channel", "enabled", "status", ("workspace", ScopedRelatedFieldListFilter)]
    readonly_fields = ["stored_credentials", "status", "last_error", "last_checked_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "channel", *self.readonly_fields] if obj else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else []  # a new integration has no runs yet

    @admin.display(description=_("stored credentials"))
    def stored_credentials(self, obj):
        if obj is None or not obj.credentials:
            return "—"
        masked = services.credentials_summary(obj.credentials)
        return format_html_join("", "<div><code>{}</code>: {}</div>", masked.items())

    def perform_save(self, request, obj, form, change):
        integration = services.workspace_integration_save(
            workspace=obj.workspace,
            channel=obj.channel,
            enabled=form.cleaned_data.get("enabled"),
            credentials=form.cleaned_data.get("new_credentials"),
            actor=request.user,
            source=AuditSource.ADMIN,
        )
        obj.pk = integration.pk

    def audit_save(self, request, obj, form, change):
        """The service audits (credential values are never written to the log)."""

    @admin.action(description=_("Test connection (one call to the OEM with the stored credentials)"))
    def test_connection(self, request, queryset):
        for integration in queryset:
            if not request.user.has_perm(self._perm("change"), integration):
                self.message_user(request, f"{integration}: you may not manage integrations there.", messages.ERROR)
                continue
            outcome = services.integration_test_connection(
                integration=integration, actor=request.user, source=AuditSource.ADMIN
            )
            level = messages.SUCCESS if outcome.startswith("Connected") else messages.ERROR
            self.message_user(request, f"{integration.get_channel_display()}: {outcome}", level)

    @admin.action(description=_("Discover now (look registered devices up at the OEM)"))
    def discover_now(self, request, queryset):
        from integrations.tasks import discovery_run_task

        def queue(integration):
            if not integration.enabled:
                from texture_portal.exceptions import ApplicationError

                raise ApplicationError("not enabled: enable it first.")
            transaction.on_commit(lambda: discovery_run_task.delay(integration.pk))

        run_service_for_each(self, request, queryset, queue, done="Discovery queued")

    @admin.action(description=_("Sync telemetry now"))
    def sync_telemetry_now(self, request, queryset):
        from integrations import selectors
        from integrations.tasks import telemetry_sync_task

        def queue(integration):
            if not integration.enabled:
                from texture_portal.exceptions import ApplicationError

                raise ApplicationError("not enabled: enable it first.")
            ids = selectors.device_ids_for_sync(integration=integration)
            transaction.on_commit(lambda: telemetry_sync_task.delay(integration.pk, ids))

        run_service_for_each(self, request, queryset, queue, done="Telemetry sync queued")


@admin.register(IntegrationRun)
class IntegrationRunAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Every discovery and telemetry-sync job: what ran, how far it got, and the errors it met."""

    list_display = [
        "started_at",
        "integration",
        "kind",
        "status",
        "attempt",
        "devices_total",
        "devices_ok",
        "devices_failed",
        "readings_written",
        "http_requests",
        "finished_at",
    ]
    list_select_related = ["integration"]
    list_filter = ["kind", "status", ("workspace", ScopedRelatedFieldListFilter)]
    readonly_fields = [
        "workspace",
        "integration",
        "kind",
        "status",
        "attempt",
        "started_at",
        "finished_at",
        "devices_total",
        "devices_ok",
        "devices_failed",
        "readings_written",
        "http_requests",
        "message",
        "errors",
    ]
