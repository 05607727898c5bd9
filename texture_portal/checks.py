"""System checks that keep tenant scoping from being forgotten as the admin grows."""

from django.contrib import admin
from django.core import checks

from texture_portal.tenancy import is_workspace_scoped


@checks.register(checks.Tags.admin, checks.Tags.security)
def check_admin_scoping(app_configs=None, **kwargs):
    """Every admin page of a tenant model must be a WorkspaceScopedAdmin (which scopes querysets, choices,
    object access and permissions). A plain ModelAdmin on such a model is an error, not a warning."""
    from texture_portal.admin_base import WorkspaceScopedAdminMixin

    errors = []
    for model, model_admin in admin.site._registry.items():
        if is_workspace_scoped(model) and not isinstance(model_admin, WorkspaceScopedAdminMixin):
            errors.append(
                checks.Error(
                    f"{model._meta.label} is a tenant model but its admin is not workspace-scoped.",
                    hint="Subclass texture_portal.admin_base.WorkspaceScopedAdmin.",
                    obj=type(model_admin),
                    id="texture_portal.E001",
                )
            )
        for inline in getattr(model_admin, "inlines", []):
            if is_workspace_scoped(inline.model) and not issubclass(inline, WorkspaceScopedAdminMixin):
                errors.append(
                    checks.Error(
                        f"Inline {inline.__name__} of {model._meta.label} shows tenant rows but is not scoped.",
                        hint="Subclass texture_portal.admin_base.WorkspaceScopedTabularInline.",
                        obj=inline,
                        id="texture_portal.E002",
                    )
                )
    return errors
