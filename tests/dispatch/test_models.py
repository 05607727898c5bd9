"""Database constraints of dispatch: windows end after they start; idempotency keys are unique."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch.models import Command, DispatchAction, DispatchEvent
from programs.selectors import program_current_strategy
from tests.factories import DeviceFactory, WorkspaceFactory, make_program

pytestmark = pytest.mark.django_db


def refused(make):
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


def test_event_and_action_must_end_after_they_start():
    program = make_program(WorkspaceFactory())
    start = timezone.now() + timedelta(hours=1)
    base = {
        "workspace": program.workspace,
        "program": program,
        "strategy": program_current_strategy(program=program),
        "name": "Peak",
    }
    refused(lambda: DispatchEvent.objects.create(**base, starts_at=start, ends_at=start))
    refused(lambda: DispatchEvent.objects.create(**base, starts_at=start, ends_at=start - timedelta(minutes=1)))
    event = DispatchEvent.objects.create(**base, starts_at=start, ends_at=start + timedelta(hours=2))
    refused(
        lambda: DispatchAction.objects.create(
            workspace=program.workspace, event=event, action_type="discharge", starts_at=start, ends_at=start
        )
    )
    refused(
        lambda: DispatchAction.objects.create(
            workspace=program.workspace,
            event=event,
            action_type="explode",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
        )
    )


def test_command_idempotency_key_unique_per_workspace():
    device = DeviceFactory()
    base = {"workspace": device.workspace, "device": device, "slug": "battery:set-reserve", "input": {}}
    Command.objects.create(**base, idempotency_key="evt-1:dev-1:start")
    refused(lambda: Command.objects.create(**base, idempotency_key="evt-1:dev-1:start"))
    refused(lambda: Command.objects.create(**{**base, "slug": "battery:self-destruct"}, idempotency_key="k2"))
