"""The fleet importer, rule by rule, each with a small inline file (NetBox's csv_data style)."""

import io

import pytest

from fleet.choices import DeviceState, ImportJobStatus
from fleet.importing import FleetFileError, apply_fleet_import, plan_fleet_import, read_fleet_file
from fleet.importing.services import import_job_apply, import_job_create, import_job_validate
from fleet.models import Contact, Device, Site
from programs.choices import EnrollmentStatus
from programs.models import Enrollment
from tests.factories import DeviceFactory, UserFactory, WorkspaceFactory, make_program
from texture_portal.choices import AuditAction
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db

HEADER = "referenceId,firstName,lastName,email,phone,streetOne,city,state,postalCode,manufacturerSlug,systemIdentifier,programSlug,tags"


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    return workspace


def csv_bytes(*lines: str, header: str = HEADER, encoding: str = "utf-8", newline: str = "\n") -> bytes:
    return newline.join([header, *lines]).encode(encoding) + newline.encode()


def run(workspace, data: bytes, *, filename="fleet.csv", actor=None):
    """Through the import job, the same path as the admin, CLI and API."""
    job = import_job_create(workspace=workspace, filename=filename, data=data, actor=actor)
    import_job_validate(job=job)
    job.refresh_from_db()
    if job.status == ImportJobStatus.VALIDATED:
        job = import_job_apply(job=job, actor=actor)
        job.refresh_from_db()
    return job


def messages(job) -> list[str]:
    return [f"row {e['row']}, {e['column']}: {e['message']}" for e in job.errors]


ROW_A1 = "ACCT-1,Ana,Ruiz,ana@example.com,541-555-0101,1 Pine St,Bend,OR,97701,tesla,TG-0001,vpp,feeder:12"
ROW_A2 = "ACCT-1,Ana,Ruiz,ana@example.com,541-555-0101,1 Pine St,Bend,OR,97701,emporia,A2-0001,vpp,feeder:12"
ROW_B1 = "ACCT-2,Ben,Okafor,,,9 Elm St,Redmond,OR,97756,franklinwh,10050000001,vpp,"


def test_rows_of_one_account_become_one_contact_one_site_and_several_devices(workspace):
    job = run(workspace, csv_bytes(ROW_A1, ROW_A2, ROW_B1))
    assert job.status == ImportJobStatus.IMPORTED, messages(job)
    assert job.counts["new"] == 3
    ana = Contact.objects.get(workspace=workspace, reference_id="ACCT-1")
    assert ana.phone == "+15415550101"  # normalized to E.164
    assert ana.sites.count() == 1
    assert sorted(ana.devices.values_list("system_identifier", flat=True)) == ["A2-0001", "TG-0001"]
    device = Device.objects.get(system_identifier="TG-0001")
    assert device.state == DeviceState.REGISTERED
    assert list(device.tags.values_list("name", flat=True)) == ["feeder:12"]
    assert device.state_changes.get().to_state == DeviceState.REGISTERED
    enrollment = Enrollment.objects.get(device=device)
    assert enrollment.program.slug == "vpp" and enrollment.status == EnrollmentStatus.APPROVED
    site = ana.sites.get()
    assert (round(site.latitude, 2), round(site.longitude, 2)) == (44.09, -121.29)  # ZIP 97701 centroid, offline
    assert site.timezone == "America/Los_Angeles"


def test_the_same_file_twice_changes_nothing_the_second_time(workspace):
    data = csv_bytes(ROW_A1, ROW_A2, ROW_B1)
    run(workspace, data)
    audit_rows, updated = AuditLogEntry.objects.count(), Device.objects.get(system_identifier="TG-0001").last_updated
    job = run(workspace, data)
    assert job.status == ImportJobStatus.IMPORTED
    assert (job.counts["new"], job.counts["updated"], job.counts["unchanged"]) == (0, 0, 3)
    assert Device.objects.get(system_identifier="TG-0001").last_updated == updated
    # only the import's own audit row is new: no record was written
    assert AuditLogEntry.objects.count() == audit_rows + 1
    assert AuditLogEntry.objects.latest("id").action == AuditAction.IMPORT_COMPLETED


