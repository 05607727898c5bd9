"""Dispatch services: events follow their strategy version; commands are idempotent and audited."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.choices import CommandStatus, DispatchEventStatus
from dispatch.services import (
    command_create,
    command_set_status,
    dispatch_event_cancel,
    dispatch_event_create,
    dispatch_event_schedule,
    dispatch_event_set_status,
)
from tests.factories import DeviceFactory, WorkspaceFactory, make_program
from texture_portal.exceptions import ApplicationError, InvalidTransition

pytestmark = pytest.mark.django_db


@pytest.fixture
def program():
    return make_program(
        WorkspaceFactory(),
        strategy={"allowed_event_types": ["discharge", "idle"], "max_event_duration_minutes": 120},
    )


def window(start_in_hours=2, hours=1):
    start = timezone.now() + timedelta(hours=start_in_hours)
    return start, start + timedelta(hours=hours)


def test_a_production_event_needs_production_dispatch(program):
    start, end = window()
    with pytest.raises(ApplicationError, match="only test events"):
        dispatch_event_create(program=program, name="Peak", starts_at=start, ends_at=end, is_test=False, actor=None)


def test_scheduling_checks_the_strategy(program):
    start, end = window(hours=3)
    event = dispatch_event_create(
        program=program,
        name="Peak",
        starts_at=start,
        ends_at=end,
        actor=None,
        actions=[{"action_type": "charge", "starts_at": start, "ends_at": start + timedelta(hours=4)}],
    )
    with pytest.raises(ApplicationError) as excinfo:
        dispatch_event_schedule(event=event, actor=None)
    problems = excinfo.value.extra["problems"]
    assert any("at most 120" in p for p in problems)
    assert any("not an event type" in p for p in problems)
    assert any("outside the event window" in p for p in problems)
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.DRAFT


def test_a_valid_event_schedules_runs_and_completes(program):
    start, end = window()
    event = dispatch_event_create(
        program=program,
        name="Peak",
        starts_at=start,
        ends_at=end,
        actor=None,
        target_tags=["feeder:12"],
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": end}],
    )
    assert event.strategy.version == 1
    assert list(event.target_tags.values_list("name", flat=True)) == ["feeder:12"]
    dispatch_event_schedule(event=event, actor=None)
    dispatch_event_set_status(event=event, status=DispatchEventStatus.IN_PROGRESS)
    dispatch_event_set_status(event=event, status=DispatchEventStatus.COMPLETED)
    with pytest.raises(InvalidTransition):
        dispatch_event_cancel(event=event, actor=None, reason="too late")


def test_cancel_needs_a_reason(program):
    start, end = window()
    event = dispatch_event_create(program=program, name="Peak", starts_at=start, ends_at=end, actor=None)
    with pytest.raises(ApplicationError):
        dispatch_event_cancel(event=event, actor=None, reason="")
    dispatch_event_cancel(event=event, actor=None, reason="Forecast changed")
    assert event.status == DispatchEventStatus.CANCELLED and event.status_reason == "Forecast changed"


def test_commands_are_idempotent_and_follow_their_roundtrip():
    device = DeviceFactory()
    first = command_create(
        device=device,
        slug="battery:set-operating-mode",
        input={"operatingMode": "discharge"},
        idempotency_key="evt-1:dev-1:start",
        actor=None,
    )
    again = command_create(
        device=device,
        slug="battery:set-operating-mode",
        input={"operatingMode": "discharge"},
        idempotency_key="evt-1:dev-1:start",
        actor=None,
    )
    assert again.pk == first.pk
    command_set_status(command=first, status=CommandStatus.SENT, oem_reference="oem-77")
    command_set_status(command=first, status=CommandStatus.SUCCESS)
    assert (first.attempts, first.oem_reference, first.completed_at is not None) == (1, "oem-77", True)
    with pytest.raises(InvalidTransition):
        command_set_status(command=first, status=CommandStatus.SENT)


def test_a_skipped_command_says_why():
    device = DeviceFactory()
    command = command_create(
        device=device,
        slug="battery:set-reserve",
        input={"chargePercentage": 30},
        idempotency_key="k",
        actor=None,
    )
    with pytest.raises(ApplicationError):
        command_set_status(command=command, status=CommandStatus.SKIPPED)
    command_set_status(command=command, status=CommandStatus.SKIPPED, reason="Storm Guard active")
    assert command.status_reason == "Storm Guard active"
