"""Writes of the events service: recording platform events (the outbox) and managing destinations.

Each app builds the `data` of the types it owns (its `events.py`, in the API's camelCase) and records it here,
in its own transaction; delivery happens after commit, so a rolled-back change never announces anything.
"""

import logging
import uuid
from functools import partial

import orjson
from django.db import connection, transaction
from django.utils import timezone

from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events.choices import WebhookEventType
from texture_portal.events.envelope import iso
from texture_portal.events.guard import webhook_url_check
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent, destination_secret_generate
from texture_portal.events.subscribers import subscribed_types, subscribers_of
from texture_portal.events.types import unknown_event_types
from texture_portal.exceptions import ApplicationError

logger = logging.getLogger(__name__)


class UnknownEventType(ValueError):
    """An event of a type no app registered: a programming error, refused before anything is written."""


def _types_check(types, *, bulk: bool = False) -> None:
    unknown = unknown_event_types(types)
    if unknown:
        raise UnknownEventType(f"Unregistered event types: {', '.join(unknown)} (register them in the app's ready()).")
    subscribed = sorted(set(types) & subscribed_types()) if bulk else []
    if subscribed:
        raise UnknownEventType(
            f"{', '.join(subscribed)} has in-process subscribers, which bulk emits do not call: emit one at a time."
        )


# -- the outbox ----------------------------------------------------------------------------------------------


def event_emit(*, workspace_id: int, type: str, key: str, data: dict, timestamp=None) -> None:
    """Record an event inside the caller's transaction (idempotent on `key`). Delivery to destinations
    happens after commit, from the outbox, so a rolled-back change never announces anything."""
    _types_check([type])
    timestamp = timestamp or timezone.now()
    PlatformEvent.objects.bulk_create(
        [PlatformEvent(workspace_id=workspace_id, type=type, key=key[:200], data=data, timestamp=timestamp)],
        ignore_conflicts=True,
    )
    for subscriber in subscribers_of(str(type)):
        subscriber(workspace_id=workspace_id, type=str(type), key=key[:200], timestamp=timestamp, data=data)
    transaction.on_commit(partial(_fan_out, workspace_id, key[:200]))


def _fan_out(workspace_id: int, key: str) -> None:
    """After commit: hand the event to the webhook fan-out (idempotent per destination and event)."""
    from texture_portal.events.tasks import platform_event_fan_out_task

    # most workspaces' events go nowhere: one indexed read instead of a broker round trip and a task each
    if not Destination.objects.filter(workspace_id=workspace_id, is_active=True).exists():
        return
    try:
        platform_event_fan_out_task.delay(workspace_id, key)
    except Exception:
        # The change is committed and the event is in the outbox; a broker outage must not fail the request.
        logger.exception("Could not queue the webhook fan-out of event %s", key)


def _fan_out_batch(workspace_id: int, timestamp) -> None:
    """Events written in bulk (an import, a sync batch) share their timestamp: after commit, one task hands
    all of them to the destinations that want them (none queued when the workspace has no destination)."""
    transaction.on_commit(partial(_queue_batch, workspace_id, timestamp.isoformat()))


def event_batch_written(workspace_id: int, timestamp) -> None:
    """Events the caller wrote itself in bulk (SQL) with this timestamp: hand them to the destinations after
    commit, like `event_emit_many` does."""
    _fan_out_batch(workspace_id, timestamp)


def _queue_batch(workspace_id: int, timestamp: str) -> None:
    from texture_portal.events.tasks import platform_events_fan_out_batch_task

    if not Destination.objects.filter(workspace_id=workspace_id, is_active=True).exists():
        return
    try:
        platform_events_fan_out_batch_task.delay(workspace_id, timestamp)
    except Exception:
        logger.exception("Could not queue the webhook fan-out of the events of %s", timestamp)


def event_emit_many(*, events: list[dict], stream=None, announce: bool = True) -> set[tuple]:
    """Record many events at once (imports, sync jobs), each {workspace_id, type, version, key, data,
    timestamp}. Keys must be new (they embed the fresh row ids), so they are streamed without a conflict
    check; same outbox semantics as `event_emit` otherwise. `stream`: the caller's `RowStream`, if any.
    Returns the (workspace, timestamp) batches written; `announce=False` leaves their fan-out to the caller
    (`event_batch_written`), which writes several parts of one batch and hands it over once."""
    from texture_portal.bulk import insert_rows

    _types_check({e["type"] for e in events}, bulk=True)
    (stream.insert if stream is not None else insert_rows)(PlatformEvent, events, ids=False)
    batches = {(e["workspace_id"], e["timestamp"]) for e in events}
    if announce:
        for workspace_id, timestamp in batches:
            _fan_out_batch(workspace_id, timestamp)
    return batches


