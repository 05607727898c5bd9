"""Integrations admin: the manufacturer catalog (read-only for staff) and the workspace integration tiles."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from integrations import services, webhooks
from integrations.choices import PlatformEventType
from integrations.destinations import DeliveryAttempt, Destination
from integrations.filtersets import DestinationFilterSet, PlatformEventFilterSet
from integrations.models import Manufacturer, PlatformEvent, WorkspaceIntegration
from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
)
from texture_portal.choices import AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.filters import FilterSetAdminMixin


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
class PlatformEventAdmin(FilterSetAdminMixin, ReadOnlyWorkspaceScopedAdmin):
    """The outbox: every event the workspace's destinations are sent, with its exact payload."""

    filterset_class = PlatformEventFilterSet  # the API's filters, by the API's names

    list_display = ["timestamp", "type", "key", "workspace"]
    list_select_related = ["workspace__organization"]
    list_filter = ["type", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["=key"]
    readonly_fields = ["timestamp", "type", "version", "key", "data", "workspace"]


# -- destinations (webhooks out) -------------------------------------------------------------------------------


class DestinationForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("event types"),
        choices=PlatformEventType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every event type."),
    )
    secret = forms.CharField(
        label=_("secret"),
        required=False,
        min_length=16,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Leave empty to have one generated (shown once after saving)."),
    )

    class Meta:
        model = Destination
        fields = ["workspace", "label", "url", "event_types", "is_active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            webhooks.webhook_url_check(url)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return url


class DeliveryAttemptInline(ReadOnlyWorkspaceScopedTabularInline):
    model = DeliveryAttempt
    fields = ["created", "event", "attempt", "status", "response_status", "error", "duration_ms", "next_attempt_at"]
    readonly_fields = fields
    ordering = ["-created", "-id"]
    max_num = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event")


@admin.register(Destination)
class DestinationAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = DestinationFilterSet  # the API's filters, by the API's names
    form = DestinationForm
    list_display = [
        "label",
        "url",
        "workspace",
        "is_active",
        "consecutive_failures",
        "last_success_at",
        "deactivated_reason",
    ]
    list_select_related = ["workspace__organization"]
    list_filter = ["is_active", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["label", "url"]
    readonly_fields = [
        "deactivated_at",
        "deactivated_reason",
        "consecutive_failures",
        "last_success_at",
        "last_failure_at",
        "created_by",
    ]
    actions = ["rotate_secret"]

    def get_fields(self, request, obj=None):
        fields = ["workspace", "label", "url", "event_types", "is_active"]
        if obj is None:
            return [*fields[:4], "secret"]
        return [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", *self.readonly_fields] if obj else []

    def perform_save(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                webhooks.destination_update(
                    destination=obj,
                    data={k: data[k] for k in ("label", "url", "event_types", "is_active") if k in data},
                    actor=request.user,
                    source=AuditSource.ADMIN,
                )
                return
            destination = webhooks.destination_create(
                workspace=data["workspace"],
                label=data["label"],
                url=data["url"],
                event_types=data.get("event_types") or [],
                secret=data.get("secret") or "",
                actor=request.user,
                source=AuditSource.ADMIN,
            )
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc
        obj.pk = destination.pk
        if not data.get("secret"):
            messages.warning(
                request,
                f"Signing secret of “{destination.label}”: {destination.secret} — copy it now; it is not shown again.",
            )

    def save_model(self, request, obj, form, change):
        if change:
            obj.refresh_from_db()  # the form wrote onto obj; the service compares against the stored row
        super().save_model(request, obj, form, change)

    def audit_save(self, request, obj, form, change):
        """The services audit."""

    @admin.action(description=_("Rotate the signing secret (shown once)"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        for destination in queryset:
            if not request.user.has_perm("integrations.change_destination", destination):
                raise PermissionDenied(f"You may not change “{destination}”.")
            secret = webhooks.destination_rotate_secret(
                destination=destination, actor=request.user, source=AuditSource.ADMIN
            )
            messages.warning(request, f"New signing secret of “{destination.label}”: {secret} — copy it now.")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyWorkspaceScopedAdmin):
    """The delivery log: every POST of every event to every destination, with the receiver's answer."""

    list_display = ["created", "destination", "event", "attempt", "status", "response_status", "error", "duration_ms"]
    list_select_related = ["destination", "event"]
    list_filter = ["status", ("workspace", ScopedRelatedFieldListFilter)]
    readonly_fields = [
        "workspace",
        "destination",
        "event",
        "attempt",
        "status",
        "response_status",
        "response_excerpt",
        "error",
        "duration_ms",
        "next_attempt_at",
        "created",
    ]
