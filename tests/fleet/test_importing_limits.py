"""The importer's limits (issue #15, README "Limits"): NUL bytes and over-long cells are row errors naming row
and column that quote only the cell's start; too many rows or columns refuse the file; nothing is written and
nothing is stored whole — through the job (CLI), the API and the admin upload, on SQLite and PostgreSQL."""

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from fleet.choices import ImportJobStatus
from fleet.models import Contact, Device, ImportJob
from tests.api_support import api_client_for
from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from tests.fleet.test_importing import HEADER, ROW_A1, ROW_B1, csv_bytes, run
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    return workspace


NUL_ROWS = (ROW_A1, ROW_B1.replace("Okafor", "Oka\x00for").replace("9 Elm St", "9 Elm\x00 St"))
NUL_ERRORS = [
    {
        "row": 3,
        "column": "lastName",
        "value": "Oka\u2400for",
        "message": "the cell holds a NUL character (\\0), which no field can store; remove it",
    },
    {
        "row": 3,
        "column": "streetOne",
        "value": "9 Elm\u2400 St",
        "message": "the cell holds a NUL character (\\0), which no field can store; remove it",
    },
]


def assert_nothing_stored_whole(job, *, longest: int = 200) -> None:
    """No NUL and no long text anywhere in what the job row stores about the file."""
    for stored in (job.errors, job.row_statuses, job.warnings, job.status_reason):
        text = json.dumps(stored)
        assert "\\u0000" not in text
        assert all(len(part) <= longest for part in text.split('"')), "a value stored (nearly) whole"


def check_nul_cells_are_row_errors(workspace):
    job = run(workspace, csv_bytes(*NUL_ROWS))
    assert job.status == ImportJobStatus.INVALID, job.status_reason
    assert job.errors == NUL_ERRORS
    assert [status[:2] for status in job.row_statuses] == [[2, "new"], [3, "error"]]
    assert_nothing_stored_whole(job)
    assert not Contact.objects.exists() and not Device.objects.exists()


def test_nul_bytes_in_two_cells_are_row_errors_and_nothing_is_imported(workspace):
    check_nul_cells_are_row_errors(workspace)


@pytest.mark.postgres
def test_nul_bytes_in_two_cells_are_row_errors_on_postgresql(workspace):
    """PostgreSQL failed the job itself (DataError saving the row statuses) before the reader refused NUL."""
    check_nul_cells_are_row_errors(workspace)


def test_a_nul_in_an_optional_cell_fails_its_row_too(workspace):
    job = run(workspace, csv_bytes(ROW_A1.replace("feeder:12", "feeder:\x0012")))
    assert job.status == ImportJobStatus.INVALID
    assert [(e["row"], e["column"]) for e in job.errors] == [(2, "tags")]


def test_a_nul_in_an_ignored_column_or_its_header_is_harmless(workspace):
    data = csv_bytes(ROW_A1 + ",x\x00y", header=HEADER + ",no\x00tes")
    job = run(workspace, data)
    assert job.status == ImportJobStatus.IMPORTED
    assert job.warnings == ["Column “no\u2400tes” is not part of the fleet file and was ignored."]


def test_an_over_long_cell_is_a_row_error_quoting_its_start(workspace):
    huge = "Z" * 100_000  # under the csv module's own field limit (131,072)
    job = run(workspace, csv_bytes(ROW_A1.replace("Ana", huge, 1)))
    assert job.status == ImportJobStatus.INVALID
    (error,) = job.errors
    assert (error["row"], error["column"]) == (2, "firstName")
    assert error["message"] == "the cell is 100,000 characters long; the limit is 1,000"
    assert error["value"] == "Z" * 79 + "…"
    assert_nothing_stored_whole(job)


def test_a_csv_cell_beyond_the_csv_modules_limit_refuses_the_file(workspace):
    job = run(workspace, csv_bytes(ROW_A1.replace("Ana", "Z" * 200_000, 1)))
    assert job.status == ImportJobStatus.INVALID
    assert job.errors[0]["message"] == "Row 2 cannot be read: field larger than field limit (131072)"
    assert not Contact.objects.exists()


@override_settings(IMPORT_CELL_MAX_LENGTH=10)
def test_the_cell_limit_is_the_setting(workspace):
    job = run(workspace, csv_bytes(ROW_A1))
    assert job.status == ImportJobStatus.INVALID
    assert {e["column"] for e in job.errors} == {"email", "phone"}  # the only cells over 10 characters


