"""The platform events integrations owns (connection.*: customers' own OEM accounts, Texture Connect) and the
`data` each carries, in the API's camelCase. Registered with the core events service in
`IntegrationsConfig.ready()`."""

from django.db import models

from texture_portal.events.envelope import iso


class IntegrationEventType(models.TextChoices):
    CONNECTION_CONNECTED = "connection.connected", "connection.connected"
    CONNECTION_REVOKED = "connection.revoked", "connection.revoked"
    CONNECTION_FAILED = "connection.failed", "connection.failed"


def connection_data(connection, *, session=None, device_ids=()) -> dict:
    return {
        "id": connection.pk,
        "workspaceId": connection.workspace_id,
        "customerId": connection.contact_id,
        "manufacturer": connection.channel,
        "status": connection.status,
        "referenceId": connection.reference_id,
        "tags": list(connection.tags),
        "sessionId": str(session.public_id) if session is not None else None,
        "deviceIds": list(device_ids),
        "connectedAt": iso(connection.connected_at),
        "revokedAt": iso(connection.revoked_at),
        "reason": connection.last_error,
    }


def session_failed_data(session) -> dict:
    return {
        "sessionId": str(session.public_id),
        "workspaceId": session.workspace_id,
        "customerId": session.contact_id,
        "manufacturer": session.channel,
        "status": session.status,
        "referenceId": session.reference_id,
        "reason": session.outcome,
    }
