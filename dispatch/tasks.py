"""Celery tasks of dispatch: the event clock and sending one command. Both take ids and are safe to run twice."""

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
        # the task's id stays the same across its retries: the command's lease is held for them
        command = services.command_send(command=command, final_attempt=final, owner=self.request.id or "")
    except TransientError as exc:
        countdown = min(
            services.MAX_RETRY_COUNTDOWN, backoff_seconds(self.request.retries, retry_after=exc.retry_after)
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    return command.status


@shared_task(acks_late=True, ignore_result=True, expires=30)
def commands_queue_task() -> int:
    """Hand due commands to workers (every DISPATCH_QUEUE_SECONDS, CELERY_BEAT_SCHEDULE): safe to run twice
    at once (row locks, skip_locked); one that waited too long in the broker expires (the next one runs)."""
    from django.utils import timezone

    from dispatch.engine import commands_queue_due

    return commands_queue_due(now=timezone.now())


@shared_task(acks_late=True, ignore_result=True)
def dispatch_tick_task():
    """The event clock (every DISPATCH_TICK_SECONDS, CELERY_BEAT_SCHEDULE): safe to run twice at once."""
    from dispatch.engine import dispatch_tick

    outcome = dispatch_tick()
    return {
        "created": len(outcome["created"]),
        "started": len(outcome["started"]),
        "running": len(outcome["advanced"]),
        "queued": outcome["queued"],
    }
