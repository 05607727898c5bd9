"""Program Health over time: each program's enrolled, online and reporting devices kept per local day."""

from datetime import UTC, date, datetime, timedelta

import pytest

from fleet.models import Device
from programs.models import Enrollment, ProgramHealthDay
from programs.services import program_health_record
from tests.factories import DeviceFactory, WorkspaceFactory, make_program

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 16, 3, 0, tzinfo=UTC)  # 20:00 on 15 July in Oregon


def enrolled_device(program, *, state="on_workspace", seen=None, status="approved"):
    device = DeviceFactory(site__contact__workspace=program.workspace, state=state)
    Device.objects.filter(pk=device.pk).update(last_seen_at=seen)
    Enrollment.objects.create(workspace=program.workspace, program=program, device=device, status=status)
    return device


def test_each_program_gets_its_local_days_counts_and_a_second_run_updates_them():
    program = make_program(WorkspaceFactory(), timezone="America/Los_Angeles")
    other = make_program(WorkspaceFactory(), slug="other")  # UTC
    enrolled_device(program, seen=NOW - timedelta(hours=1))
    enrolled_device(program, seen=NOW - timedelta(hours=30))  # online, but silent for more than a day
    enrolled_device(program, state="offline", seen=NOW - timedelta(hours=2))
    enrolled_device(program, state="registered")
    enrolled_device(program, status="submitted", seen=NOW)  # not enrolled yet

    assert program_health_record(now=NOW) == 2

    day = ProgramHealthDay.objects.get(program=program)
    assert day.day.isoformat() == "2026-07-15"  # the program's local day, not UTC's 16 July
    assert (day.enrolled, day.online, day.reporting) == (4, 2, 2)
    assert ProgramHealthDay.objects.get(program=other).day.isoformat() == "2026-07-16"
    Device.objects.filter(enrollments__program=program, state="offline").update(state="on_workspace")
    program_health_record(now=NOW + timedelta(minutes=30))
    program_health_record(now=NOW + timedelta(minutes=30))  # twice: the same one row
    day = ProgramHealthDay.objects.get(program=program)
    assert (day.enrolled, day.online, day.reporting) == (4, 3, 2)
    program_health_record(now=NOW + timedelta(hours=6))  # the next local day: a row of its own
    assert list(ProgramHealthDay.objects.filter(program=program).values_list("day", flat=True)) == [
        date(2026, 7, 15),
        date(2026, 7, 16),
    ]


def test_recording_takes_the_same_queries_for_two_devices_or_twenty(django_assert_num_queries):
    program = make_program(WorkspaceFactory())
    for _ in range(2):
        enrolled_device(program, seen=NOW)
    with django_assert_num_queries(3):
        program_health_record(now=NOW)
    for _ in range(18):
        enrolled_device(program, seen=NOW)
    with django_assert_num_queries(3):
        program_health_record(now=NOW)
    assert ProgramHealthDay.objects.get(program=program).reporting == 20
