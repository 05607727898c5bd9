"""The export Resource: the import's shape, a lossless round trip, and no formula injection."""

import csv
import io

import pytest

from fleet.choices import ImportJobStatus
from fleet.models import Contact, Device
from fleet.resources import export_fleet_csv
from programs.models import Enrollment
from programs.services import enrollment_submit, enrollment_unenroll
from tests.factories import WorkspaceFactory, make_program
from tests.fleet.test_importing import ROW_A1, ROW_A2, ROW_B1, csv_bytes, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    return workspace


def test_export_then_reimport_changes_nothing(workspace):
    run(workspace, csv_bytes(ROW_A1, ROW_A2, ROW_B1))
    exported = export_fleet_csv(Device.objects.filter(workspace=workspace))
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 3
    assert list(rows[0])[:3] == ["referenceId", "firstName", "lastName"]
    job = run(workspace, exported.encode())
    assert job.status == ImportJobStatus.IMPORTED, job.errors
    assert (job.counts["new"], job.counts["updated"], job.counts["unchanged"]) == (0, 0, 3)


def test_export_escapes_cells_a_spreadsheet_would_run_as_formulas(workspace):
    dangerous = ROW_B1.replace("Ben,Okafor", '"=HYPERLINK(""http://x"")",@SUM(1)')
    job = run(workspace, csv_bytes(dangerous))
    assert job.status == ImportJobStatus.IMPORTED, job.errors
    exported = export_fleet_csv(Device.objects.filter(workspace=workspace))
    row = next(csv.DictReader(io.StringIO(exported)))
    assert row["firstName"] == '\'=HYPERLINK("http://x")'
    assert row["lastName"] == "'@SUM(1)"
    assert not any(value.startswith(("=", "+", "-", "@")) for value in row.values())
    # and the apostrophe does not survive a round trip into the data
    job = run(workspace, exported.encode())
    assert job.counts["unchanged"] == 1
    assert Contact.objects.get().first_name == '=HYPERLINK("http://x")'


def test_export_is_a_fixed_number_of_queries(workspace, django_assert_max_num_queries):
    run(workspace, csv_bytes(ROW_A1, ROW_A2, ROW_B1))
    with django_assert_max_num_queries(4):
        export_fleet_csv(Device.objects.filter(workspace=workspace))


def reimport(workspace):
    exported = export_fleet_csv(Device.objects.filter(workspace=workspace))
    job = run(workspace, exported.encode())
    assert job.status == ImportJobStatus.IMPORTED, job.errors
    return job, list(csv.DictReader(io.StringIO(exported)))


def enrollment_states(workspace) -> set[tuple[str, str, str]]:
    return set(
        Enrollment.objects.filter(workspace=workspace).values_list(
            "device__system_identifier", "program__slug", "status"
        )
    )


def test_round_trip_after_an_unenroll(workspace):
    run(workspace, csv_bytes(ROW_A1, ROW_B1))
    enrollment_unenroll(enrollment=Enrollment.objects.get(device__system_identifier="TG-0001"), actor=None)
    before = enrollment_states(workspace)
    job, rows = reimport(workspace)
    assert {row["systemIdentifier"]: row["programSlug"] for row in rows} == {"TG-0001": "", "10050000001": "vpp"}
    assert (job.counts["new"], job.counts["updated"], job.counts["unchanged"]) == (0, 0, 2)
    assert enrollment_states(workspace) == before  # not enrolled again, nothing unenrolled


def test_round_trip_after_a_program_change(workspace):
    run(workspace, csv_bytes(ROW_A1))
    enrollment_unenroll(enrollment=Enrollment.objects.get(), actor=None)
    enrollment_submit(device=Device.objects.get(), program=make_program(workspace, slug="winter-vpp"), actor=None)
    job, rows = reimport(workspace)
    assert [row["programSlug"] for row in rows] == ["winter-vpp"]
    assert job.counts["unchanged"] == 1
    assert enrollment_states(workspace) == {("TG-0001", "vpp", "unenrolled"), ("TG-0001", "winter-vpp", "approved")}


def test_round_trip_with_devices_in_two_programs(workspace):
    run(workspace, csv_bytes(ROW_A1, ROW_A2))
    winter = make_program(workspace, slug="winter-vpp")
    enrollment_submit(device=Device.objects.get(system_identifier="A2-0001"), program=winter, actor=None)
    before = enrollment_states(workspace)
    job, rows = reimport(workspace)
    assert [row["programSlug"] for row in rows] == ["vpp", "vpp"]  # the earliest active enrollment
    assert job.counts["unchanged"] == 2 and enrollment_states(workspace) == before


def test_a_new_device_still_needs_its_program(workspace):
    job = run(workspace, csv_bytes(ROW_A1.replace(",vpp,", ",,")))
    assert job.status == ImportJobStatus.INVALID
    assert [(e["row"], e["column"], e["message"]) for e in job.errors] == [
        (2, "programSlug", "required for a device not yet in the workspace, but empty")
    ]
    assert not Device.objects.filter(workspace=workspace).exists()
