"""Celery tasks of programs: Program Health over time. They take no objects and are safe to run twice."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def program_health_record_task() -> int:
    """Every program's enrolled, online and reporting devices, kept per local day (beat's `programs-health`)."""
    from programs.services import program_health_record

    return program_health_record()
