"""Programs, strategies and enrollments through the API: approve / reject / unenroll as explicit actions."""

import pytest

from programs.models import Enrollment
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, WorkspaceFactory, make_program
from texture_portal.events.models import PlatformEvent
from texture_portal.models import AuditLogEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


@pytest.fixture
def manual_program():
    workspace = WorkspaceFactory()
    return make_program(workspace, slug="winter-peak", enrollment_approval="manual")


def test_programs_by_slug_and_strategy_versions(manual_program):
    client = api_client_for(manual_program.workspace)
    body = client.get("/v1/programs/winter-peak").json()
    assert body["slug"] == "winter-peak" and body["enrollmentApproval"] == "manual" and body["phase"] == "kickoff"
    assert body["timezone"] == "UTC"
    assert [p["slug"] for p in client.get("/v1/programs", {"phase": "kickoff"}).json()["data"]] == ["winter-peak"]
    assert client.get("/v1/programs", {"phase": "launched"}).json()["data"] == []
    make_program(manual_program.workspace, slug="summer-peak")  # its strategy must not come back
    strategies = client.get("/v1/event-strategies", {"program": "winter-peak"}).json()["data"]
    assert [s["programSlug"] for s in strategies] == ["winter-peak"]
    assert strategies[0]["baseline"] == {
        "days": 10, "highest": None, "lookbackDays": 45, "sameDayType": True, "minDays": 5,
        "adjustment": "multiplicative", "adjustmentWindowStartMinutes": 240, "adjustmentWindowEndMinutes": 60,
        "factorMin": 0.8, "factorMax": 1.2,
    }  # fmt: skip
    everything = client.get("/v1/event-strategies").json()["data"]
    assert sorted(s["programSlug"] for s in everything) == ["summer-peak", "winter-peak"]
    assert_error(client.get("/v1/programs/nope"), 404)


def test_enroll_then_approve(manual_program):
    device = DeviceFactory(site__contact__workspace=manual_program.workspace)
    client = api_client_for(manual_program.workspace)
    created = client.post("/v1/enrollments", {"deviceId": device.pk, "programSlug": "winter-peak"}, format="json")
    assert created.status_code == 201 and created.json()["status"] == "submitted"
    enrollment_id = created.json()["id"]
    approved = client.post(f"/v1/enrollments/{enrollment_id}/approve", format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert Enrollment.objects.get(pk=enrollment_id).status == "approved"
    entry = AuditLogEntry.objects.filter(object_id=str(enrollment_id), action="enrollment.approved").get()
    assert entry.source == "api" and entry.actor is None and entry.actor_label.startswith("API key tpk_")
    assert PlatformEvent.objects.filter(type="enrollment.approved", data__id=enrollment_id).exists()
    # approving twice is a conflict, in the one error shape
    assert_error(client.post(f"/v1/enrollments/{enrollment_id}/approve", format="json"), 409, "invalid_transition")
    unenrolled = client.post(f"/v1/enrollments/{enrollment_id}/unenroll", {"reason": "moved out"}, format="json")
    assert unenrolled.json()["status"] == "unenrolled"
    # enrolling the same device again is refused by the service
    again = client.post("/v1/enrollments", {"deviceId": device.pk, "programSlug": "winter-peak"}, format="json")
    assert_error(again, 400, "rejected")


def test_reject_needs_a_reason(manual_program):
    device = DeviceFactory(site__contact__workspace=manual_program.workspace)
    client = api_client_for(manual_program.workspace)
    enrollment_id = client.post(
        "/v1/enrollments", {"deviceId": device.pk, "programSlug": "winter-peak"}, format="json"
    ).json()["id"]
    error = assert_error(client.post(f"/v1/enrollments/{enrollment_id}/reject", {}, format="json"), 400)
    assert "reason" in error["fields"]
    rejected = client.post(f"/v1/enrollments/{enrollment_id}/reject", {"reason": "not eligible"}, format="json")
    assert rejected.json()["status"] == "rejected" and rejected.json()["reason"] == "not eligible"
    listed = client.get("/v1/enrollments", {"status": "rejected", "program": "winter-peak"}).json()["data"]
    assert [row["id"] for row in listed] == [enrollment_id]


def test_enrollment_body_errors(manual_program):
    client = api_client_for(manual_program.workspace)
    error = assert_error(client.post("/v1/enrollments", {"deviceId": "x"}, format="json"), 400, "validation_error")
    assert set(error["fields"]) == {"deviceId", "programSlug"}
    assert_error(client.post("/v1/enrollments", [1, 2], format="json"), 400)
    assert_error(client.post("/v1/enrollments", {"deviceId": 999999, "programSlug": "winter-peak"}, format="json"), 404)


def test_a_program_shows_its_timezone_and_times_stay_utc():
    program = make_program(WorkspaceFactory(), slug="oregon-vpp", timezone="America/Los_Angeles")
    body = api_client_for(program.workspace).get("/v1/programs/oregon-vpp").json()
    assert body["timezone"] == "America/Los_Angeles"
    assert body["createdAt"].endswith(("Z", "+00:00"))
