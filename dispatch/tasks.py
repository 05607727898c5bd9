"""Celery tasks of dispatch."""

from celery import shared_task

from dispatch import services
from dispatch.models import Command
from integrations.adapters.base import TransientError, backoff_seconds

MAX_RETRIES = 4


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def command_send_task(self, command_id: int):
    """Send one command through its OEM (idempotent: a finished command is left alone)."""
    command = Command.objects.filter(pk=command_id).first()
    if command is None:
        return "gone"
    # eagerly (no worker) there is no retry: the first attempt is the last
    final = self.request.is_eager or self.request.retries >= self.max_retries
    try:
        command = services.command_send(command=command, final_attempt=final)
    except TransientError as exc:
        raise self.retry(
            exc=exc, countdown=min(600, backoff_seconds(self.request.retries, retry_after=exc.retry_after))
        ) from exc
    return command.status
