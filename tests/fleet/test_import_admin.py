"""The import as staff use it in the admin, the background path with its progress, and the sweep."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from fleet.choices import DeviceState, ImportJobStatus
from fleet.importing import services as import_services
from fleet.importing.services import import_job_create, import_jobs_sweep
from fleet.models import Device, ImportJob
from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from tests.fleet.test_importing import ROW_A1, ROW_A2, ROW_B1, csv_bytes
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(client):
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    user = staff_user("ops", workspace, Role.OPS)
    assert client.login(username="ops", password=PASSWORD)
    return workspace, user


def upload(client, workspace, data, name="fleet.csv"):
    return client.post(
        reverse("admin:fleet_importjob_add"),
        {"workspace": workspace.pk, "file": SimpleUploadedFile(name, data, content_type="text/csv")},
    )


def test_device_and_contact_lists_link_to_import_and_export(client, ops):
    for name in ("admin:fleet_device_changelist", "admin:fleet_contact_changelist"):
        page = client.get(reverse(name)).content.decode()
        assert reverse("admin:fleet_importjob_add") in page and "Export CSV" in page


def test_upload_preview_confirm(client, ops):
    workspace, user = ops
    response = upload(client, workspace, csv_bytes(ROW_A1, ROW_A2, ROW_B1))
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == ImportJobStatus.VALIDATED and job.created_by == user
    assert not Device.objects.exists()  # a preview writes nothing
    page = client.get(response["Location"]).content.decode()
    assert "Confirm import" in page
    assert page.count('<td class="row-new">new</td>') == 3
    response = client.post(reverse("admin:fleet_importjob_confirm", args=[job.pk]), follow=True)
    assert "Imported: 3 new" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJobStatus.IMPORTED and job.confirmed_by == user
    assert Device.objects.filter(workspace=workspace, state=DeviceState.REGISTERED).count() == 3
    # a second confirm of the same job is refused
    response = client.post(reverse("admin:fleet_importjob_confirm", args=[job.pk]), follow=True)
    assert "only a checked file can be imported" in response.content.decode()
    assert Device.objects.count() == 3


def test_errors_are_listed_row_column_value_why_and_downloadable(client, ops):
    workspace, _ = ops
    upload(client, workspace, csv_bytes(ROW_A1, ROW_B1.replace("franklinwh", "frankln")))
    job = ImportJob.objects.get()
    assert job.status == ImportJobStatus.INVALID
    page = client.get(reverse("admin:fleet_importjob_change", args=[job.pk])).content.decode()
    assert "row 3, manufacturerSlug: “frankln” — unknown manufacturer; did you mean &quot;franklinwh&quot;?" in page
    assert "Confirm import" not in page
    errors_csv = client.get(reverse("admin:fleet_importjob_errors", args=[job.pk])).content.decode()
    assert "3,manufacturerSlug,frankln," in errors_csv


def test_another_workspaces_job_is_404(client, ops):
    other = WorkspaceFactory()
    job = import_job_create(workspace=other, filename="x.csv", data=csv_bytes(ROW_A1), actor=None)
    for name in ("admin:fleet_importjob_change", "admin:fleet_importjob_status", "admin:fleet_importjob_errors"):
        assert client.get(reverse(name, args=[job.pk])).status_code == 404
    assert client.post(reverse("admin:fleet_importjob_confirm", args=[job.pk])).status_code == 404


def test_customer_support_cannot_import(client):
    workspace = WorkspaceFactory()
    staff_user("support", workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support", password=PASSWORD)
    assert client.get(reverse("admin:fleet_importjob_add")).status_code == 403
    page = client.get(reverse("admin:fleet_device_changelist")).content.decode()
    assert reverse("admin:fleet_importjob_add") not in page


def test_export_from_the_device_list_follows_the_filters(client, ops):
    workspace, _ = ops
    upload(client, workspace, csv_bytes(ROW_A1, ROW_B1))
    client.post(reverse("admin:fleet_importjob_confirm", args=[ImportJob.objects.get().pk]))
    response = client.get(reverse("admin:fleet_device_export"), {"q": "TG-0001"})
    lines = response.content.decode().strip().splitlines()
    assert response["Content-Type"].startswith("text/csv")
    assert len(lines) == 2 and "TG-0001" in lines[1]


def test_large_files_run_in_the_background_with_progress(
    client, ops, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Above the threshold the upload queues a Celery job; progress moves through both phases."""
    workspace, _ = ops
    settings.IMPORT_SYNC_MAX_BYTES = 100
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued = []
    from fleet.importing import tasks

    monkeypatch.setattr(tasks.import_job_validate_task, "delay", lambda job_id: queued.append(("validate", job_id)))
    monkeypatch.setattr(
        tasks.import_job_apply_task,
        "delay",
        lambda job_id, user_id, api_key_id=None: queued.append(("apply", job_id, user_id)),
    )
    rows = [f"ACCT-{n},F{n},L{n},,,{n} Elm St,Bend,OR,97701,tesla,TG-{n:06d},vpp,feeder:{n % 7}" for n in range(5000)]
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, workspace, csv_bytes(*rows))
    job = ImportJob.objects.get()
    assert queued == [("validate", job.pk)] and job.status == ImportJobStatus.UPLOADED

    seen = []
    original = import_services.cache.set

    def record(key, value, timeout=None):
        seen.append((value["phase"], value["done"], value["total"]))
        original(key, value, timeout)

    monkeypatch.setattr(import_services.cache, "set", record)
    import_services.import_job_validate(job=job)  # what the worker runs
    checking = [done for phase, done, _ in seen if phase == "checking"]
    assert len(checking) >= 2 and checking == sorted(checking) and checking[-1] == 5000
    status = client.get(reverse("admin:fleet_importjob_status", args=[job.pk])).json()
    assert status["status"] == "validated" and status["done"] == status["total"] == 5000
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:fleet_importjob_confirm", args=[job.pk]))
    assert queued[-1][0] == "apply"
    seen.clear()
    import_services.import_job_apply(job=job, actor=None)  # what the worker runs
    phases = [phase for phase, _, _ in seen]
    assert phases.index("importing") > phases.index("checking")  # re-checked, then written
    importing = [done for phase, done, _ in seen if phase == "importing"]
    # contacts, sites, devices and enrollments: 5,000 each
    assert len(importing) >= 2 and importing == sorted(importing) and importing[-1] == 20000
    assert Device.objects.filter(workspace=workspace).count() == 5000


