"""Celery tasks of integrations: OEM discovery, telemetry sync and the offline sweep (thin wrappers over the
services that retry only transient OEM errors, with backoff + jitter and never sooner than the OEM's
Retry-After). Tasks take ids and are safe to run twice."""

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from integrations import selectors, services
from integrations.adapters.base import IntegrationError, TransientError, backoff_seconds
from integrations.choices import RunKind
from integrations.models import IntegrationRun, WorkspaceIntegration

log = logging.getLogger(__name__)

MAX_RETRIES = 5
# No long ETAs on Redis: a countdown beyond the visibility timeout would be delivered twice.
MAX_COUNTDOWN = 600


def _countdown(retries: int, retry_after: float | None) -> float | None:
    """Seconds before the retry, never sooner than the OEM's Retry-After; None when the OEM asks to wait
    longer than MAX_COUNTDOWN (SolarEdge until midnight, Enphase until period_end): retrying earlier would only
    be refused again, so the failure stays recorded on the run and the next schedule picks it up."""
    if retry_after is not None and retry_after > MAX_COUNTDOWN:
        return None
    return min(MAX_COUNTDOWN, backoff_seconds(retries, retry_after=retry_after))


def _run_note_deferred(run: IntegrationRun | None, retry_after: float) -> None:
    """Say on the run why it is not retried (the OEM's wait is longer than a task may be held)."""
    if run is None:
        return
    note = f"; not retried: the OEM asks to wait {retry_after / 60:.0f} min, left to the next scheduled run"
    run.message = run.message[: 500 - len(note)] + note
    run.save(update_fields=["message"])
    log.warning("Run %s: OEM Retry-After %ss exceeds %ss, not retried", run.pk, retry_after, MAX_COUNTDOWN)


def _can_retry(task) -> bool:
    """Retries need a worker: run eagerly (no broker, the embedded default) a retry would block the web
    request that queued the job, so the failure stays recorded on the run and the next schedule picks it up."""
    if task.request.is_eager:
        log.warning("%s: transient failure, not retried in eager mode", task.name)
        return False
    return task.request.retries < task.max_retries


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def discovery_run_task(self, integration_id: int):
    integration = WorkspaceIntegration.objects.filter(pk=integration_id, enabled=True).first()
    if integration is None:
        return "integration disabled or gone"
    try:
        run = services.discovery_run(integration=integration, attempt=self.request.retries + 1)
    except TransientError as exc:
        countdown = _countdown(self.request.retries, exc.retry_after)
        if countdown is None:
            _run_note_deferred(
                IntegrationRun.objects.filter(
                    integration=integration, kind=RunKind.DISCOVERY, attempt=self.request.retries + 1
                )
                .order_by("-started_at", "-pk")
                .first(),
                exc.retry_after,
            )
            return f"failed: {exc.message} (not retried: Retry-After {exc.retry_after:.0f} s)"
        if not _can_retry(self):
            return f"failed: {exc.message}"
        raise self.retry(exc=exc, countdown=countdown) from exc
    except IntegrationError as exc:
        # not transient (credentials refused…): recorded on the integration and the run; a person acts
        return f"failed: {exc.message}"
    return run.message


@shared_task(acks_late=True)
def discovery_run_all_task(workspace_id: int | None = None):
    """Fan out one discovery per enabled integration (that has something to discover)."""
    services.discovery_note_disabled(workspace_id=workspace_id)
    queued = 0
    for integration in selectors.integrations_runnable().filter(
        **({"workspace_id": workspace_id} if workspace_id else {})
    ):
        # serials an OEM did not have are looked up again only after their back-off (SolarEdge's quota)
        if services.discovery_is_due(integration=integration):
            discovery_run_task.delay(integration.pk)
            queued += 1
    return queued


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def telemetry_sync_task(self, integration_id: int, device_ids: list[int] | None = None):
    integration = WorkspaceIntegration.objects.filter(pk=integration_id, enabled=True).first()
    if integration is None:
        return "integration disabled or gone"
    outcome = services.telemetry_sync(integration=integration, device_ids=device_ids, attempt=self.request.retries + 1)
    if outcome.retry_device_ids:
        countdown = _countdown(self.request.retries, outcome.retry_after)
        if countdown is None:
            _run_note_deferred(outcome.run, outcome.retry_after)
        elif _can_retry(self):
            # only the devices that failed transiently are read again
            raise self.retry(args=[integration_id, outcome.retry_device_ids], countdown=countdown)
    return outcome.run.message


