"""Events admin: the outbox (read-only), webhook destinations and the delivery log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedAdmin,
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
)
from texture_portal.choices import AuditSource
from texture_portal.events import services
from texture_portal.events.filtersets import DestinationFilterSet, PlatformEventFilterSet
from texture_portal.events.guard import webhook_url_check
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.types import event_type_choices
from texture_portal.exceptions import ApplicationError
from texture_portal.filters import FilterSetAdminMixin


@admin.register(PlatformEvent)
class PlatformEventAdmin(FilterSetAdminMixin, ReadOnlyWorkspaceScopedAdmin):
    """The outbox: every event the workspace's destinations are sent, with its exact payload."""

    filterset_class = PlatformEventFilterSet  # the API's filters, by the API's names

    list_display = ["timestamp", "type", "key", "workspace"]
    list_select_related = ["workspace__organization"]
    list_filter = ["type", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["=key"]
    readonly_fields = ["timestamp", "type", "version", "key", "data", "workspace"]


class DestinationForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("event types"),
        choices=event_type_choices,
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
            webhook_url_check(url)
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
                services.destination_update(
                    destination=obj,
                    data={k: data[k] for k in ("label", "url", "event_types", "is_active") if k in data},
                    actor=request.user,
                    source=AuditSource.ADMIN,
                )
                return
            destination = services.destination_create(
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
            if not request.user.has_perm("events.change_destination", destination):
                raise PermissionDenied(f"You may not change “{destination}”.")
            secret = services.destination_rotate_secret(
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
