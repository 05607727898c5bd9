"""Writing the audit log. Services call `audit_record` explicitly (never from signals)."""

import datetime
import decimal
import uuid

from django.contrib.contenttypes.models import ContentType
from django.db import models

from texture_portal.choices import AuditAction, AuditSource
from texture_portal.context import current_correlation_id
from texture_portal.models import AuditLogEntry
from texture_portal.tenancy import workspace_id_of


def jsonable(value):
    """A value as it can be stored in the `changes` JSON (dates as ISO text, model rows as their id)."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple | set):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def field_values(instance: models.Model, field_names) -> dict:
    """The current values of some concrete fields (foreign keys by id), for diffing before and after."""
    values = {}
    for name in field_names:
        field = instance._meta.get_field(name)
        values[name] = getattr(instance, field.attname)
    return values


def diff_values(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields whose value changed."""
    return {
        name: [jsonable(before.get(name)), jsonable(after.get(name))]
        for name in after
        if before.get(name) != after.get(name)
    }


def audit_actor_label(actor) -> str:
    if actor is None:
        return ""
    return getattr(actor, "get_username", lambda: str(actor))()


def audit_record(
    *,
    actor,
    action: AuditAction | str,
    target: models.Model,
    source: AuditSource | str = AuditSource.SERVICE,
    changes: dict | None = None,
    reason: str = "",
) -> AuditLogEntry:
    """Append one audit row about `target`, in the target's workspace, within the caller's transaction."""
    return AuditLogEntry.objects.create(
        workspace_id=workspace_id_of(target),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=audit_actor_label(actor),
        source=source,
        action=action,
        content_type=ContentType.objects.get_for_model(target, for_concrete_model=True),
        object_id=str(target.pk),
        object_repr=str(target)[:300],
        changes=jsonable(changes or {}),
        reason=reason,
        correlation_id=current_correlation_id(),
    )


def audit_record_many(
    *,
    actor,
    action: AuditAction | str,
    targets,
    source: AuditSource | str,
    changes_by_pk: dict | None = None,
    reason: str = "",
    reason_by_pk: dict | None = None,
) -> list[AuditLogEntry]:
    """One audit row per target, written with a single bulk insert (bulk import, sync jobs); `reason_by_pk`:
    a reason of its own for some targets (an OEM's answer per command)."""
    targets = list(targets)
    if not targets:
        return []
    correlation_id = current_correlation_id()
    content_type = ContentType.objects.get_for_model(targets[0], for_concrete_model=True)
    changes_by_pk, reason_by_pk = changes_by_pk or {}, reason_by_pk or {}
    rows = [
        AuditLogEntry(
            workspace_id=workspace_id_of(target),
            actor=actor if getattr(actor, "pk", None) else None,
            actor_label=audit_actor_label(actor),
            source=source,
            action=action,
            content_type=content_type,
            object_id=str(target.pk),
            object_repr=str(target)[:300],
            changes=jsonable(changes_by_pk.get(target.pk, {})),
            reason=reason_by_pk.get(target.pk, reason),
            correlation_id=correlation_id,
        )
        for target in targets
    ]
    return AuditLogEntry.objects.bulk_create(rows, batch_size=1000)
