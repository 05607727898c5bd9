"""Run the Celery beat schedule in this process, for the embedded default (no broker, no worker): the
demo's devices get discovered, stream telemetry and go offline exactly as under beat + workers."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.module_loading import import_string


def seconds_until_next(schedule) -> float:
    """A beat entry's schedule is seconds or a Celery schedule (crontab): the wait until its next run."""
    if isinstance(schedule, int | float):
        return float(schedule)
    return max(1.0, schedule.remaining_estimate(timezone.now()).total_seconds())


class Command(BaseCommand):
    help = "Run CELERY_BEAT_SCHEDULE's tasks in-process at their intervals (use celery beat in production)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every scheduled task once, then exit.")
        parser.add_argument("--delay", type=float, default=0, help="Seconds to wait before the first round.")

    def handle(self, *args, **options):
        schedule = settings.CELERY_BEAT_SCHEDULE
        due = dict.fromkeys(schedule, 0.0)
        time.sleep(options["delay"])
        while True:
            now = time.monotonic()
            for name, entry in schedule.items():
                if due[name] > now:
                    continue
                task = import_string(entry["task"])  # task names are their dotted paths
                try:
                    result = task.apply(kwargs=entry.get("kwargs", {})).get(propagate=True)
                    if result not in (None, 0):  # the 2-second command hand-off mostly has nothing to say
                        self.stdout.write(f"{name}: {result}")
                except Exception as exc:  # noqa: BLE001 - one failing job must not stop the schedule
                    self.stderr.write(f"{name}: {exc.__class__.__name__}: {exc}")
                due[name] = now + seconds_until_next(entry["schedule"])
            if options["once"]:
                return
            time.sleep(max(1.0, min(due.values()) - time.monotonic()))
