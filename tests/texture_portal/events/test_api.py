"""Destinations and events through the API; destinations and the delivery log in the admin."""

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import WorkspaceFactory, staff_user
from texture_portal.choices import Role
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.services import event_emit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


@override_settings(ALLOW_PRIVATE_WEBHOOK_URLS=True)
def test_destination_crud_shows_the_secret_only_on_create_and_rotate():
    workspace = WorkspaceFactory()
    client = api_client_for(workspace)
    created = client.post(
        "/v1/destinations",
        {"label": "ERP", "url": "http://127.0.0.1:9/hook", "eventTypes": ["device.discovered", "command.failed"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["eventTypes"] == ["command.failed", "device.discovered"]
    destination = Destination.objects.get(pk=body["id"])
    assert destination.secret == body["secret"] and destination.workspace_id == workspace.pk
    read = client.get(f"/v1/destinations/{body['id']}").json()
    assert "secret" not in read and body["secret"] not in str(client.get("/v1/destinations").json())
    patched = client.patch(f"/v1/destinations/{body['id']}", {"label": "ERP prod", "isActive": False}, format="json")
    assert patched.json()["label"] == "ERP prod" and patched.json()["isActive"] is False
    assert patched.json()["deactivatedReason"].startswith("Deactivated by API key")
    rotated = client.post(f"/v1/destinations/{body['id']}/rotate-secret").json()
    assert rotated["secret"] != body["secret"] and Destination.objects.get(pk=body["id"]).secret == rotated["secret"]
    own = client.post(
        "/v1/destinations",
        {"label": "B", "url": "http://127.0.0.1:9/b", "secret": "my-own-secret-123456"},
        format="json",
    )
    assert own.json()["secret"] == "my-own-secret-123456"
    assert client.delete(f"/v1/destinations/{body['id']}").status_code == 204
    assert not Destination.objects.filter(pk=body["id"]).exists()


def test_destination_validation():
    client = api_client_for(WorkspaceFactory())
    error = assert_error(
        client.post("/v1/destinations", {"label": "x", "url": "not a url", "eventTypes": ["nope"]}, format="json"), 400
    )
    assert set(error["fields"]) == {"url", "eventTypes.0"}
    refused = client.post("/v1/destinations", {"label": "x", "url": "http://127.0.0.1:8000/hook"}, format="json")
    assert "private, loopback or reserved" in assert_error(refused, 400, "rejected")["message"]
    assert Destination.objects.count() == 0


def test_events_and_delivery_log():
    workspace = WorkspaceFactory()
    event_emit(workspace_id=workspace.pk, type="device.updated", key="dev-1", data={"id": 1})
    event_emit(workspace_id=workspace.pk, type="command.failed", key="cmd-1", data={"id": 2})
    client = api_client_for(workspace)
    rows = client.get("/v1/events", {"type": "command.failed"}).json()["data"]
    assert [(r["type"], r["key"], r["data"]) for r in rows] == [("command.failed", "cmd-1", {"id": 2})]
    with override_settings(ALLOW_PRIVATE_WEBHOOK_URLS=True):
        from texture_portal.events.services import destination_create

        destination = destination_create(workspace=workspace, label="x", url="http://127.0.0.1:9/", actor=None)
    event = PlatformEvent.objects.get(key="dev-1")
    DeliveryAttempt.objects.create(
        workspace=workspace,
        destination=destination,
        event=event,
        attempt=1,
        status=DeliveryStatus.FAILED,
        error="HTTP 500",
    )
    DeliveryAttempt.objects.create(
        workspace=workspace,
        destination=destination,
        event=PlatformEvent.objects.get(key="cmd-1"),
        attempt=1,
        status=DeliveryStatus.SUCCEEDED,
    )
    log = client.get(f"/v1/destinations/{destination.pk}/attempts", {"status": "failed"}).json()["data"]
    assert [(a["eventType"], a["attempt"], a["error"]) for a in log] == [("device.updated", 1, "HTTP 500")]
    everything = client.get(f"/v1/destinations/{destination.pk}/attempts").json()["data"]
    assert sorted(a["eventType"] for a in everything) == ["command.failed", "device.updated"]


def test_engineering_manages_destinations_in_the_admin_and_others_only_read(client):
    workspace = WorkspaceFactory()
    engineer = staff_user("eng", workspace, Role.ENGINEERING)
    client.force_login(engineer)
    with override_settings(ALLOW_PRIVATE_WEBHOOK_URLS=True):
        response = client.post(
            reverse("admin:events_destination_add"),
            {
                "workspace": workspace.pk,
                "label": "ERP",
                "url": "http://127.0.0.1:9/hook",
                "event_types": ["site.created"],
            },
            follow=True,
        )
    assert response.status_code == 200
    destination = Destination.objects.get(label="ERP")
    assert destination.event_types == ["site.created"]
    assert any(destination.secret in str(m) for m in response.context["messages"])  # shown once
    page = client.get(reverse("admin:events_destination_change", args=[destination.pk]))
    assert destination.secret.encode() not in page.content
    # a private URL is refused by the form when not allowed
    refused = client.post(
        reverse("admin:events_destination_add"),
        {"workspace": workspace.pk, "label": "Bad", "url": "http://10.0.0.1/x"},
    )
    assert refused.status_code == 200 and not Destination.objects.filter(label="Bad").exists()
    client.logout()
    ops = staff_user("ops", workspace, Role.OPS)
    client.force_login(ops)
    assert client.get(reverse("admin:events_destination_changelist")).status_code == 200
    assert client.get(reverse("admin:events_deliveryattempt_changelist")).status_code == 200
    assert client.get(reverse("admin:events_destination_add")).status_code == 403
    change = client.get(reverse("admin:events_destination_change", args=[destination.pk]))
    assert change.status_code == 200 and b'name="_save"' not in change.content


def test_admin_pages_of_the_old_place_redirect_to_the_new_one(client):
    old = client.get("/admin/integrations/destination/12/change/?_changelist_filters=isActive%3D1")
    assert (old.status_code, old["Location"]) == (
        301,
        "/admin/events/destination/12/change/?_changelist_filters=isActive%3D1",
    )
    assert client.get("/admin/integrations/platformevent/")["Location"] == "/admin/events/platformevent/"
    assert client.get("/admin/integrations/manufacturer/")["Location"] == "/admin/fleet/manufacturer/"
    assert reverse("admin:events_deliveryattempt_changelist") == "/admin/events/deliveryattempt/"
    # pages that did not move are not caught
    assert client.get("/admin/integrations/workspaceintegration/").status_code == 302  # to the login page