def events_emit_many(*, workspace_id: int, type: str, items: list[tuple[str, dict]], timestamp=None):
    """Record many events of one type in one statement (telemetry sync emits one per device)."""
    if not items:
        return
    _types_check([type], bulk=True)
    at = timestamp or timezone.now()
    if connection.vendor == "postgresql":
        # one INSERT … SELECT FROM unnest: no model instance per event (telemetry emits thousands per batch)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO integrations_platformevent (workspace_id, type, version, key, timestamp, data)
                SELECT %s, %s, 1, e.key, %s, e.data::jsonb FROM unnest(%s::text[], %s::text[]) AS e(key, data)
                ON CONFLICT (workspace_id, key) DO NOTHING
                """,
                [
                    workspace_id,
                    str(type),
                    at,
                    [key[:200] for key, _ in items],
                    [orjson.dumps(data).decode() for _, data in items],
                ],
            )
    else:
        PlatformEvent.objects.bulk_create(
            [
                PlatformEvent(workspace_id=workspace_id, type=type, key=key[:200], data=data, timestamp=at)
                for key, data in items
            ],
            batch_size=2000,
            ignore_conflicts=True,
        )
    _fan_out_batch(workspace_id, at)


# -- destinations ------------------------------------------------------------------------------------------


def _event_types_check(event_types: list[str]) -> list[str]:
    unknown = unknown_event_types(event_types)
    if unknown:
        raise ApplicationError(f"Unknown event types: {', '.join(unknown)}.")
    return sorted(set(event_types))


@transaction.atomic
def destination_create(
    *,
    workspace,
    label: str,
    url: str,
    actor,
    event_types: list[str] = (),
    secret: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> Destination:
    """A new active destination. A blank secret is generated (`whsec_…`, 256 bits)."""
    webhook_url_check(url)
    destination = Destination(
        workspace=workspace,
        label=label,
        url=url,
        event_types=_event_types_check(list(event_types)),
        signing_secret={"secret": secret or destination_secret_generate()},
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    destination.full_clean()
    destination.save()
    audit_record(
        actor=actor,
        action=AuditAction.OBJECT_CREATED,
        target=destination,
        source=source,
        changes={"url": url, "event_types": destination.event_types},
        reason="Destination created",
    )
    return destination


DESTINATION_EDITABLE = ("label", "url", "event_types", "is_active")


@transaction.atomic
def destination_update(
    *, destination: Destination, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE
) -> dict:
    """Change label, URL, event types or `is_active`. Reactivating clears the failure count and reason."""
    locked = Destination.objects.select_for_update().get(pk=destination.pk)
    changes = {}
    if "url" in data and data["url"] != locked.url:
        webhook_url_check(data["url"])
    if "event_types" in data:
        data = {**data, "event_types": _event_types_check(list(data["event_types"]))}
    for name in DESTINATION_EDITABLE:
        if name in data and data[name] != getattr(locked, name):
            changes[name] = [getattr(locked, name), data[name]]
            setattr(locked, name, data[name])
    if "is_active" in changes:
        if locked.is_active:
            locked.deactivated_at, locked.deactivated_reason, locked.consecutive_failures = None, "", 0
        else:
            locked.deactivated_at = timezone.now()
            locked.deactivated_reason = f"Deactivated by {getattr(actor, 'get_username', lambda: 'the portal')()}"
    if changes:
        locked.full_clean()
        locked.save()
        audit_record(actor=actor, action=AuditAction.OBJECT_CHANGED, target=locked, source=source, changes=changes)
    destination.refresh_from_db()
    return changes


@transaction.atomic
def destination_rotate_secret(*, destination: Destination, actor, source=AuditSource.SERVICE) -> str:
    """A new secret (returned once); deliveries from now on are signed with it."""
    secret = destination_secret_generate()
    Destination.objects.filter(pk=destination.pk).update(signing_secret={"secret": secret}, last_updated=timezone.now())
    destination.refresh_from_db()
    audit_record(
        actor=actor, action=AuditAction.OBJECT_CHANGED, target=destination, source=source, reason="Secret rotated"
    )
    return secret


def destination_deactivate(*, destination_id: int, reason: str) -> bool:
    """Deactivate (if still active) with the reason; True when this call did it."""
    with transaction.atomic():
        updated = Destination.objects.filter(pk=destination_id, is_active=True).update(
            is_active=False, deactivated_at=timezone.now(), deactivated_reason=reason[:300], last_updated=timezone.now()
        )
        if updated:
            destination = Destination.objects.get(pk=destination_id)
            audit_record(
                actor=None,
                action=AuditAction.OBJECT_CHANGED,
                target=destination,
                source=AuditSource.TASK,
                changes={"is_active": [True, False]},
                reason=reason,
            )
    if updated:
        logger.warning("Destination %s deactivated: %s", destination_id, reason)
    return bool(updated)


TEST_EVENT_MESSAGE = "A test delivery from Texture Portal: no action is needed."


def destination_test_send(
    *, destination: Destination, actor, source: AuditSource | str = AuditSource.SERVICE
) -> DeliveryAttempt:
    """Send one signed `webhook.test` event to this destination now, and return its attempt from the delivery log.

    The event is recorded in the outbox (the log refers to it; integrators see it in `/v1/events` too) and is
    delivered exactly like any other — same envelope, signature and headers, through the private-address guard —
    but to this destination only, whatever its event-type filter and even when it is inactive; it is not retried
    and does not count towards deactivation. The HTTP call is made here, outside any transaction (at most
    WEBHOOK_TIMEOUT_SECONDS): staff see the receiver's answer at once. Audited with the outcome.
    """
    from texture_portal.events.webhooks import destination_deliver

    now = timezone.now()
    event = PlatformEvent.objects.create(
        workspace_id=destination.workspace_id,
        type=WebhookEventType.TEST,
        key=f"{WebhookEventType.TEST}:{destination.pk}:{uuid.uuid4().hex}",
        timestamp=now,
        data={
            "destinationId": destination.pk,
            "destinationLabel": destination.label,
            "message": TEST_EVENT_MESSAGE,
            "requestedAt": iso(now),
        },
    )
    outcome = destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1)
    attempt = DeliveryAttempt.objects.filter(destination_id=destination.pk, event_id=event.pk).first()
    if attempt is None:  # the destination was deleted meanwhile
        raise ApplicationError(f"The test event was not sent: {outcome.detail}.")
    audit_record(
        actor=actor,
        action=AuditAction.OBJECT_CHANGED,
        target=destination,
        source=source,
        changes={"test_event": {"key": event.key, "status": attempt.status, "httpStatus": attempt.response_status}},
        reason=f"Test event sent: {attempt.get_status_display().lower()}"
        + (f" ({attempt.error})" if attempt.error else ""),
    )
    return attempt