@shared_task(acks_late=True)
def telemetry_sync_all_task(cadence_minutes: int | None = None):
    """Fan out telemetry sync per enabled integration (at its OEM's cadence), in batches of devices."""
    queued = 0
    for integration in selectors.integrations_runnable():
        cadence = services.channel_cadence(integration.channel)
        if cadence_minutes and cadence.total_seconds() != cadence_minutes * 60:
            continue
        ids = selectors.device_ids_for_sync(integration=integration)
        size = settings.OEM_SYNC_BATCH_SIZE
        for start in range(0, len(ids), size):
            telemetry_sync_task.delay(integration.pk, ids[start : start + size])
            queued += 1
    return queued


@shared_task(acks_late=True)
def telemetry_history_task(integration_id: int, device_ids: list[int] | None = None, whole_days: bool = False):
    """Backfill the integration's devices' telemetry history (`services.telemetry_history_backfill`). Not
    retried: a run stopped by the OEM (rate limit, outage) leaves its gaps to the next hourly run, which asks
    only for what is still missing. `whole_days`: up to today's UTC midnight (the hourly gap fill; today is
    being read by the telemetry sync)."""
    integration = WorkspaceIntegration.objects.filter(pk=integration_id, enabled=True).first()
    if integration is None:
        return "integration disabled or gone"
    until = None
    if whole_days:
        until = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return services.telemetry_history_backfill(integration=integration, device_ids=device_ids, until=until).message


@shared_task(acks_late=True)
def telemetry_history_all_task():
    """Hourly (CELERY_BEAT_SCHEDULE): one gap-filling backfill per enabled integration whose OEM has a history
    API (the others would only say so)."""
    queued = 0
    for integration in selectors.integrations_runnable():
        if services.channel_has_history(integration.channel):
            telemetry_history_task.delay(integration.pk, whole_days=True)
            queued += 1
    return queued


@shared_task(acks_late=True)
def offline_sweep_task():
    """Offline detection (every 5 minutes, CELERY_BEAT_SCHEDULE): idempotent (a device already offline, or that
    just reported, is left alone). Here, not in the fleet: "stale" is measured against each OEM's cadence."""
    return len(services.offline_sweep())


@shared_task(ignore_result=True)
def integration_runs_prune_task() -> int:
    """Daily (CELERY_BEAT_SCHEDULE): delete integration runs past their retention."""
    return services.integration_runs_prune()


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def connection_telemetry_sync_task(self, connection_id: int):
    """One customer connection's devices, new ones linked and all read with the customer's tokens (after a
    Connect session, and on the beat). A transient OEM failure is retried; a refused grant revokes the
    connection (the services)."""
    from integrations.connect.services import connection_discover, connection_telemetry_sync
    from integrations.models import CustomerConnection

    connection = CustomerConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return "connection gone"
    try:
        # a device the customer added to their account since is linked first, then everything is read
        connection_discover(connection=connection)
        outcome = connection_telemetry_sync(connection=connection)
    except TransientError as exc:
        countdown = _countdown(self.request.retries, exc.retry_after)
        if countdown is None or not _can_retry(self):
            return f"not retried: {exc.message}"
        raise self.retry(exc=exc, countdown=countdown) from exc
    return f"{outcome.read} read, {outcome.failed} failed" + (" (revoked)" if outcome.revoked else "")


@shared_task
def connections_telemetry_sync_all_task():
    """Queue a sync of every active customer connection that has devices."""
    from integrations.choices import ConnectionStatus
    from integrations.models import CustomerConnection

    ids = list(CustomerConnection.objects.filter(status=ConnectionStatus.ACTIVE).values_list("pk", flat=True))
    for connection_id in ids:
        connection_telemetry_sync_task.delay(connection_id)
    return len(ids)
