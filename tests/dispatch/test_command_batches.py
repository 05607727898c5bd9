"""A worker's batch of commands against what happens while it runs: the event cancelled, the next action
begun, the device opted out, its lease lost, the same task delivered twice. The OEM call is replaced; what
is asserted is what the batch records and what it sends."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch import engine, services
from dispatch.choices import CommandStatus, DispatchEventStatus, ParticipationStatus
from dispatch.models import Command, DispatchEvent, Participation
from dispatch.services import command_set_status, dispatch_event_cancel, dispatch_event_create
from tests.dispatch import test_engine
from tests.dispatch.test_engine import end_event, live_device, running_event

program = test_engine.program  # the engine tests' fixture: a program, its strategy, enabled integrations

pytestmark = pytest.mark.django_db


def due(event) -> list[int]:
    Command.objects.filter(dispatch_event=event).update(not_before=timezone.now() - timedelta(seconds=1))
    commands = Command.objects.filter(dispatch_event=event, purpose="action").order_by("pk")
    return list(commands.values_list("pk", flat=True))


def accepting(called: list, hook=None):
    def call(command, integration, *, resume, final):
        called.append((command.pk, resume))
        if hook:
            hook(len(called))
        return services._Sent(command, CommandStatus.SUCCESS, "accepted", started=timezone.now())

    return call


def participation_of(pk: int) -> Participation:
    return Participation.objects.get(commands__pk=pk)


@pytest.fixture
def record_each_call(monkeypatch):
    monkeypatch.setattr(services, "SEND_RECORD_SECONDS", 0)


def test_a_command_resumed_after_its_event_was_cancelled_is_sent_and_then_restored(
    program, monkeypatch, record_each_call
):
    """A dead worker may have put both commands in place: the one taking over resumes both (not skips the
    second) and each success after the cancel gets its late restore."""
    first, second = live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    ids = due(event)
    services._commands_claim(command_ids=ids, owner="killed-worker")
    Command.objects.filter(pk__in=ids).update(lease_until=timezone.now() - timedelta(seconds=1))
    dispatch_event_cancel(event=event, actor=None, reason="Feeder maintenance")
    called = []
    monkeypatch.setattr(services, "_command_call", accepting(called))
    services.commands_send(command_ids=ids, owner="taker")
    assert called == [(ids[0], True), (ids[1], True)]
    assert set(Command.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"success"}
    restored = Command.objects.filter(dispatch_event=event, purpose="restore").values_list("device_id", flat=True)
    assert sorted(restored) == sorted([first.pk, second.pk])


def test_an_earlier_actions_command_skipped_late_leaves_the_next_action_alone(program, monkeypatch, record_each_call):
    """Back to back: while a batch holds a discharge command, the discharge ends and the idle begins with the
    device handed over. The stale discharge command is skipped; the device stays in the idle action, and
    its idle command commands it and is restored at the end."""
    devices = [live_device(program, charge_percentage=60.0) for _ in range(2)]
    start = timezone.now() - timedelta(minutes=1)
    event = dispatch_event_create(
        program=program, name="Discharge then idle", starts_at=start, ends_at=start + timedelta(hours=2), actor=None,
        actions=[
            {"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)},
            {"action_type": "idle", "starts_at": start + timedelta(hours=1), "ends_at": start + timedelta(hours=2)},
        ],
    )  # fmt: skip
    DispatchEvent.objects.filter(pk=event.pk).update(status=DispatchEventStatus.SCHEDULED)
    engine.dispatch_tick()
    ids = due(event)
    discharge, idle = event.actions.order_by("starts_at")

    def next_action_begins(calls: int):
        if calls == 1:
            now = timezone.now()
            event.actions.filter(pk=discharge.pk).update(starts_at=now - timedelta(hours=1), ends_at=now)
            event.actions.filter(pk=idle.pk).update(starts_at=now, ends_at=now + timedelta(hours=1))
            DispatchEvent.objects.filter(pk=event.pk).update(starts_at=now - timedelta(hours=1))
            engine.dispatch_tick()

    called = []
    monkeypatch.setattr(services, "_command_call", accepting(called, next_action_begins))
    services.commands_send(command_ids=ids, owner="batch")
    assert [pk for pk, _ in called] == ids[:1]
    stale = Command.objects.get(pk=ids[1])
    assert (stale.status, stale.status_reason) == ("skipped", services.ENDED_BEFORE_ITS_TURN)
    handed = Participation.objects.get(pk=stale.participation_id)
    assert (handed.status, handed.action_id) == (ParticipationStatus.INCLUDED, idle.pk)
    idle_command = Command.objects.get(participation=handed, action=idle, purpose="action")
    command_set_status(command=idle_command, status=CommandStatus.SENT)
    command_set_status(command=idle_command, status=CommandStatus.SUCCESS, reason="accepted")
    handed.refresh_from_db()
    assert handed.status == ParticipationStatus.COMMANDED
    end_event(event)
    engine.dispatch_tick()
    restored = Command.objects.filter(dispatch_event=event, purpose="restore").values_list("device_id", flat=True)
    assert handed.device_id in restored and {d.pk for d in devices} == set(restored)


def test_a_batch_does_not_call_a_command_whose_lease_another_batch_holds_now(program, monkeypatch, record_each_call):
    live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    ids = due(event)

    def lease_lost(calls: int):
        if calls == 1:  # the batch's lease on the second ran out, and another batch has it now
            Command.objects.filter(pk=ids[1]).update(
                lease_owner="B2", lease_until=timezone.now() + timedelta(minutes=2)
            )

    called = []
    monkeypatch.setattr(services, "_command_call", accepting(called, lease_lost))
    services.commands_send(command_ids=ids, owner="B1")
    assert [pk for pk, _ in called] == ids[:1]
    assert Command.objects.get(pk=ids[1]).lease_owner == "B2"


def test_the_same_task_delivered_twice_does_not_send_twice(program, monkeypatch):
    """A redelivery keeps the task's id: while the first run holds the leases, the second sends nothing."""
    live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    ids = due(event)
    called = []

    def redelivered(calls: int):
        if calls == 1:  # the broker hands the same task to another worker while the first still runs
            services.commands_send(command_ids=ids, owner="task-T")

    monkeypatch.setattr(services, "_command_call", accepting(called, redelivered))
    services.commands_send(command_ids=ids, owner="task-T")
    assert called == [(ids[0], False), (ids[1], False)]  # each once, by the first run
    assert set(Command.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"success"}


