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


# -- participation and opt-out -------------------------------------------------------------------------------


@pytest.fixture
def running(settings):
    from dispatch import engine
    from integrations.models import WorkspaceIntegration
    from tests.dispatch.test_engine import live_device, running_event

    program = make_program(WorkspaceFactory(), slug="peak")
    WorkspaceIntegration.objects.create(workspace=program.workspace, channel="tesla", enabled=True, credentials={})
    included = [live_device(program) for _ in range(3)]
    stormy = live_device(program, is_storm_mode_active=True)
    event = running_event(program)
    engine.dispatch_tick()
    return program, event, included, stormy


def test_an_events_participation_lists_every_targeted_device_with_filters_and_pages(running):
    program, event, included, stormy = running
    client = api_client_for(program.workspace)
    page = client.get(f"/v1/dispatch-events/{event.pk}/participation", {"perPage": 2})
    assert page.status_code == 200, page.content
    first = page.json()
    assert len(first["data"]) == 2 and first["next"]
    rest = client.get(first["next"]).json()
    assert rest["next"] is None
    ids = {row["deviceId"] for row in first["data"] + rest["data"]}
    assert ids == {d.pk for d in [*included, stormy]}
    excluded = client.get(f"/v1/dispatch-events/{event.pk}/participation", {"reasonCode": "storm_guard"}).json()["data"]
    assert [(row["deviceId"], row["status"]) for row in excluded] == [(stormy.pk, "excluded")]
    assert "Storm Guard" in excluded[0]["reason"]
    assert len(client.get(f"/v1/dispatch-events/{event.pk}/participation", {"status": "included"}).json()["data"]) == 3
    other = api_client_for(WorkspaceFactory())
    assert_error(other.get(f"/v1/dispatch-events/{event.pk}/participation"), 404)


def test_an_integrator_opts_a_device_out_with_a_reason(running):
    program, event, included, _ = running
    client = api_client_for(program.workspace)
    url = f"/v1/dispatch-events/{event.pk}/opt-out"
    assert "reason" in assert_error(client.post(url, {"deviceId": included[0].pk}, format="json"), 400)["fields"]
    done = client.post(url, {"deviceId": included[0].pk, "reason": "Customer asked by phone"}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "opted_out" and done.json()["optedOutAt"]
    assert_error(client.post(url, {"deviceId": included[0].pk, "reason": "again"}, format="json"), 400, "rejected")
    stranger = DeviceFactory(site__contact__workspace=program.workspace)
    refused = client.post(url, {"deviceId": stranger.pk, "reason": "x"}, format="json")
    assert "not enrolled" in assert_error(refused, 400, "rejected")["message"]
    elsewhere = DeviceFactory()
    assert_error(client.post(url, {"deviceId": elsewhere.pk, "reason": "x"}, format="json"), 404)
    command = Command.objects.get(dispatch_event=event, device=included[0], purpose="action")
    assert command.status == "skipped"  # its turn in the ramp had not come: nothing to restore


def test_opting_out_before_the_event_starts_keeps_the_device_out(running):
    from dispatch import engine
    from dispatch.models import Participation
    from tests.dispatch.test_engine import running_event

    program, _, included, _ = running
    later = running_event(program, start_ago=timedelta(minutes=-30))  # scheduled, starts in 30 minutes
    client = api_client_for(program.workspace)
    response = client.post(
        f"/v1/dispatch-events/{later.pk}/opt-out", {"deviceId": included[1].pk, "reason": "On vacation"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "opted_out"
    later.__class__.objects.filter(pk=later.pk).update(starts_at=timezone.now() - timedelta(minutes=1))
    later.actions.update(starts_at=timezone.now() - timedelta(minutes=1))
    engine.dispatch_tick()
    assert Participation.objects.get(event=later, device=included[1]).status == "opted_out"
    assert not Command.objects.filter(dispatch_event=later, device=included[1]).exists()
