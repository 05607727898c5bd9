"""Integrations admin: the workspace integration tiles, their runs, and the device list's "Discover now"."""

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from fleet.admin import ContactAdmin, DeviceAdmin
from fleet.choices import DeviceState
from integrations import selectors, services
from integrations.models import ConnectSession, CustomerConnection, IntegrationRun, WorkspaceIntegration
from texture_portal.admin_actions import run_service_for_each
from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
)
from texture_portal.choices import AuditSource
from texture_portal.timezones import time_html


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
    actions = ["test_connection", "discover_now", "sync_telemetry_now", "backfill_history_now"]
    inlines = [IntegrationRunInline]
    list_select_related = ["workspace__organization"]
    list_filter = ["channel", "enabled", "status", ("workspace", ScopedRelatedFieldListFilter)]
    readonly_fields = ["stored_credentials", "status", "last_error", "last_checked_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "channel", *self.readonly_fields] if obj else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else []  # a new integration has no runs yet

    def get_urls(self):
        from integrations.engineering import EngineeringPage

        # the engineering page (tiles, API keys, destinations and deliveries, the API's reference) and its actions
        return [*EngineeringPage(self).urls(), *super().get_urls()]

    @admin.display(description=_("stored credentials"))
    def stored_credentials(self, obj):
        """Which keys are set and when each changed; never any part of a value (a password's or a token's last
        characters included)."""
        if obj is None or not obj.credentials:
            return "—"
        rows = [
            (
                shown.key,
                _("set") if shown.is_set else _("empty"),
                time_html(shown.changed_at) if shown.changed_at else _("change not recorded"),
            )
            for shown in selectors.integration_credentials_shown(integration=obj)
        ]
        return format_html_join("", '<div class="stored-credential"><code>{}</code>: {} · {}</div>', rows)

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
        def queue(integration):
            services.integration_discovery_queue(integration=integration, actor=request.user, source=AuditSource.ADMIN)

        run_service_for_each(self, request, queryset, queue, done="Discovery queued")

    @admin.action(description=_("Sync telemetry now"))
    def sync_telemetry_now(self, request, queryset):
        from integrations.tasks import telemetry_sync_task

        def queue(integration):
            if not integration.enabled:
                from texture_portal.exceptions import ApplicationError

                raise ApplicationError("not enabled: enable it first.")
            ids = selectors.device_ids_for_sync(integration=integration)
            transaction.on_commit(lambda: telemetry_sync_task.delay(integration.pk, ids))

        run_service_for_each(self, request, queryset, queue, done="Telemetry sync queued")

    @admin.action(description=_("Backfill telemetry history now (fill gaps from the OEM's history)"))
    def backfill_history_now(self, request, queryset):
        from integrations.tasks import telemetry_history_task
        from texture_portal.exceptions import ApplicationError

        def queue(integration):
            if not integration.enabled:
                raise ApplicationError("not enabled: enable it first.")
            if not services.channel_has_history(integration.channel):
                raise ApplicationError("its OEM serves no telemetry history.")
            transaction.on_commit(lambda: telemetry_history_task.delay(integration.pk))

        run_service_for_each(self, request, queryset, queue, done="History backfill queued")


@admin.register(IntegrationRun)
class IntegrationRunAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Every discovery, telemetry-sync and history-backfill job: what ran, how far it got, and the errors it met."""

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


# -- the fleet's device list ------------------------------------------------------------------------------


@admin.action(description=_("Discover now (look the selected devices up at their OEMs)"))
def discover_now(modeladmin, request, queryset):
    from integrations.tasks import discovery_run_task

    pairs = set(
        queryset.filter(state=DeviceState.REGISTERED).values_list("workspace_id", "manufacturer__integration_channel")
    )
    if not pairs:
        modeladmin.message_user(request, _("None of the selected devices is a Registered System."), messages.WARNING)
        return
    queued, disabled = [], []
    for workspace_id, channel in sorted(pairs):
        integration = WorkspaceIntegration.objects.filter(workspace_id=workspace_id, channel=channel).first()
        if integration is None or not integration.enabled:
            disabled.append(channel)
            continue
        if not request.user.has_perm("fleet.change_device", integration):
            continue
        transaction.on_commit(lambda pk=integration.pk: discovery_run_task.delay(pk))
        queued.append(integration.get_channel_display())
    if queued:
        modeladmin.message_user(request, f"Discovery queued for: {', '.join(queued)}.", messages.SUCCESS)
    if disabled:
        modeladmin.message_user(
            request,
            f"Not enabled in this workspace, so not discovered: {', '.join(sorted(set(disabled)))}.",
            messages.WARNING,
        )


# Discovery is integrations' business: the fleet's device list gets the action from here, so the fleet knows
# nothing of the adapters, runs or tasks.
DeviceAdmin.actions = [*(DeviceAdmin.actions or ()), discover_now]


# -- Texture Connect -------------------------------------------------------------------------------------------
@admin.register(CustomerConnection)
class CustomerConnectionAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Customers' own OEM accounts (Texture Connect). Tokens are never shown: which keys are stored, only."""

    list_display = ["contact", "channel", "status", "connected_at", "revoked_at", "last_synced_at", "workspace"]
    list_select_related = ["contact", "workspace__organization"]
    list_filter = ["channel", "status", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["^contact__reference_id", "^contact__last_name", "=reference_id"]
    readonly_fields = [
        "workspace",
        "contact",
        "channel",
        "status",
        "stored_keys",
        "reference_id",
        "tags",
        "connected_at",
        "revoked_at",
        "last_synced_at",
        "last_error",
    ]
    fields = readonly_fields

    @admin.display(description=_("stored credentials"))
    def stored_keys(self, obj):
        return ", ".join(sorted(obj.credentials)) or "—"


@admin.register(ConnectSession)
class ConnectSessionAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Connect sessions: who was sent a link, and how it went."""

    list_display = ["public_id", "contact", "status", "channel", "devices_linked", "created", "expires_at", "workspace"]
    list_select_related = ["contact", "workspace__organization"]
    list_filter = ["status", "channel", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["=reference_id", "^contact__reference_id"]
    readonly_fields = [
        "workspace",
        "public_id",
        "status",
        "outcome",
        "contact",
        "connection",
        "channel",
        "devices_linked",
        "redirect_url",
        "reference_id",
        "tags",
        "client_name",
        "manufacturer_filters",
        "expires_at",
        "completed_at",
        "link",
    ]
    fields = readonly_fields

    @admin.display(description=_("link"))
    def link(self, obj):
        from integrations.connect.services import connect_link_url

        if obj.status == "connected" or obj.expires_at <= timezone.now():
            return "—"
        return connect_link_url(obj)


@admin.action(description=_("Send a Connect link (the customer connects their own OEM account)"))
def connect_link_create(modeladmin, request, queryset):
    """A Connect session per selected customer; the links are shown to copy into an e-mail or a text."""
    from django.conf import settings

    from integrations.connect.services import connect_link_url, connect_session_create
    from texture_portal.exceptions import ApplicationError

    # links and the page the customer ends on are the portal's public address (PORTAL_BASE_URL)
    done_url = settings.PORTAL_BASE_URL + reverse("connect:done")
    for contact in queryset.select_related("workspace"):
        if not request.user.has_perm("integrations.add_connectsession", contact):
            modeladmin.message_user(
                request, f"{contact}: you may not send Connect links in its workspace.", messages.ERROR
            )
            continue
        try:
            session = connect_session_create(
                workspace=contact.workspace,
                actor=request.user,
                contact=contact,
                redirect_url=done_url,
                source=AuditSource.ADMIN,
            )
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{contact}: {exc.message}", messages.ERROR)
            continue
        modeladmin.message_user(
            request,
            format_html(
                "{}: Connect link (valid until {} UTC): <code>{}</code>",
                contact,
                session.expires_at.strftime("%Y-%m-%d %H:%M"),
                connect_link_url(session),
            ),
            messages.SUCCESS,
        )


ContactAdmin.actions = [*(ContactAdmin.actions or ()), connect_link_create]
