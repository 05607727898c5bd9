"""A key sees only its workspace: every list holds only its rows, every detail of another workspace is 404."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.api_scene import build_scene
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import WorkspaceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]

# (list URL, detail URL of a scene object, the object's id in the list rows)
ENDPOINTS = [
    ("/v1/contacts", lambda s: f"/v1/contacts/{s.contact.pk}", lambda s: s.contact.pk),
    ("/v1/sites", lambda s: f"/v1/sites/{s.site.pk}", lambda s: s.site.pk),
    ("/v1/devices", lambda s: f"/v1/devices/{s.device.pk}", lambda s: s.device.pk),
    ("/v1/programs", lambda s: f"/v1/programs/{s.program.slug}", lambda s: s.program.pk),
    ("/v1/event-strategies", lambda s: f"/v1/event-strategies/{s.strategy.pk}", lambda s: s.strategy.pk),
    ("/v1/enrollments", lambda s: f"/v1/enrollments/{s.enrollment.pk}", lambda s: s.enrollment.pk),
    ("/v1/dispatch-events", lambda s: f"/v1/dispatch-events/{s.dispatch_event.pk}", lambda s: s.dispatch_event.pk),
    ("/v1/commands", lambda s: f"/v1/commands/{s.command.pk}", lambda s: s.command.pk),
    ("/v1/destinations", lambda s: f"/v1/destinations/{s.destination.pk}", lambda s: s.destination.pk),
    ("/v1/events", lambda s: f"/v1/events/{s.event.pk}", lambda s: s.event.pk),
]
NESTED = [
    lambda s: f"/v1/devices/{s.device.pk}/telemetry",
    lambda s: f"/v1/devices/{s.device.pk}/commands",
    lambda s: f"/v1/destinations/{s.destination.pk}/attempts",
]


@pytest.fixture
def two_scenes():
    a = build_scene(WorkspaceFactory(), tag="feeder:1", serial_prefix="ALPHA")
    b = build_scene(WorkspaceFactory(), tag="feeder:1", serial_prefix="BETA")
    return a, b, api_client_for(a.workspace)


@pytest.mark.parametrize(("list_url", "detail_url", "row_id"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_lists_and_details_are_scoped_to_the_keys_workspace(two_scenes, list_url, detail_url, row_id):
    a, b, client = two_scenes
    listed = client.get(list_url)
    assert listed.status_code == 200
    ids = {row["id"] for row in listed.json()["data"]}
    assert row_id(a) in ids and row_id(b) not in ids
    assert client.get(detail_url(a)).status_code == 200
    assert_error(client.get(detail_url(b)), 404, "not_found")


@pytest.mark.parametrize("nested_url", NESTED, ids=["telemetry", "device-commands", "attempts"])
def test_histories_of_another_workspaces_object_are_404(two_scenes, nested_url):
    a, b, client = two_scenes
    assert client.get(nested_url(a)).status_code == 200
    assert_error(client.get(nested_url(b)), 404, "not_found")


def test_writes_cannot_reach_another_workspace(two_scenes):
    a, b, client = two_scenes
    assert_error(client.post(f"/v1/enrollments/{b.enrollment.pk}/reject", {"reason": "x"}, format="json"), 404)
    assert_error(client.post(f"/v1/dispatch-events/{b.dispatch_event.pk}/cancel", {"reason": "x"}, format="json"), 404)
    assert_error(
        client.post(
            "/v1/commands/battery/set-reserve",
            {"deviceId": b.device.pk, "input": {"chargePercentage": 20}},
            format="json",
        ),
        404,
    )
    assert_error(
        client.post("/v1/enrollments", {"deviceId": b.device.pk, "programSlug": a.program.slug}, format="json"), 404
    )
    # a slug of another workspace's program, named in the body, is not found either
    assert_error(
        client.post("/v1/enrollments", {"deviceId": a.device.pk, "programSlug": b.program.slug}, format="json"), 404
    )
    start = timezone.now() + timedelta(days=1)
    event = {
        "programSlug": b.program.slug,
        "name": "Borrowed",
        "startsAt": start.isoformat(),
        "endsAt": (start + timedelta(hours=1)).isoformat(),
        "actions": [
            {"type": "discharge", "startsAt": start.isoformat(), "endsAt": (start + timedelta(hours=1)).isoformat()}
        ],
    }
    assert_error(client.post("/v1/dispatch-events", event, format="json"), 404)
    assert_error(client.post(f"/v1/destinations/{b.destination.pk}/rotate-secret", format="json"), 404)
    assert_error(client.patch(f"/v1/destinations/{b.destination.pk}", {"label": "mine"}, format="json"), 404)
    assert_error(client.delete(f"/v1/destinations/{b.destination.pk}"), 404)
    # filters never widen the scope
    rows = client.get("/v1/devices", {"tag": "feeder:1"}).json()["data"]
    assert [row["id"] for row in rows] == [a.device.pk]
    assert client.get("/v1/devices", {"referenceId": b.contact.reference_id}).json()["data"] == []
