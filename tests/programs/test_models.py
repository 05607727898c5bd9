"""Database constraints of programs, strategies and enrollments."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from programs.models import Enrollment, EventStrategy, Program
from tests.factories import DeviceFactory, WorkspaceFactory, make_program

pytestmark = pytest.mark.django_db


def refused(make):
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


@pytest.mark.parametrize(
    ("low", "high"),
    [(50, 50), (60, 40), (0, 101)],
)
def test_strategy_soc_range_must_be_valid(low, high):
    program = make_program(WorkspaceFactory())
    refused(
        lambda: EventStrategy.objects.create(
            workspace=program.workspace,
            program=program,
            version=2,
            allowed_event_types=["discharge"],
            min_soc_percent=low,
            max_soc_percent=high,
        )
    )


def test_strategy_ramp_fits_in_the_event_and_versions_are_unique():
    program = make_program(WorkspaceFactory())
    base = {"workspace": program.workspace, "program": program, "allowed_event_types": ["charge"]}
    refused(lambda: EventStrategy.objects.create(**base, version=2, ramp_minutes=300, max_event_duration_minutes=60))
    refused(lambda: EventStrategy.objects.create(**base, version=1))  # version 1 exists
    refused(lambda: EventStrategy.objects.create(**base, version=2, max_event_duration_minutes=0))


def test_strategy_event_types_are_validated():
    program = make_program(WorkspaceFactory())
    strategy = EventStrategy(workspace=program.workspace, program=program, version=9, allowed_event_types=["explode"])
    with pytest.raises(ValidationError) as excinfo:
        strategy.full_clean()
    assert "allowed_event_types" in excinfo.value.message_dict


def test_production_dispatch_only_when_launched():
    program = make_program(WorkspaceFactory())
    refused(lambda: Program.objects.filter(pk=program.pk).update(production_dispatch_enabled=True))
    Program.objects.filter(pk=program.pk).update(phase="launched", production_dispatch_enabled=True)


def test_program_slug_unique_per_workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    refused(lambda: Program.objects.create(workspace=workspace, slug="vpp", name="x", program_type="battery"))
    make_program(WorkspaceFactory(), slug="vpp")


def test_one_enrollment_per_device_and_program():
    device = DeviceFactory()
    program = make_program(device.workspace)
    Enrollment.objects.create(workspace=device.workspace, device=device, program=program)
    refused(lambda: Enrollment.objects.create(workspace=device.workspace, device=device, program=program))


def test_a_program_runs_in_utc_unless_given_an_iana_timezone():
    program = make_program(WorkspaceFactory())
    assert program.timezone == "UTC" and str(program.zone) == "UTC"
    la = make_program(program.workspace, slug="oregon-vpp", timezone="America/Los_Angeles")
    assert la.zone.key == "America/Los_Angeles"


@pytest.mark.parametrize("name", ["Pacific/Nowhere", "PDT", "+02:00", "../etc/passwd", "", "america/los_angeles"])
def test_a_program_timezone_that_is_not_an_iana_name_is_refused_with_why(name):
    program = make_program(WorkspaceFactory())
    program.timezone = name
    with pytest.raises(ValidationError) as refused:
        program.full_clean()
    message = " ".join(refused.value.message_dict["timezone"])
    assert "IANA timezone name" in message or "cannot be blank" in message
