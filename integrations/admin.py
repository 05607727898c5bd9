"""Integrations admin: the manufacturer catalog (read-only for staff) and the workspace integration tiles."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from integrations import services, webhooks
from integrations.choices import PlatformEventType
from integrations.destinations import DeliveryAttempt, Destination
from integrations.filtersets import DestinationFilterSet, PlatformEventFilterSet
from integrations.models import IntegrationRun, Manufacturer, PlatformEvent, WorkspaceIntegration
from texture_portal.admin_actions import run_service_for_each
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
