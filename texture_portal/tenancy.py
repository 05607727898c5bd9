"""Workspace scoping helpers shared by services, selectors, the admin and the API."""

from django.db import models

from texture_portal.exceptions import WorkspaceMismatch


def is_workspace_scoped(model: type[models.Model]) -> bool:
    """True for tenant models: they carry a `workspace` foreign key (or are the Workspace itself)."""
    from texture_portal.models import Workspace

    if model is Workspace:
        return True
    try:
        field = model._meta.get_field("workspace")
    except Exception:
        return False
    return getattr(field, "related_model", None) is Workspace


def workspace_id_of(obj) -> int | None:
    """The workspace an object belongs to, or None for global records (the manufacturer catalog)."""
    return getattr(obj, "workspace_id", None)


def check_same_workspace(obj) -> None:
    """Every scoped object that `obj` points at must be in `obj`'s workspace.

    Reads related ids from the row (no query for the id itself); fetches the related row only when needed.
    """
    own = obj.workspace_id
    if own is None:
        return
    for field in obj._meta.concrete_fields:
        if not field.is_relation or field.name == "workspace" or not field.many_to_one:
            continue
        related_model = field.related_model
        if not is_workspace_scoped(related_model) or related_model._meta.model_name == "workspace":
            continue
        related_id = getattr(obj, field.attname)
        if related_id is None:
            continue
        related = getattr(obj, field.name)
        if related.workspace_id != own:
            raise WorkspaceMismatch(
                f"{field.verbose_name.capitalize()} “{related}” belongs to another workspace.",
                extra={"field": field.name},
            )


def require_same_workspace(workspace_id: int, *objects) -> None:
    """Services call this before linking objects: all must belong to `workspace_id`."""
    for item in objects:
        if item is not None and item.workspace_id != workspace_id:
            raise WorkspaceMismatch(f"“{item}” belongs to another workspace.")
