"""The beat schedule: one place, every entry a real task (a second CELERY_BEAT_SCHEDULE once silently
replaced the first)."""

from celery import Task
from django.conf import settings
from django.utils.module_loading import import_string


def test_every_periodic_job_of_the_portal_is_scheduled_and_names_a_real_task():
    schedule = settings.CELERY_BEAT_SCHEDULE
    tasks = {entry["task"] for entry in schedule.values()}
    assert {
        "integrations.tasks.discovery_run_all_task",
        "integrations.tasks.telemetry_sync_all_task",
        "integrations.tasks.offline_sweep_task",
        "texture_portal.events.tasks.destinations_sweep_task",
        "fleet.importing.tasks.import_jobs_sweep_task",
    } <= tasks
    for name, entry in schedule.items():
        assert isinstance(import_string(entry["task"]), Task), name
