"""Celery tasks of fleet: the telemetry rollups, the raw readings' retention, and alerts (the stuck-telemetry rule,
snoozes running out, e-mail). Safe to run twice at once."""

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


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OSError,),  # smtplib's errors are OSErrors: a mail server down or refusing for now
    retry_backoff=30,
    retry_jitter=True,
    max_retries=5,
)
def alerts_mail_task(alert_ids: list[int]) -> int:
    """After commit: e-mail new alerts (or alerts whose snooze ran out) to their workspace's address. The alerts
    are claimed before sending: a redelivered task mails nothing twice."""
    from fleet.services import alerts_mail

    return alerts_mail(alert_ids=alert_ids)


@shared_task(acks_late=True, ignore_result=True, expires=50)
def alert_snoozes_expire_task() -> int:
    """Every minute (CELERY_BEAT_SCHEDULE): alerts whose snooze ran out need attention again (and are mailed)."""
    from fleet.services import alert_snoozes_expire

    return alert_snoozes_expire()


@shared_task(acks_late=True, ignore_result=True, expires=600)
def telemetry_stuck_alerts_task() -> dict:
    """Every 15 minutes (CELERY_BEAT_SCHEDULE): the stuck-telemetry rule raises and resolves its alerts."""
    from fleet.services import telemetry_stuck_alerts_evaluate

    return telemetry_stuck_alerts_evaluate()
