"""The platform events dispatch owns (program_event.*, command.*) and the `data` each carries, in the API's
camelCase. Registered with the core events service in `DispatchConfig.ready()`."""

from django.db import models

from texture_portal.events.envelope import iso


class DispatchEventType(models.TextChoices):
    PROGRAM_EVENT_SCHEDULED = "program_event.scheduled", "program_event.scheduled"
    PROGRAM_EVENT_STARTED = "program_event.started", "program_event.started"
    PROGRAM_EVENT_COMPLETED = "program_event.completed", "program_event.completed"
    PROGRAM_EVENT_CANCELLED = "program_event.cancelled", "program_event.cancelled"
    PROGRAM_EVENT_OPTED_OUT = "program_event.opted_out", "program_event.opted_out"
    # the event's report was compiled (at completion, or recomputed on demand): `data` is the event's, with
    # `report` {compiledAt, deliveredKwh, baselineKwh, devices, noBaseline}
    PROGRAM_EVENT_REPORT_COMPILED = "program_event.report_compiled", "program_event.report_compiled"
    COMMAND_SUCCEEDED = "command.succeeded", "command.succeeded"
    COMMAND_FAILED = "command.failed", "command.failed"


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
        "completedEndToEnd": event.completed_end_to_end,
    }


def participation_data(participation) -> dict:
    return {
        "id": participation.pk,
        "workspaceId": participation.workspace_id,
        "dispatchEventId": participation.event_id,
        "deviceId": participation.device_id,
        "status": participation.status,
        "reasonCode": participation.reason_code,
        "reason": participation.reason,
        "optedOutAt": iso(participation.opted_out_at),
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
