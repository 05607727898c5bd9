"""Run the Celery beat schedule in this process, for the embedded default (no broker, no worker): the
demo's devices get discovered, stream telemetry and go offline exactly as under beat + workers."""

import time

import requests
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
        parser.add_argument(
            "--wait-for",
            metavar="URL",
            help="Before the first round, wait until this URL answers (up to 60 s): the OEM simulator started "
            "beside it, whose first answer may take longer than --delay on a busy machine.",
        )

    def handle(self, *args, **options):
        schedule = settings.CELERY_BEAT_SCHEDULE
        due = dict.fromkeys(schedule, 0.0)
        time.sleep(options["delay"])
        if options["wait_for"]:
            self.wait_for(options["wait_for"], timeout=60)
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

    def wait_for(self, url: str, *, timeout: float) -> None:
        """Poll `url` until it answers at all (any status); say so and go on if it never does (the first
        round's jobs then record the connection failures, and later rounds find it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(url, timeout=2)
                return
            except requests.RequestException:
                if time.monotonic() >= deadline:
                    self.stderr.write(f"{url} did not answer within {timeout:g} s; starting anyway.")
                    return
                time.sleep(0.5)
