"""The export Resource: the import's shape, a lossless round trip, and no formula injection."""

import csv
import io

import pytest

from fleet.choices import ImportJobStatus
from fleet.models import Contact, Device
from fleet.resources import export_fleet_csv
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
