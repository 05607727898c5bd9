"""Reads of the tenancy core."""

from texture_portal.models import AuditLogEntry, Workspace


def workspace_list_for_user(*, user):
    if user.is_active and user.is_superuser:
        return Workspace.objects.select_related("organization")
    return Workspace.objects.filter(memberships__user=user).select_related("organization").distinct()


def audit_log_for_object(*, obj, limit: int = 50):
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(obj, for_concrete_model=True)
    return AuditLogEntry.objects.filter(content_type=content_type, object_id=str(obj.pk)).select_related("actor")[
        :limit
    ]
