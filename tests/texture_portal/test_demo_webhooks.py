"""The demo's webhook receiver (/demo/webhook-receiver/, served by the portal itself) and the demo destination: a
destination pointing at it works out of the box — the guard lets exactly the portal's own host:port through, the
receiver verifies each delivery with its destination's secret and answers what the delivery log then shows."""

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache

from fleet.services import device_mark_on_workspace
from tests.factories import DeviceFactory, WorkspaceFactory
from texture_portal.demo import webhooks as demo
from texture_portal.events import services
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.guard import UnsafeWebhookUrl
from texture_portal.events.models import DeliveryAttempt


@pytest.fixture
def receiver_on(settings):
    settings.DEMO_WEBHOOK_RECEIVER = True
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    cache.delete(demo.CACHE_KEY)
    yield
    cache.delete(demo.CACHE_KEY)


@pytest.fixture
def portal(live_server, settings, receiver_on, reference_data):
    """The live portal, whose own host:port is the one private address destinations may point at."""
    settings.WEBHOOK_ALLOWED_HOSTS = [urlsplit(live_server.url).netloc]
    return live_server


@pytest.mark.django_db(transaction=True)
def test_a_test_event_to_the_demo_receiver_is_verified_and_its_answer_logged(portal):
    workspace = WorkspaceFactory()
    destination = demo.demo_destination_ensure(workspace=workspace)
    assert destination.url == f"{portal.url}{demo.RECEIVER_PATH}"

    attempt = services.destination_test_send(destination=destination, actor=None)

    assert (attempt.status, attempt.response_status) == (DeliveryStatus.SUCCEEDED, 200)
    answer = json.loads(attempt.response_excerpt)  # what the engineering page's delivery log shows
    assert answer["received"] == "webhook.test" and answer["signature"] == "verified"
    [seen] = demo.demo_receiver_deliveries(destination_ids=[destination.pk])
    assert seen["verified"] and seen["type"] == "webhook.test" and seen["key"] == answer["key"]
    assert seen["destinationLabel"] == demo.DEMO_DESTINATION_LABEL and seen["attempt"] == "1"
    assert demo.demo_receiver_deliveries(destination_ids=[destination.pk + 1000]) == []


@pytest.mark.django_db(transaction=True)
def test_a_destination_staff_create_pointing_at_the_receiver_gets_the_platforms_events(portal):
    device = DeviceFactory()
    destination = services.destination_create(
        workspace=device.workspace, label="Mine", url=f"{portal.url}{demo.RECEIVER_PATH}", actor=None
    )  # a secret of its own, generated: the receiver finds it by the signature
    device_mark_on_workspace(device=device, reason="found at the OEM")  # commits: delivered after commit
    attempt = DeliveryAttempt.objects.get(destination=destination)
    assert attempt.status == DeliveryStatus.SUCCEEDED
    assert json.loads(attempt.response_excerpt)["received"] == "device.discovered"
    assert [e["type"] for e in demo.demo_receiver_deliveries()] == ["device.discovered"]


@pytest.mark.django_db
def test_a_delivery_signed_with_no_destinations_secret_is_refused(client, receiver_on, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:8000"]
    destination = services.destination_create(
        workspace=WorkspaceFactory(), label="Demo", url=f"http://127.0.0.1:8000{demo.RECEIVER_PATH}", actor=None
    )
    body = json.dumps({"type": "webhook.test", "version": 1, "key": "k", "timestamp": "", "data": {}}).encode()
    now = str(int(time.time()))

    def post(secret, timestamp=now):
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return client.post(
            demo.RECEIVER_PATH,
            body,
            content_type="application/json",
            headers={"Texture-Signature": signature, "Texture-Timestamp": timestamp},
        )

    assert post("whsec_not-the-secret").status_code == 401
    assert post(destination.secret, timestamp=str(int(time.time()) - 3600)).status_code == 401  # stale
    accepted = post(destination.secret)
    assert accepted.status_code == 200 and accepted.json() == {
        "received": "webhook.test",
        "key": "k",
        "signature": "verified",
    }
    assert [e["verified"] for e in demo.demo_receiver_deliveries()] == [True, False, False]
    assert client.get(demo.RECEIVER_PATH).status_code == 405


@pytest.mark.django_db
def test_the_receiver_is_off_without_the_setting(client, settings):
    settings.DEMO_WEBHOOK_RECEIVER = False
    assert client.post(demo.RECEIVER_PATH, b"{}", content_type="application/json").status_code == 404


@pytest.mark.django_db
def test_the_demo_destination_is_created_once_and_skips_per_reading_events(settings, receiver_on):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:8000", "localhost:8000"]
    workspace = WorkspaceFactory()
    first = demo.demo_destination_ensure(workspace=workspace)
    assert first.url == "http://127.0.0.1:8000/demo/webhook-receiver/" and first.is_active
    assert "device.updated" not in first.event_types and "webhook.test" not in first.event_types
    assert {"device.discovered", "device.disconnected", "program_event.completed"} <= set(first.event_types)
    assert demo.demo_destination_ensure(workspace=workspace).pk == first.pk  # idempotent
    assert demo.demo_destination_ensure(workspace=WorkspaceFactory()).pk != first.pk  # one per workspace


@pytest.mark.django_db
def test_no_demo_destination_where_the_receiver_is_not_allowed(settings, receiver_on):
    settings.WEBHOOK_ALLOWED_HOSTS = []  # production's default
    assert demo.demo_destination_ensure(workspace=WorkspaceFactory()) is None
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:8000"]
    settings.DEMO_WEBHOOK_RECEIVER = False
    assert demo.demo_destination_ensure(workspace=WorkspaceFactory()) is None
    with pytest.raises(UnsafeWebhookUrl):  # and the guard still refuses any other local address
        services.destination_create(workspace=WorkspaceFactory(), label="x", url="http://127.0.0.1:8001/", actor=None)
