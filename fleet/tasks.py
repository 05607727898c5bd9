"""Celery tasks of the fleet."""

from celery import shared_task


@shared_task(acks_late=True)
def devices_mark_stale_offline_task():
    """Offline detection: idempotent (a device already offline, or that just reported, is left alone)."""
    from integrations.services import offline_sweep

    return len(offline_sweep())
