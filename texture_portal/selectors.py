"""Reads of the tenancy core."""

from functools import cache

from texture_portal.api_keys import ApiKey
from texture_portal.models import AuditLogEntry, Workspace


@cache
def _api_key_by_hash_sql() -> str:
    sql, params = ApiKey.objects.filter(key_hash="").order_by().query.sql_with_params()
    assert len(params) == 1, sql
    return sql


def api_key_by_hash(key_hash: str) -> ApiKey | None:
    """The key with this hash, or None: every API request asks, so the query is compiled once per process
    (the ORM's per-call compile and `.first()`'s ordering cost more than the indexed lookup itself)."""
    found = list(ApiKey.objects.raw(_api_key_by_hash_sql(), [key_hash]))
    return found[0] if found else None


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
