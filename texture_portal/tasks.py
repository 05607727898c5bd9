"""Periodic jobs of the core (the events service's are in `texture_portal/events/tasks.py`)."""

from celery import shared_task

from texture_portal.idempotency import idempotency_keys_prune


@shared_task(ignore_result=True)
def idempotency_keys_prune_task() -> int:
    """Delete the API's expired Idempotency-Key records (safe to run twice)."""
    return idempotency_keys_prune()