def test_a_retry_landing_after_its_opted_out_device_was_restored_is_restored_again(program, monkeypatch):
    live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    ids = due(event)

    def transient(command, integration, *, resume, final):
        return services._Sent(command, services.RETRY, "503", started=timezone.now(), retry_in=30)

    monkeypatch.setattr(services, "_command_call", transient)
    services.commands_send(command_ids=ids, owner="B1")  # `sent`, waiting for its retry
    engine.participation_opt_out(participation=participation_of(ids[0]), reason="Customer asked", actor=None)
    restore = Command.objects.get(dispatch_event=event, purpose="restore")
    command_set_status(command=restore, status=CommandStatus.SENT)
    command_set_status(command=restore, status=CommandStatus.SUCCESS, reason="accepted")
    Command.objects.filter(pk=ids[0]).update(lease_until=timezone.now() - timedelta(seconds=1))
    called = []
    monkeypatch.setattr(services, "_command_call", accepting(called))
    services.commands_send(command_ids=ids, owner="B2")  # the retry lands after the restore
    assert called == [(ids[0], True)]
    restores = Command.objects.filter(dispatch_event=event, purpose="restore").order_by("pk")
    assert [r.idempotency_key.endswith(":late") for r in restores] == [False, True]
    assert participation_of(ids[0]).status == ParticipationStatus.OPTED_OUT


def test_a_fresh_command_of_an_opted_out_device_is_not_sent(program, monkeypatch, record_each_call):
    live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    ids = due(event)

    def opt_out_second(calls: int):
        if calls == 1:
            engine.participation_opt_out(participation=participation_of(ids[1]), reason="Customer asked", actor=None)

    called = []
    monkeypatch.setattr(services, "_command_call", accepting(called, opt_out_second))
    services.commands_send(command_ids=ids, owner="batch")
    assert [pk for pk, _ in called] == ids[:1]
    skipped = Command.objects.get(pk=ids[1])
    assert skipped.status == "skipped"
    assert participation_of(ids[1]).status == ParticipationStatus.OPTED_OUT  # not turned into an exclusion