def test_an_edited_email_or_tag_updates_that_record_and_is_audited(workspace):
    run(workspace, csv_bytes(ROW_A1, ROW_B1))
    edited_email = ROW_A1.replace("ana@example.com", "ana.ruiz@example.org")
    edited_tag = ROW_B1.rstrip(",") + ",feeder:14"
    job = run(workspace, csv_bytes(edited_email, edited_tag))
    assert (job.counts["new"], job.counts["updated"], job.counts["unchanged"]) == (0, 2, 0)
    contact = Contact.objects.get(reference_id="ACCT-1")
    assert contact.email == "ana.ruiz@example.org"
    entry = AuditLogEntry.objects.get(action=AuditAction.CONTACT_UPDATED, object_id=str(contact.pk))
    assert entry.changes == {"email": ["ana@example.com", "ana.ruiz@example.org"]}
    device = Device.objects.get(system_identifier="10050000001")
    assert list(device.tags.values_list("name", flat=True)) == ["feeder:14"]
    tag_entry = AuditLogEntry.objects.get(action=AuditAction.DEVICE_UPDATED, object_id=str(device.pk))
    assert tag_entry.changes == {"tags": [[], ["feeder:14"]]}


def test_any_invalid_row_writes_nothing_and_every_error_is_reported(workspace):
    DeviceFactory(
        site__contact__workspace=workspace, site__contact__reference_id="OWNER-9", system_identifier="TG-TAKEN"
    )
    before = (Contact.objects.count(), Site.objects.count(), Device.objects.count(), Enrollment.objects.count())
    job = run(
        workspace,
        csv_bytes(
            ROW_A1,  # valid on its own
            "ACCT-3,,Li,not-an-email,12,2 Oak St,Bend,OR,97701,Telsa,1.23E+15,nope,",
            "ACCT-4,Cy,Wu,,,3 Oak St,Bend,OR,97701,tesla,TG-TWICE,vpp,",
            "ACCT-5,Di,Ng,,,4 Oak St,Bend,OR,97701,tesla,TG-TWICE,vpp,",
            "ACCT-6,Ed,Ho,,,5 Oak St,Bend,OR,97701,tesla,TG-TAKEN,vpp,",
        ),
    )
    assert job.status == ImportJobStatus.INVALID
    assert (Contact.objects.count(), Site.objects.count(), Device.objects.count(), Enrollment.objects.count()) == before
    found = messages(job)
    expected = [
        "row 3, email: not a valid e-mail address",
        "row 3, firstName: required, but empty",
        'row 3, manufacturerSlug: unknown manufacturer; did you mean "tesla"?',
        "row 3, phone: not a valid phone number for US",
        "row 3, programSlug: no program with this slug in this workspace (programs: vpp)",
    ]
    for message in expected:
        assert message in found, (message, found)
    assert any(m.startswith("row 3, systemIdentifier:") and "scientific notation" in m for m in found)
    assert any(m.startswith("row 4, systemIdentifier:") and "different owners" in m for m in found)
    assert any(m.startswith("row 5, systemIdentifier:") and "different owners" in m for m in found)
    assert any(m.startswith("row 6, systemIdentifier:") and "already belongs" in m and "OWNER-9" in m for m in found)
    assert {e["value"] for e in job.errors if e["row"] == 3 and e["column"] == "manufacturerSlug"} == {"Telsa"}
    statuses = {row: status for row, status, *_ in job.row_statuses}
    assert statuses == {2: "new", 3: "error", 4: "error", 5: "error", 6: "error"}


def test_manufacturer_and_program_match_case_insensitively_and_aliases(workspace):
    job = run(
        workspace,
        csv_bytes(
            "ACCT-7,Fay,Lo,,,7 Oak St,Bend,OR,97701,SolarEdge-Monitoring-API,SE-1,VPP,",
            "ACCT-8,Gus,Lo,,,8 Oak St,Bend,OR,97701,TESLA,TG-8,vpp,",
        ),
    )
    assert job.status == ImportJobStatus.IMPORTED, messages(job)
    assert Device.objects.get(system_identifier="SE-1").manufacturer.slug == "solaredge"


