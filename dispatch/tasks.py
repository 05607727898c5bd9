"""Celery tasks of dispatch: the event clock, the command hand-off, and sending a batch of commands. They
take ids and are safe to run twice."""

from collections import Counter

from celery import shared_task

from dispatch import services


@shared_task(bind=True, acks_late=True)
def commands_send_task(self, command_ids: list[int]) -> dict:
    """Send a batch of commands (one OEM's, from the hand-off), one after another in the order they are due.
    Idempotent: a finished command is left alone, one another worker holds is left to it. Not retried by
    Celery: a command that met a transient error waits, leased, for the hand-off to give it back (its lease
    is its backoff), so a retry resumes wherever it is taken up."""
    # a redelivery (the worker died) keeps the task's id: its commands' leases are this task's
    sent = services.commands_send(command_ids=command_ids, owner=self.request.id or "")
    return dict(Counter(str(command.status) for command in sent.values()))


@shared_task(bind=True, acks_late=True)
def command_send_task(self, command_id: int) -> str:
    """One command (tasks queued before batches were; `commands_send_task` is the one queued now)."""
    sent = services.commands_send(command_ids=[command_id], owner=self.request.id or "")
    return str(sent[command_id].status) if command_id in sent else "gone"


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
        "reports": outcome["reports"],
    }


@shared_task(acks_late=True, ignore_result=True)
def event_report_compile_task(event_id: int) -> dict:
    """Compile a completed event's report (queued when it completes, and by the tick's sweep for one that has
    none). Safe to run twice: a compile locks the event and replaces the whole report."""
    from dispatch.models import DispatchEvent
    from dispatch.reports import event_report_compile

    event = DispatchEvent.objects.filter(pk=event_id).first()
    if event is None:
        return {"event": event_id, "compiled": False}
    report = event_report_compile(event=event)
    return {"event": event_id, "compiled": True, "ms": report.compile_ms}