def xlsx_bytes(*rows, huge_cell: str = "") -> bytes:
    """A workbook; `HUGE` in a cell becomes `huge_cell`, written into the XML directly (openpyxl cuts what it
    writes at Excel's 32,767 characters, an edited or generated file need not)."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    edited = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(edited, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, source.read(item).replace(b">HUGE<", f">{huge_cell}<".encode()))
    return edited.getvalue()


def test_a_huge_spreadsheet_cell_is_not_echoed_in_the_apis_answer_nor_stored(workspace):
    """Before: a 32 MB cell came back whole in the 202 answer and sat in the job row (2 MB here, same path)."""
    row = ROW_B1.split(",")
    row[5] = "HUGE"
    data = xlsx_bytes(HEADER.split(","), row, huge_cell="S" * (2 * 1024 * 1024))
    client = api_client_for(workspace)
    response = client.post("/v1/imports", {"file": SimpleUploadedFile("fleet.xlsx", data)}, format="multipart")
    assert response.status_code == 202, response.content[:500]
    assert len(response.content) < 5000
    body = response.json()
    assert body["status"] == "invalid"
    assert body["errors"] == [
        {
            "row": 2,
            "column": "streetOne",
            "value": "S" * 79 + "…",
            "message": "the cell is 2,097,152 characters long; the limit is 1,000",
        }
    ]
    assert_nothing_stored_whole(ImportJob.objects.get(pk=body["id"]))


def test_nul_cells_through_the_api_are_row_errors(workspace):
    client = api_client_for(workspace)
    response = client.post(
        "/v1/imports", {"file": SimpleUploadedFile("fleet.csv", csv_bytes(*NUL_ROWS))}, format="multipart"
    )
    assert response.status_code == 202
    assert response.json()["status"] == "invalid" and response.json()["errors"] == NUL_ERRORS


def test_nul_cells_through_the_admin_upload_are_row_errors(client, workspace):
    staff_user("ops", workspace, Role.OPS)
    assert client.login(username="ops", password=PASSWORD)
    response = client.post(
        reverse("admin:fleet_importjob_add"),
        {"workspace": workspace.pk, "file": SimpleUploadedFile("fleet.csv", csv_bytes(*NUL_ROWS))},
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == ImportJobStatus.INVALID and job.errors == NUL_ERRORS
    page = client.get(response["Location"]).content.decode()
    assert "row 3, lastName: “Oka\u2400for” — the cell holds a NUL character" in page
    assert not Device.objects.exists()


@override_settings(IMPORT_MAX_ROWS=2)
def test_a_file_over_the_rows_limit_is_refused_as_a_whole(workspace):
    row = ROW_B1
    rows = [row.replace("ACCT-2", f"ACCT-{n}").replace("10050000001", f"1005000000{n}") for n in range(3)]
    job = run(workspace, csv_bytes(*rows, "", ""))
    assert job.status == ImportJobStatus.INVALID
    assert job.errors[0]["message"] == "The file has more than 2 data rows, the limit; split it into several files."
    assert run(workspace, csv_bytes(*rows[:2], "", "")).status == ImportJobStatus.IMPORTED  # blank rows do not count


@override_settings(IMPORT_MAX_COLUMNS=14)
def test_files_and_rows_over_the_columns_limit(workspace):
    wide = csv_bytes(ROW_A1 + ",a,b", header=HEADER + ",x,y")
    job = run(workspace, wide)
    assert job.status == ImportJobStatus.INVALID
    assert job.errors[0]["message"] == "The header row has 15 columns; the limit is 14 (the fleet file has 18)."
    padded = csv_bytes(ROW_A1 + ",,,,", header=HEADER + ",,,,")  # empty trailing cells do not count
    assert run(workspace, padded).status == ImportJobStatus.IMPORTED
    job = run(workspace, csv_bytes(ROW_A1.replace("ACCT-1", "ACCT-9").replace("TG-0001", "TG-9") + ",a,b"))
    assert job.status == ImportJobStatus.INVALID
    assert [(e["row"], e["column"], e["message"]) for e in job.errors] == [
        (2, "", "the row has 15 cells; the limit is 14")
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda xml: xml[: len(xml) // 2], "unclosed token"),
        (lambda xml: xml.replace(b'<c r="A2"', b'<c r="ZZZZZZZ99999999"'), "not a valid column name"),
        (lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + b"<x>" * 100_000), "mismatched tag"),
    ],
    ids=["truncated", "bogus cell reference", "deep XML"],
)
def test_a_workbook_whose_sheet_cannot_be_read_is_a_file_error_not_a_500(workspace, mutate, message):
    good = xlsx_bytes(HEADER.split(","), ROW_A1.split(","))
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, mutate(data) if item.filename == "xl/worksheets/sheet1.xml" else data)
    client = api_client_for(workspace)
    upload = SimpleUploadedFile("fleet.xlsx", broken.getvalue())
    response = client.post("/v1/imports", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content[:300]
    (error,) = response.json()["errors"]
    assert error["message"].startswith("The workbook's first sheet cannot be read: ") and message in error["message"]