def test_real_world_file_quirks(workspace):
    header = "\ufeffReference ID;First Name;last_name;E-Mail;Phone;Street One;City;State;Postal Code;manufacturerSlugs;System Identifier;Program Slug;Tags;Notes"
    lines = [
        'ACCT-9;José;Núñez;jose@example.com;;"12 Elm St, Apt 4";Bend;OR;97701;tesla;TG-9;vpp;"feeder:1;zone:b";"a note, with comma\nand a newline"',
        "ACCT-10;Zoë;Ærø;;;13 Elm St;Bend;OR;97701;tesla;TG-10;vpp;;",
        ";;;;;;;;;;;;;",
        "",
    ]
    for encoding in ("utf-8", "cp1252"):
        data = csv_bytes(
            *lines, header=header if encoding == "utf-8" else header.lstrip("\ufeff"), encoding=encoding, newline="\r\n"
        )
        fleet_file = read_fleet_file(data)
        assert len(fleet_file.records) == 2
        assert fleet_file.records[0]["firstName"] == "José" and fleet_file.records[1]["lastName"] == "Ærø"
        assert fleet_file.records[0]["streetOne"] == "12 Elm St, Apt 4"
        assert any("Notes" in w for w in fleet_file.warnings)
    job = run(workspace, csv_bytes(*lines, header=header, newline="\r\n"))
    assert job.status == ImportJobStatus.IMPORTED, messages(job)
    assert any("Notes" in warning for warning in job.warnings)
    assert sorted(Device.objects.get(system_identifier="TG-9").tags.values_list("name", flat=True)) == [
        "feeder:1",
        "zone:b",
    ]
    assert Contact.objects.get(reference_id="ACCT-9").first_name == "José"


def test_tab_delimited_and_latin1(workspace):
    data = csv_bytes(ROW_B1.replace(",", "\t"), header=HEADER.replace(",", "\t"), encoding="latin-1")
    job = run(workspace, data)
    assert job.status == ImportJobStatus.IMPORTED, messages(job)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"   \n\n", "The file is empty"),
        (HEADER.encode() + b"\n\n", "header row but no data rows"),
        (b"foo,bar\n1,2\n", "No header row found"),
    ],
)
def test_empty_or_header_only_files_get_a_clear_error(workspace, data, message):
    with pytest.raises(FleetFileError, match=message):
        read_fleet_file(data)
    job = run(workspace, data or b"\n")
    assert job.status == ImportJobStatus.INVALID
    assert message.split()[0] in job.errors[0]["message"]


def test_missing_required_column_is_reported_on_every_row(workspace):
    header = HEADER.replace(",programSlug", "")
    job = run(workspace, csv_bytes(ROW_B1.replace(",vpp", ""), header=header))
    assert "row 2, programSlug: required column is missing from the file" in messages(job)


def test_an_xlsx_file_imports_like_a_csv(workspace):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER.split(","))
    sheet.append(
        ["ACCT-11", "Hal", "Ito", "", 5415550111, "11 Elm St", "Bend", "OR", 97701, "tesla", "TG-11", "vpp", ""]
    )
    sheet.append(
        ["ACCT-12", "Ida", "Ito", "", "", "12 Elm St", "Bend", "OR", "97701", "tesla", 1.23456789012345e15, "vpp", ""]
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = run(workspace, buffer.getvalue(), filename="fleet.xlsx")
    assert job.status == ImportJobStatus.INVALID
    assert [(e["row"], e["column"]) for e in job.errors] == [(3, "systemIdentifier")]  # the mangled serial
    assert Contact.objects.count() == 0


def test_unknown_postal_code_is_a_warning_not_an_error(workspace):
    job = run(workspace, csv_bytes(ROW_B1.replace("97756", "00000")))
    assert job.status == ImportJobStatus.IMPORTED
    assert any("no offline coordinates for postal code 00000" in w for w in job.warnings)
    assert Site.objects.get().latitude is None


def test_a_second_import_of_a_changed_contact_reuses_its_site_and_moves_nothing(workspace):
    run(workspace, csv_bytes(ROW_A1))
    job = run(workspace, csv_bytes(ROW_A1, ROW_A2))
    assert (job.counts["new"], job.counts["unchanged"]) == (1, 1)
    assert Site.objects.count() == 1


def test_plan_alone_writes_nothing(workspace):
    fleet_file = read_fleet_file(csv_bytes(ROW_A1, ROW_B1))
    plan = plan_fleet_import(workspace=workspace, fleet_file=fleet_file)
    assert plan.ok and plan.counts()["new"] == 2
    assert Contact.objects.count() == 0
    apply_fleet_import(plan=plan, workspace=workspace, actor=UserFactory())
    assert Contact.objects.count() == 2


def test_conflicting_owners_are_reported_even_when_a_row_also_fails_otherwise(workspace):
    job = run(
        workspace,
        csv_bytes(
            "ACCT-20,,Li,,,2 Oak St,Bend,OR,97701,tesla,TG-20,vpp,",  # also misses firstName
            "ACCT-21,Cy,Wu,,,3 Oak St,Bend,OR,97701,tesla,TG-20,vpp,",
        ),
    )
    found = messages(job)
    assert "row 2, firstName: required, but empty" in found
    assert sum("different owners" in m for m in found) == 2
