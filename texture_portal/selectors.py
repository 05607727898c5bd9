"""Reads of the tenancy core."""

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections

from texture_portal.api_keys import ApiKey
from texture_portal.models import AuditLogEntry, Workspace


@cache
def _api_key_by_hash_query() -> tuple[str, list[str], dict]:
    """The lookup's SQL, the model's field names in its column order, and the columns' converters."""
    compiler = ApiKey.objects.filter(key_hash="").order_by().query.get_compiler(DEFAULT_DB_ALIAS)
    sql, params = compiler.as_sql()
    assert len(params) == 1, sql
    columns = [column for column, _, _ in compiler.select]
    return sql, [column.target.attname for column in columns], compiler.get_converters(columns)


def api_key_by_hash(key_hash: str) -> ApiKey | None:
    """The key with this hash, or None. Every API request asks, so the query is compiled once per process and
    its row made into the model directly (the ORM's compile, `.first()`'s ordering and a raw queryset's
    machinery cost twice the indexed lookup itself)."""
    sql, names, converters = _api_key_by_hash_query()
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        row = list(row)
        for position, (functions, expression) in converters.items():
            for function in functions:
                row[position] = function(row[position], expression, connection)
    return ApiKey.from_db(DEFAULT_DB_ALIAS, names, row)


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
