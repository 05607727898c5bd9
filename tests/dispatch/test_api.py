"""Dispatch events (create, schedule, cancel) and commands (`POST /v1/commands/{deviceType}/{action}`)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.models import Command
from fleet.models import Manufacturer
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, WorkspaceFactory, make_program

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


def event_body(program_slug, start, **extra):
    return {
        "programSlug": program_slug,
        "name": "Evening peak",
        "startsAt": start.isoformat(),
        "endsAt": (start + timedelta(hours=2)).isoformat(),
        "targetTags": ["feeder:12"],
        "actions": [
            {"type": "discharge", "startsAt": start.isoformat(), "endsAt": (start + timedelta(hours=1)).isoformat()}
        ],
        **extra,
    }


def test_create_schedule_cancel_a_dispatch_event():
    program = make_program(WorkspaceFactory(), slug="peak")
    client = api_client_for(program.workspace)
    start = timezone.now() + timedelta(days=1)
    created = client.post("/v1/dispatch-events", event_body("peak", start), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft" and body["targetTags"] == ["feeder:12"] and body["isTest"] is True
    assert [a["type"] for a in body["actions"]] == ["discharge"]
    scheduled = client.post(f"/v1/dispatch-events/{body['id']}/schedule", format="json")
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "scheduled"
    assert_error(client.post(f"/v1/dispatch-events/{body['id']}/cancel", {}, format="json"), 400, "validation_error")
    cancelled = client.post(f"/v1/dispatch-events/{body['id']}/cancel", {"reason": "heat wave ended"}, format="json")
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["statusReason"] == "heat wave ended"
    assert_error(client.post(f"/v1/dispatch-events/{body['id']}/schedule", format="json"), 409, "invalid_transition")
    assert [e["id"] for e in client.get("/v1/dispatch-events", {"status": "cancelled"}).json()["data"]] == [body["id"]]


def test_domain_refusals_are_400_with_problems():
    program = make_program(WorkspaceFactory(), slug="peak")
    client = api_client_for(program.workspace)
    start = timezone.now() + timedelta(days=1)
    production = client.post("/v1/dispatch-events", event_body("peak", start, isTest=False), format="json")
    assert_error(production, 400, "rejected")
    past = timezone.now() - timedelta(hours=3)
    event_id = client.post("/v1/dispatch-events", event_body("peak", past), format="json").json()["id"]
    error = assert_error(client.post(f"/v1/dispatch-events/{event_id}/schedule", format="json"), 400, "rejected")
    assert "The event starts in the past." in error["fields"]["non_field"]
    bad = event_body("peak", start)
    bad["endsAt"] = bad["startsAt"]
    assert "endsAt" in assert_error(client.post("/v1/dispatch-events", bad, format="json"), 400)["fields"]


VALID = [
    ("battery", "set-operating-mode", {"operatingMode": "discharge", "minimumBatteryReserve": 20}),
    ("battery", "set-reserve", {"chargePercentage": 35}),
    ("charger", "set-operating-mode", {"operatingMode": "start-charging"}),
    ("vehicle", "set-operating-mode", {"operatingMode": "stop-charging"}),
    ("vehicle", "set-charge-limit", {"chargeLimit": "80"}),
]


@pytest.mark.parametrize(("device_type", "action", "command_input"), VALID, ids=[f"{d}:{a}" for d, a, _ in VALID])
def test_each_command_creates_a_pending_command(device_type, action, command_input):
    manufacturer = next(m for m in Manufacturer.objects.order_by("slug") if device_type in m.device_types)
    device = DeviceFactory(device_type=device_type, manufacturer=manufacturer)
    client = api_client_for(device.workspace)
    response = client.post(
        f"/v1/commands/{device_type}/{action}", {"deviceId": device.pk, "input": command_input}, format="json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert (
        body["status"] == "pending" and body["command"] == f"{device_type}:{action}" and body["deviceId"] == device.pk
    )
    command = Command.objects.get(pk=body["id"])
    assert command.requested_by is None and command.workspace_id == device.workspace_id
    if action == "set-charge-limit":
        assert command.input == {"chargeLimit": 80}
    assert client.get(f"/v1/commands/{body['id']}").json()["id"] == body["id"]


def test_command_validation_errors():
    device = DeviceFactory()
    client = api_client_for(device.workspace)

    def send(path, payload):
        return client.post(path, payload, format="json")

    assert_error(send("/v1/commands/battery/self-destruct", {"deviceId": device.pk, "input": {}}), 404, "not_found")
    assert_error(send("/v1/commands/toaster/set-reserve", {"deviceId": device.pk, "input": {}}), 404)
    error = assert_error(
        send("/v1/commands/battery/set-operating-mode", {"deviceId": device.pk, "input": {"operatingMode": "turbo"}}),
        400,
        "validation_error",
    )
    assert list(error["fields"]) == ["input.operatingMode"]
    error = assert_error(
        send("/v1/commands/battery/set-reserve", {"deviceId": device.pk, "input": {"chargePercentage": 101, "x": 1}}),
        400,
    )
    assert set(error["fields"]) == {"input.x"}
    error = assert_error(
        send("/v1/commands/battery/set-reserve", {"deviceId": device.pk, "input": {"chargePercentage": 101}}), 400
    )
    assert set(error["fields"]) == {"input.chargePercentage"}
    error = assert_error(
        send(
            "/v1/commands/battery/set-operating-mode",
            {
                "deviceId": device.pk,
                "input": {"operatingMode": "idle", "minimumBatteryReserve": 60, "maximumBatteryReserve": 40},
            },
        ),
        400,
    )
    assert "input.minimumBatteryReserve" in error["fields"]
    error = assert_error(
        send("/v1/commands/vehicle/set-charge-limit", {"deviceId": device.pk, "input": {"chargeLimit": 80}}), 400
    )
    assert "deviceId" in error["fields"]  # a battery is not a vehicle
    assert_error(send("/v1/commands/battery/set-reserve", {"deviceId": 10**9, "input": {"chargePercentage": 5}}), 404)
    assert Command.objects.count() == 0


def test_idempotency_key_returns_the_same_command():
    device = DeviceFactory()
    client = api_client_for(device.workspace)
    payload = {"deviceId": device.pk, "input": {"chargePercentage": 40}}
    first = client.post("/v1/commands/battery/set-reserve", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc-1")
    second = client.post("/v1/commands/battery/set-reserve", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc-1")
    third = client.post("/v1/commands/battery/set-reserve", payload, format="json")
    assert first.json()["id"] == second.json()["id"] != third.json()["id"]
    assert Command.objects.count() == 2
    listed = client.get("/v1/commands", {"deviceId": device.pk, "status": "pending"}).json()["data"]
    assert {row["id"] for row in listed} == {first.json()["id"], third.json()["id"]}


def test_an_idempotency_key_reused_for_another_request_is_a_409_not_a_silent_drop():
    device = DeviceFactory()
    client = api_client_for(device.workspace)
    first = client.post(
        "/v1/commands/battery/set-reserve",
        {"deviceId": device.pk, "input": {"chargePercentage": 40}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert first.status_code == 202
    other = client.post(
        "/v1/commands/battery/set-reserve",
        {"deviceId": device.pk, "input": {"chargePercentage": 60}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    error = assert_error(other, 409, "idempotency_key_reused")
    assert str(first.json()["id"]) in error["message"]
    too_long = client.post(
        "/v1/commands/battery/set-reserve",
        {"deviceId": device.pk, "input": {"chargePercentage": 40}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="x" * 151,
    )
    assert_error(too_long, 400)
    assert Command.objects.count() == 1
