"""Celery tasks of fleet: the telemetry rollups and the raw readings' retention. Safe to run twice at once."""

from datetime import timedelta

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True, expires=240)
def telemetry_rollups_task(hours: float = 2.0) -> int:
    """Every 5 minutes (CELERY_BEAT_SCHEDULE): recompute the rollups of the last `hours`, so readings that
    arrive late within them are folded in."""
    from django.utils import timezone

    from fleet.services import telemetry_rollups_refresh

    return telemetry_rollups_refresh(since=timezone.now() - timedelta(hours=hours))


@shared_task(acks_late=True, ignore_result=True)
def telemetry_readings_prune_task() -> int:
    """Daily (CELERY_BEAT_SCHEDULE): raw readings past TELEMETRY_RAW_RETENTION_DAYS go, their rollups stay."""
    from fleet.services import telemetry_readings_prune

    return telemetry_readings_prune()
