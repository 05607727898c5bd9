"""Celery tasks of integrations: webhook fan-out and delivery. Tasks take ids and are idempotent."""

import logging

from celery import shared_task

from integrations import webhooks
from integrations.models import PlatformEvent

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
