"""Ticks at the same time on PostgreSQL (beat overlapping a slow tick, two beats by mistake): the event row's
lock with `skip_locked` lets one tick take a step, so an event is fanned out once and each command handed to
a worker once."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dispatch import engine
from dispatch.choices import DispatchEventStatus
from dispatch.models import Command, DispatchEvent, Participation
from dispatch.services import dispatch_event_create
from dispatch.tasks import commands_send_task
from integrations.models import WorkspaceIntegration
from programs.services import event_strategy_create_version
from tests.dispatch.test_engine import live_device
from tests.factories import WorkspaceFactory, make_program
from texture_portal.events.models import PlatformEvent
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.postgres


@pytest.mark.django_db(transaction=True)
def test_four_ticks_at_once_fan_out_once_and_queue_each_command_once(reference_data, monkeypatch):
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    event_strategy_create_version(program=program, data={"ramp_minutes": 0}, actor=None)
    WorkspaceIntegration.objects.create(workspace=workspace, channel="tesla", enabled=True, credentials={})
    devices = [live_device(program) for _ in range(60)]
    start = timezone.now() - timedelta(seconds=30)
    event = dispatch_event_create(
        program=program,
        name="Concurrent ticks",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)}],
    )
    DispatchEvent.objects.filter(pk=event.pk).update(status=DispatchEventStatus.SCHEDULED)
    engine.dispatch_events_start_due(now=timezone.now())  # running: every tick below goes for its first step
    queued: list[int] = []
    lock = threading.Lock()

    def record(args, *_, **kwargs):
        with lock:
            queued.extend(args[0])

    monkeypatch.setattr(commands_send_task, "apply_async", record)
    # a slow classification keeps the first tick's transaction open while the others arrive
    slow_rows = engine.event_target_rows

    def event_target_rows(**kwargs):
        rows = slow_rows(**kwargs)
        time.sleep(0.5)
        return rows

    monkeypatch.setattr(engine, "event_target_rows", event_target_rows)
    barrier = threading.Barrier(4)
    errors = []

    def tick():
        try:
            barrier.wait()
            engine.dispatch_tick()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine.dispatch_tick()  # a later tick finds every step taken (any thread that skipped the lock caught up)
    assert Participation.objects.filter(event=event).count() == len(devices)
    assert Command.objects.filter(dispatch_event=event).count() == len(devices)
    assert sorted(queued) == sorted(Command.objects.filter(dispatch_event=event).values_list("pk", flat=True))
    assert PlatformEvent.objects.filter(type="program_event.started", data__id=event.pk).count() == 1
    assert AuditLogEntry.objects.filter(action="program_event.action_started", object_id=str(event.pk)).count() == 1
