"""Integrations admin: the manufacturer catalog (read-only for staff) and the workspace integration tiles."""

import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from integrations import services
from integrations.models import Manufacturer, PlatformEvent, WorkspaceIntegration
from texture_portal.admin_base import ReadOnlyWorkspaceScopedAdmin, ScopedRelatedFieldListFilter, WorkspaceScopedAdmin
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


@admin.register(WorkspaceIntegration)
class WorkspaceIntegrationAdmin(WorkspaceScopedAdmin):
    form = WorkspaceIntegrationForm
    list_display = ["channel", "workspace", "enabled", "status", "last_checked_at", "last_error"]
    list_select_related = ["workspace__organization"]
    list_filter = ["channel", "enabled", "status", ("workspace", ScopedRelatedFieldListFilter)]
    readonly_fields = ["stored_credentials", "status", "last_error", "last_checked_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "channel", *self.readonly_fields] if obj else self.readonly_fields

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


@admin.register(PlatformEvent)
class PlatformEventAdmin(ReadOnlyWorkspaceScopedAdmin):
    """The outbox: every event the workspace's destinations are sent, with its exact payload."""

    list_display = ["timestamp", "type", "key", "workspace"]
    list_select_related = ["workspace__organization"]
    list_filter = ["type", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["=key"]
    readonly_fields = ["timestamp", "type", "version", "key", "data", "workspace"]
