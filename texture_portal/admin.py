"""Tenancy admin: organizations (superusers), workspaces with their members, users, and the audit log."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from texture_portal import services
from texture_portal.admin_base import (
    HardenedAdminMixin,
    ReadOnlyWorkspaceScopedAdmin,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
    WorkspaceScopedTabularInline,
)
from texture_portal.api_keys import READ_ALL, ApiKey, api_scope_choices, api_scopes_normalize
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.models import AuditLogEntry, Organization, Workspace, WorkspaceMembership

User = get_user_model()


def _audit_value(value):
    """A form value as the audit log keeps it: related rows (groups, permissions) by name, sorted."""
    if isinstance(value, list | tuple | set) or hasattr(value, "model") and hasattr(value, "__iter__"):
        return sorted(str(item) for item in value)  # a many-to-many field: its rows before (a list) and after
    return value


class AuditedGlobalAdminMixin:
    """Admin edits of records outside any workspace (organizations, users, groups) are written to the audit log
    like the workspaces' (`WorkspaceScopedAdmin.audit_save`): created, changed ({field: [old, new]}; a secret only
    as "changed"), deleted. Only superusers read these rows (they belong to no workspace)."""

    audit_secret_fields = ("password",)

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if not change:
                audit_record(
                    actor=request.user, action=AuditAction.OBJECT_CREATED, target=obj, source=AuditSource.ADMIN
                )
                return
            changes = {
                name: "changed"
                if name in self.audit_secret_fields
                else [_audit_value(form.initial.get(name)), _audit_value(form.cleaned_data.get(name))]
                for name in form.changed_data
            }
            if changes:
                audit_record(
                    actor=request.user,
                    action=AuditAction.OBJECT_CHANGED,
                    target=obj,
                    source=AuditSource.ADMIN,
                    changes=changes,
                )

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit_record(actor=request.user, action=AuditAction.OBJECT_DELETED, target=obj, source=AuditSource.ADMIN)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                audit_record(
                    actor=request.user, action=AuditAction.OBJECT_DELETED, target=obj, source=AuditSource.ADMIN
                )
            super().delete_queryset(request, queryset)


@admin.register(Organization)
class OrganizationAdmin(AuditedGlobalAdminMixin, HardenedAdminMixin, admin.ModelAdmin):
    """Organizations are created by the portal's own superusers (onboarding a utility)."""

    list_display = ["name", "slug", "created"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class MembershipInline(WorkspaceScopedTabularInline):
    model = WorkspaceMembership
    fields = ["user", "role"]
    show_change_link = False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            # Only people who already share one of your workspaces (no cross-tenant user list).
            shared = WorkspaceMembership.objects.filter(workspace__memberships__user=request.user).values("user_id")
            kwargs["queryset"] = User.objects.filter(pk__in=shared, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Workspace)
class WorkspaceAdmin(WorkspaceScopedAdmin):
    list_display = ["name", "organization", "kind", "timezone", "slug"]
    list_select_related = ["organization"]
    list_filter = ["kind"]
    search_fields = ["name", "slug", "organization__name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return ["organization", "slug"] if obj else []

    def perform_save(self, request, obj, form, change):
        if change:
            super().perform_save(request, obj, form, change)
            return
        created = services.workspace_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            kind=form.cleaned_data["kind"],
            slug=form.cleaned_data.get("slug") or None,
            timezone=form.cleaned_data["timezone"],
            actor=request.user,
            source=AuditSource.ADMIN,
        )
        obj.pk = created.pk

    def audit_save(self, request, obj, form, change):
        if change:
            super().audit_save(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        """Memberships change only through the membership services (audited, staff flag kept)."""
        if formset.model is not WorkspaceMembership:
            return super().save_formset(request, form, formset, change)
        # Nothing is written here (commit=False); it sets the formset's new/changed/deleted objects, which the
        # admin's change message reads after this returns (without them saving the page was a server error).
        formset.save(commit=False)
        workspace = form.instance
        for membership_form in formset.forms:
            if not membership_form.has_changed() and membership_form not in formset.deleted_forms:
                continue
            data = membership_form.cleaned_data
            if not data:
                continue
            if membership_form in formset.deleted_forms:
                if data.get("id") is not None:
                    services.membership_revoke(
                        user=data["id"].user,
                        workspace=workspace,
                        actor=request.user,
                        source=AuditSource.ADMIN,
                    )
                continue
            services.membership_grant(
                user=data["user"],
                workspace=workspace,
                role=data["role"],
                actor=request.user,
                source=AuditSource.ADMIN,
            )


@admin.register(WorkspaceMembership)
class WorkspaceMembershipAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Who holds which role where (read here; granted on the workspace page)."""

    list_display = ["user", "workspace", "role", "created"]
    list_select_related = ["user", "workspace__organization"]
    list_filter = ["role", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["user__username", "user__email"]


class UserMembershipInline(WorkspaceScopedTabularInline):
    model = WorkspaceMembership
    fields = ["workspace", "role"]
    show_change_link = False
    verbose_name_plural = _("workspace memberships")


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(Group)
class PortalGroupAdmin(AuditedGlobalAdminMixin, HardenedAdminMixin, GroupAdmin):
    """The role groups (kept by `sync_role_groups`); superusers only, audited, hardened like every admin."""


@admin.register(User)
class PortalUserAdmin(AuditedGlobalAdminMixin, HardenedAdminMixin, UserAdmin):
    """Users are managed by superusers; the inline shows (and sets) their workspace roles. Changes (superuser
    and staff flags, groups, permissions, a new password) are audited; memberships by their services."""

    inlines = [UserMembershipInline]
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_superuser", "is_active"]

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # saved (a refused form renders 200)
            user = self.get_object(request, id)
            if user is not None:
                audit_record(
                    actor=request.user,
                    action=AuditAction.OBJECT_CHANGED,
                    target=user,
                    source=AuditSource.ADMIN,
                    changes={"password": "changed"},
                )
        return response

    def save_formset(self, request, form, formset, change):
        if formset.model is not WorkspaceMembership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # sets new/changed/deleted objects for the change message; writes nothing
        user = form.instance
        for membership_form in formset.forms:
            data = membership_form.cleaned_data
            if not data:
                continue
            if membership_form in formset.deleted_forms:
                if data.get("id") is not None:
                    services.membership_revoke(
                        user=user,
                        workspace=data["id"].workspace,
                        actor=request.user,
                        source=AuditSource.ADMIN,
                    )
            elif membership_form.has_changed():
                services.membership_grant(
                    user=user,
                    workspace=data["workspace"],
                    role=data["role"],
                    actor=request.user,
                    source=AuditSource.ADMIN,
                )


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyWorkspaceScopedAdmin):
    list_display = ["event_time", "actor_label", "source", "action", "object_repr", "workspace"]
    list_select_related = ["workspace__organization"]
    list_filter = [
        "action",
        "source",
        ("content_type", admin.RelatedOnlyFieldListFilter),
        ("workspace", ScopedRelatedFieldListFilter),
    ]
    search_fields = ["object_repr", "actor_label", "=correlation_id", "=object_id"]
    readonly_fields = [
        "event_time",
        "workspace",
        "actor",
        "actor_label",
        "source",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "changes",
        "reason",
        "correlation_id",
    ]


# -- API keys ------------------------------------------------------------------------------------------------


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=api_scope_choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "What the key may do: read-only, full access, or per resource (a resource's write scope lets the key "
            "read it too). Keep it to what the integration needs."
        ),
    )

    class Meta:
        model = ApiKey
        fields = ["workspace", "name", "expires_at", "scopes"]

    def clean_scopes(self):
        try:
            return api_scopes_normalize(self.cleaned_data["scopes"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(ApiKey)
class ApiKeyAdmin(WorkspaceScopedAdmin):
    """Engineering creates keys (the key is shown once, in the confirmation message) and revokes them.
    The hash is never shown; the prefix identifies a key."""

    form = ApiKeyForm
    list_display = [
        "name",
        "display_prefix",
        "workspace",
        "scopes_label",
        "status",
        "expires_at",
        "last_used_at",
        "created",
    ]
    list_select_related = ["workspace__organization"]
    list_filter = [("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["name", "=prefix"]
    actions = ["revoke_selected"]
    readonly_fields = [
        "display_prefix",
        "scopes_label",
        "status",
        "last_used_at",
        "revoked_at",
        "revoked_reason",
        "created_by",
    ]

    def get_changeform_initial_data(self, request):
        return {"scopes": [READ_ALL], **super().get_changeform_initial_data(request)}  # least access first

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["workspace", "name", "scopes", "expires_at"]
        return [
            "workspace",
            "name",
            "display_prefix",
            "scopes_label",
            "status",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "revoked_reason",
            "created_by",
        ]

    def get_readonly_fields(self, request, obj=None):
        # "scopes" too: a key's scopes are fixed at creation (the change page shows them as `scopes_label`)
        return ["workspace", "name", "expires_at", "scopes", *self.readonly_fields] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False  # revoked keys stay, for the audit trail

    def perform_save(self, request, obj, form, change):
        if change:
            return
        # a refusal (an expiry in the past) is a form error (WorkspaceScopedAdmin.changeform_view)
        api_key, raw = services.api_key_create(
            workspace=form.cleaned_data["workspace"],
            name=form.cleaned_data["name"],
            expires_at=form.cleaned_data.get("expires_at"),
            scopes=form.cleaned_data["scopes"],
            actor=request.user,
            source=AuditSource.ADMIN,
        )
        obj.pk = api_key.pk
        messages.warning(
            request,
            f"The API key “{api_key.name}” is {raw} — copy it now: it is stored only as a hash and will not be "
            "shown again.",
        )

    @admin.display(description=_("scopes"))
    def scopes_label(self, obj) -> str:
        return obj.scopes_display

    def audit_save(self, request, obj, form, change):
        """The service audits."""

    def response_add(self, request, obj, post_url_continue=None):
        # Go to the list (not the change page, whose success message would repeat the key's name only).
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        return HttpResponseRedirect(reverse("admin:texture_portal_apikey_changelist"))

    @admin.action(description=_("Revoke selected API keys"), permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for api_key in queryset:
            if not request.user.has_perm("texture_portal.change_apikey", api_key):
                raise PermissionDenied(f"You may not revoke “{api_key}”.")
            if api_key.revoked_at is None:
                services.api_key_revoke(
                    api_key=api_key,
                    actor=request.user,
                    reason=f"Revoked in the admin by {request.user.get_username()}",
                    source=AuditSource.ADMIN,
                )
                revoked += 1
        self.message_user(request, f"{revoked} API key(s) revoked.", messages.SUCCESS)
