"""Recording platform events (the outbox) and the `data` each type carries, in the API's camelCase."""

import logging
from functools import partial

import orjson
from django.db import connection, transaction
from django.utils import timezone

from integrations.choices import PlatformEventType
from integrations.models import PlatformEvent

logger = logging.getLogger(__name__)

STATE_EVENT = {
    # (from, to) of a device state change → the event integrators get
    ("registered", "on_workspace"): PlatformEventType.DEVICE_DISCOVERED,
    ("offline", "on_workspace"): PlatformEventType.DEVICE_CONNECTED,
    ("on_workspace", "offline"): PlatformEventType.DEVICE_DISCONNECTED,
}


def iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def event_emit(*, workspace_id: int, type: PlatformEventType | str, key: str, data: dict, timestamp=None) -> None:
    """Record an event inside the caller's transaction (idempotent on `key`). Delivery to destinations
    happens after commit, from the outbox, so a rolled-back change never announces anything."""
    PlatformEvent.objects.bulk_create(
        [
            PlatformEvent(
                workspace_id=workspace_id, type=type, key=key[:200], data=data, timestamp=timestamp or timezone.now()
            )
        ],
        ignore_conflicts=True,
    )
    transaction.on_commit(partial(_fan_out, workspace_id, key[:200]))


def _fan_out(workspace_id: int, key: str) -> None:
    """After commit: hand the event to the webhook fan-out (idempotent per destination and event)."""
    from integrations.tasks import platform_event_fan_out_task

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
    from integrations.destinations import Destination
    from integrations.tasks import platform_events_fan_out_batch_task

    if not Destination.objects.filter(workspace_id=workspace_id, is_active=True).exists():
        return
    try:
        platform_events_fan_out_batch_task.delay(workspace_id, timestamp)
    except Exception:
        logger.exception("Could not queue the webhook fan-out of the events of %s", timestamp)


def contact_data(contact) -> dict:
    return {
        "id": contact.pk,
        "workspaceId": contact.workspace_id,
        "referenceId": contact.reference_id,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "email": contact.email,
        "phone": contact.phone,
        "updatedAt": iso(contact.last_updated),
    }


def site_data(site) -> dict:
    return {
        "id": site.pk,
        "workspaceId": site.workspace_id,
        "contactId": site.contact_id,
        "siteName": site.site_name,
        "siteReferenceId": site.site_reference_id,
        "address": {
            "streetOne": site.street_one,
            "streetTwo": site.street_two,
            "city": site.city,
            "state": site.state,
            "postalCode": site.postal_code,
            "country": site.country,
        },
        "location": {"latitude": site.latitude, "longitude": site.longitude},
        "updatedAt": iso(site.last_updated),
    }


def device_data(device) -> dict:
    return {
        "id": device.pk,
        "workspaceId": device.workspace_id,
        "systemIdentifier": device.system_identifier,
        "manufacturerSlug": device.manufacturer.slug,
        "deviceType": device.device_type,
        "state": device.state,
        "stateReason": device.state_reason,
        "contactId": device.contact_id,
        "siteId": device.site_id,
        "manufacturerDeviceId": device.oem_device_id,
        "lastSeenAt": iso(device.last_seen_at),
    }


def enrollment_data(enrollment) -> dict:
    return {
        "id": enrollment.pk,
        "workspaceId": enrollment.workspace_id,
        "deviceId": enrollment.device_id,
        "programId": enrollment.program_id,
        "programSlug": enrollment.program.slug,
        "status": enrollment.status,
        "reason": enrollment.reason,
    }


def dispatch_event_data(event) -> dict:
    return {
        "id": event.pk,
        "workspaceId": event.workspace_id,
        "programId": event.program_id,
        "name": event.name,
        "status": event.status,
        "isTest": event.is_test,
        "trigger": event.trigger,
        "startsAt": iso(event.starts_at),
        "endsAt": iso(event.ends_at),
        "statusReason": event.status_reason,
    }


def command_data(command) -> dict:
    return {
        "id": command.pk,
        "workspaceId": command.workspace_id,
        "deviceId": command.device_id,
        "slug": command.slug,
        "input": command.input,
        "status": command.status,
        "statusReason": command.status_reason,
        "attempts": command.attempts,
        "dispatchEventId": command.dispatch_event_id,
    }


def event_emit_many(*, events: list[dict], stream=None, announce: bool = True) -> set[tuple]:
    """Record many events at once (imports, sync jobs), each {workspace_id, type, version, key, data,
    timestamp}. Keys must be new (they embed the fresh row ids), so they are streamed without a conflict
    check; same outbox semantics as `event_emit` otherwise. `stream`: the caller's `RowStream`, if any.
    Returns the (workspace, timestamp) batches written; `announce=False` leaves their fan-out to the caller
    (`event_batch_written`), which writes several parts of one batch and hands it over once."""
    from texture_portal.bulk import insert_rows

    (stream.insert if stream is not None else insert_rows)(PlatformEvent, events, ids=False)
    batches = {(e["workspace_id"], e["timestamp"]) for e in events}
    if announce:
        for workspace_id, timestamp in batches:
            _fan_out_batch(workspace_id, timestamp)
    return batches


def events_emit_many(
    *, workspace_id: int, type: PlatformEventType | str, items: list[tuple[str, dict]], timestamp=None
):
    """Record many events of one type in one statement (telemetry sync emits one per device)."""
    if not items:
        return
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