def test_sweep_removes_abandoned_preview_files(ops, settings):
    workspace, _ = ops
    settings.IMPORT_PREVIEW_TTL_HOURS = 24
    old = import_job_create(workspace=workspace, filename="old.csv", data=csv_bytes(ROW_A1), actor=None)
    import_services.import_job_validate(job=old)
    fresh = import_job_create(workspace=workspace, filename="new.csv", data=csv_bytes(ROW_A1), actor=None)
    ImportJob.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(hours=25))
    old_path = ImportJob.objects.get(pk=old.pk).file.path
    assert import_jobs_sweep() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == ImportJobStatus.EXPIRED and not old.file
    import os

    assert not os.path.exists(old_path)
    assert fresh.file and fresh.status == ImportJobStatus.UPLOADED


def test_sweep_marks_an_interrupted_import_failed(ops, settings):
    workspace, _ = ops
    job = import_job_create(workspace=workspace, filename="x.csv", data=csv_bytes(ROW_A1), actor=None)
    import_services.import_job_validate(job=job)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJobStatus.IMPORTING, last_updated=timezone.now() - timedelta(hours=3)
    )
    recent = import_job_create(workspace=workspace, filename="y.csv", data=csv_bytes(ROW_A1), actor=None)
    ImportJob.objects.filter(pk=recent.pk).update(status=ImportJobStatus.IMPORTING)
    import_jobs_sweep()
    job.refresh_from_db()
    recent.refresh_from_db()
    assert job.status == ImportJobStatus.FAILED and "Interrupted" in job.status_reason
    assert recent.status == ImportJobStatus.IMPORTING  # still running, left alone


def test_an_upload_over_the_limit_is_a_form_error(client, ops, settings):
    workspace, _ = ops
    settings.IMPORT_MAX_BYTES = 100
    response = upload(client, workspace, csv_bytes(ROW_A1, ROW_A2, ROW_B1))
    assert response.status_code == 200
    assert "the limit is 100" in str(response.context["form"].errors["file"])
    assert not ImportJob.objects.exists()
