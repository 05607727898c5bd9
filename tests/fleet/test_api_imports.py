"""`/v1/imports`: the fleet import through the API, the same job as the admin's and the CLI's."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fleet.choices import DeviceState, ImportJobStatus
from fleet.models import Device, ImportJob
from tests.api_support import api_client_for
from tests.factories import WorkspaceFactory, make_program
from tests.fleet.test_importing import ROW_A1, ROW_A2, ROW_B1, csv_bytes
from texture_portal.choices import AuditAction
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    return workspace


def upload(client, data: bytes, **fields):
    return client.post("/v1/imports", {"file": SimpleUploadedFile("fleet.csv", data), **fields}, format="multipart")


def test_upload_imports_and_reports_the_job(workspace):
    client = api_client_for(workspace)
    response = upload(client, csv_bytes(ROW_A1, ROW_A2, ROW_B1))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == ImportJobStatus.IMPORTED
    assert (body["counts"]["new"], body["errorCount"], body["rowCount"]) == (3, 0, 3)
    assert Device.objects.filter(workspace=workspace, state=DeviceState.REGISTERED).count() == 3
    detail = client.get(f"/v1/imports/{body['id']}").json()
    assert detail["status"] == "imported" and detail["fileName"] == "fleet.csv"
    entry = AuditLogEntry.objects.get(action=AuditAction.IMPORT_COMPLETED)
    assert entry.actor_label.startswith("API key") and entry.source == "api"


def test_errors_are_reported_row_column_value_and_nothing_is_written(workspace):
    client = api_client_for(workspace)
    bad = ROW_B1.replace("franklinwh", "frankln")
    rows = [ROW_A1] + [
        bad.replace("ACCT-2", f"ACCT-{n}").replace("10050000001", f"1005{n:07d}") for n in range(10, 160)
    ]
    body = upload(client, csv_bytes(*rows)).json()
    assert body["status"] == "invalid" and body["errorCount"] == 150
    assert len(body["errors"]) == 100  # the first hundred inline
    assert body["errors"][0] == {
        "row": 3,
        "column": "manufacturerSlug",
        "value": "frankln",
        "message": 'unknown manufacturer; did you mean "franklinwh"?',
    }
    assert not Device.objects.exists()
    first = client.get(f"/v1/imports/{body['id']}/errors", {"perPage": 100}).json()
    second = client.get(first["next"]).json()
    assert len(first["data"]) == 100 and len(second["data"]) == 50 and second["next"] is None
    assert second["data"][-1]["row"] == 152


def test_dry_run_then_confirm(workspace):
    client = api_client_for(workspace)
    body = upload(client, csv_bytes(ROW_A1), dryRun="true").json()
    assert body["status"] == "validated" and not Device.objects.exists()
    confirmed = client.post(f"/v1/imports/{body['id']}/confirm").json()
    assert confirmed["status"] == "imported"
    assert Device.objects.count() == 1
    again = client.post(f"/v1/imports/{body['id']}/confirm")
    assert again.status_code == 400 and again.json()["error"]["code"] == "rejected"


def test_another_workspaces_job_is_404(workspace):
    other = WorkspaceFactory()
    make_program(other, slug="vpp")
    job_id = upload(api_client_for(other), csv_bytes(ROW_A1)).json()["id"]
    client = api_client_for(workspace)
    for path in (f"/v1/imports/{job_id}", f"/v1/imports/{job_id}/errors"):
        assert client.get(path).status_code == 404
    assert client.post(f"/v1/imports/{job_id}/confirm").status_code == 404
    assert [job["id"] for job in client.get("/v1/imports").json()["data"]] == []


def test_a_large_file_runs_in_the_background(workspace, settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.IMPORT_SYNC_MAX_BYTES = 10
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from fleet.importing import tasks

    queued = []
    monkeypatch.setattr(tasks.import_job_run_task, "delay", lambda *args: queued.append(args))
    client = api_client_for(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        body = upload(client, csv_bytes(ROW_A1)).json()
    assert body["status"] == "uploaded" and body["progress"] == {"phase": "", "done": 0, "total": 0}
    job_id, user_id, api_key_id, dry_run = queued[0]
    assert job_id == body["id"] and user_id is None and api_key_id and dry_run is False
    tasks.import_job_run_task(*queued[0])  # what the worker runs
    assert client.get(f"/v1/imports/{job_id}").json()["status"] == "imported"
    assert ImportJob.objects.get(pk=job_id).status == ImportJobStatus.IMPORTED


def test_upload_without_a_file_is_a_400_in_the_one_error_shape(workspace):
    response = api_client_for(workspace).post("/v1/imports", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]


def test_a_file_over_the_limit_is_refused_before_it_is_read(workspace, settings):
    settings.IMPORT_MAX_BYTES = 100
    response = upload(api_client_for(workspace), csv_bytes(ROW_A1, ROW_B1))
    assert response.status_code == 400 and "the limit is 100" in str(response.json()["error"]["fields"]["file"])
    assert not ImportJob.objects.exists()


def test_a_background_confirm_by_api_key_is_audited_as_that_key(
    workspace, settings, monkeypatch, django_capture_on_commit_callbacks
):
    client = api_client_for(workspace)
    body = upload(client, csv_bytes(ROW_A1), dryRun="true").json()
    settings.IMPORT_SYNC_MAX_BYTES = 10
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from fleet.importing import tasks

    queued = []
    monkeypatch.setattr(tasks.import_job_apply_task, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/v1/imports/{body['id']}/confirm").status_code == 202
    job_id, user_id, api_key_id = queued[0]
    assert user_id is None and api_key_id == client.api_key.pk
    tasks.import_job_apply_task(*queued[0])
    entry = AuditLogEntry.objects.get(action=AuditAction.IMPORT_COMPLETED)
    assert entry.actor_label.startswith("API key")
