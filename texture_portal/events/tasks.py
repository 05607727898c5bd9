"""Celery tasks of the events service: fan-out of committed events to the destinations that want them, one
delivery attempt at a time with backoff, and the sweep. Tasks take ids and are safe to run twice."""

import logging

from celery import shared_task
from django.utils.dateparse import parse_datetime

from texture_portal.events import webhooks
from texture_portal.events.choices import WebhookEventType
from texture_portal.events.models import Destination, PlatformEvent

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def platform_event_fan_out_task(workspace_id: int, key: str) -> int:
    """Queue the first delivery attempt of one event to each destination that wants it. Safe to run twice:
    a second first attempt of the same (destination, event) is refused by the attempt log."""
    event = PlatformEvent.objects.filter(workspace_id=workspace_id, key=key).only("pk", "workspace_id", "type").first()
    if event is None:
        return 0
    destination_ids = webhooks.destinations_for_event(event)
    for destination_id in destination_ids:
        destination_deliver_task.delay(destination_id, event.pk, 1)
    return len(destination_ids)


@shared_task(acks_late=True, ignore_result=True)
def destination_deliver_task(destination_id: int, event_id: int, attempt: int = 1) -> str:
    """One attempt; a failed one queues the next with exponential backoff and jitter (capped well below the
    broker's visibility timeout), until WEBHOOK_MAX_ATTEMPTS or the destination is deactivated."""
    outcome = webhooks.destination_deliver(destination_id=destination_id, event_id=event_id, attempt=attempt)
    if outcome.retry_in is not None:
        destination_deliver_task.apply_async((destination_id, event_id, attempt + 1), countdown=outcome.retry_in)
    elif outcome.status == "failed":
        logger.warning("Event %s to destination %s: gave up after attempt %s", event_id, destination_id, attempt)
    return outcome.status


@shared_task(acks_late=True, ignore_result=True)
def destinations_sweep_task() -> int:
    """Safety net of the outbox (every 5 minutes, CELERY_BEAT_SCHEDULE): queue the first attempt of any event
    an active destination never got. Idempotent: a first attempt already claimed is never sent twice."""
    pairs = webhooks.undelivered_events()
    for destination_id, event_id in pairs:
        destination_deliver_task.delay(destination_id, event_id, 1)
    if pairs:
        logger.warning("Webhook sweep queued %s missed deliveries", len(pairs))
    return len(pairs)


@shared_task(acks_late=True, ignore_result=True)
def platform_events_fan_out_batch_task(workspace_id: int, timestamp: str) -> int:
    """Queue the first attempt of each event written in one bulk batch (same workspace and timestamp) to
    each destination that wants it. Safe to run twice: the attempt log refuses a second first attempt."""
    at = parse_datetime(timestamp)
    queued = 0
    for destination_id, types in Destination.objects.filter(workspace_id=workspace_id, is_active=True).values_list(
        "pk", "event_types"
    ):
        events = PlatformEvent.objects.filter(workspace_id=workspace_id, timestamp=at).exclude(
            type=WebhookEventType.TEST
        )
        if types:
            events = events.filter(type__in=types)
        for event_id in events.values_list("pk", flat=True).iterator():
            destination_deliver_task.delay(destination_id, event_id, 1)
            queued += 1
    return queued


# Before the events service moved out of `integrations`, these tasks had other names. Attempts queued then
# (retries wait up to WEBHOOK_RETRY_MAX_SECONDS) still carry them: the old names run the same code, so nothing
# queued across the deploy is lost. Nothing queues them any more; remove them a release later.
LEGACY_TASK_NAMES = {
    "integrations.tasks.platform_event_fan_out_task": platform_event_fan_out_task,
    "integrations.tasks.destination_deliver_task": destination_deliver_task,
    "integrations.tasks.destinations_sweep_task": destinations_sweep_task,
    "integrations.tasks.platform_events_fan_out_batch_task": platform_events_fan_out_batch_task,
}
for _legacy_name, _task in LEGACY_TASK_NAMES.items():
    shared_task(name=_legacy_name, acks_late=True, ignore_result=True)(_task.run)
