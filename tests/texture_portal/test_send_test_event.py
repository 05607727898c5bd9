"""“Send test event” on a destination: one signed `webhook.test` delivery to that destination only, over real
HTTP to a receiver on 127.0.0.1, verified with the documented recipe, logged in the delivery log and audited;
never fanned out, swept or retried, and never a reason to deactivate the destination."""

import json

import pytest

from tests.api_support import load_example_receiver
from tests.factories import UserFactory, WorkspaceFactory
from tests.texture_portal.events.test_webhooks import Receiver
from texture_portal.audit import AuditLogEntry
from texture_portal.events import services, webhooks
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.tasks import platform_event_fan_out_task

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("local_receivers"),
]


@pytest.fixture
def local_receivers(settings):
    # the receivers of these tests listen on 127.0.0.1 (ephemeral ports): allowed like the demo's receiver
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_DEACTIVATE_AFTER_FAILURES = 1


def destination_for(workspace, url, **fields) -> Destination:
    return services.destination_create(
        workspace=workspace, label=fields.pop("label", "ERP"), url=url, actor=None, **fields
    )


def test_a_signed_test_delivery_reaches_the_receiver_and_is_logged():
    workspace = WorkspaceFactory()
    engineer = UserFactory()
    example = load_example_receiver()
    with Receiver() as receiver:
        destination = destination_for(workspace, receiver.url)
        attempt = services.destination_test_send(destination=destination, actor=engineer)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/texture"
    assert example.verify_signature(
        destination.secret, body, headers["Texture-Signature"], headers["Texture-Timestamp"]
    )
    envelope = json.loads(body)
    assert set(envelope) == {"type", "version", "key", "timestamp", "data"}
    assert envelope["type"] == "webhook.test" and headers["Texture-Event-Type"] == "webhook.test"
    assert envelope["data"]["destinationId"] == destination.pk and envelope["data"]["destinationLabel"] == "ERP"
    assert envelope["key"] == headers["Texture-Event-Key"] and headers["Texture-Delivery-Attempt"] == "1"

    # the delivery log: the attempt, the receiver's answer, the event it carried (in the outbox)
    assert attempt.pk == DeliveryAttempt.objects.get().pk
    assert (attempt.status, attempt.attempt, attempt.response_status, attempt.error) == (
        DeliveryStatus.SUCCEEDED,
        1,
        200,
        "",
    )
    assert attempt.response_excerpt == "ok" and attempt.duration_ms is not None
    event = PlatformEvent.objects.get(pk=attempt.event_id)
    assert event.key == envelope["key"] and event.workspace_id == workspace.pk
    destination.refresh_from_db()
    assert destination.last_success_at is not None and destination.is_active
    audit = AuditLogEntry.objects.get(reason__startswith="Test event sent")
    assert audit.actor == engineer and audit.object_id == str(destination.pk)
    assert audit.changes["test_event"] == {"key": event.key, "status": "succeeded", "httpStatus": 200}


def test_a_test_goes_to_its_destination_only_whatever_its_filter_and_state():
    workspace = WorkspaceFactory()
    with Receiver() as mine, Receiver() as other, Receiver() as elsewhere:
        destination = destination_for(workspace, mine.url, event_types=["device.discovered"])
        firehose = destination_for(workspace, other.url, label="Firehose")  # every type, same workspace
        destination_for(WorkspaceFactory(), elsewhere.url, label="Another workspace")
        services.destination_update(destination=destination, data={"is_active": False}, actor=None)

        attempt = services.destination_test_send(destination=destination, actor=None)
        event = PlatformEvent.objects.get(pk=attempt.event_id)
        # neither the fan-out nor the outbox's sweep hands it to anyone else
        assert platform_event_fan_out_task(workspace.pk, event.key) == 0
        assert webhooks.undelivered_events(grace_seconds=0) == []
        # a direct attempt to another destination is refused
        assert (
            webhooks.destination_deliver(destination_id=firehose.pk, event_id=event.pk, attempt=1).status == "skipped"
        )

    assert attempt.status == DeliveryStatus.SUCCEEDED
    assert len(mine.requests) == 1 and other.requests == [] and elsewhere.requests == []
    assert DeliveryAttempt.objects.filter(destination=firehose).count() == 0
    destination.refresh_from_db()
    assert not destination.is_active  # a test does not reactivate a destination: staff do


@pytest.mark.parametrize("status", [500, 410])
def test_a_failed_test_is_logged_once_and_never_retried_nor_counted(status):
    workspace = WorkspaceFactory()
    with Receiver(script=[status]) as receiver:
        destination = destination_for(workspace, receiver.url)
        attempt = services.destination_test_send(destination=destination, actor=None)
    assert len(receiver.requests) == 1
    assert (attempt.status, attempt.response_status, attempt.error) == (DeliveryStatus.FAILED, status, f"HTTP {status}")
    assert attempt.next_attempt_at is None  # no retry queued
    destination.refresh_from_db()
    # WEBHOOK_DEACTIVATE_AFTER_FAILURES is 1 here, and a 410 deactivates a real delivery's destination at once
    assert destination.is_active and destination.consecutive_failures == 0
    assert destination.last_failure_at is not None
    assert "Test event sent: failed (HTTP" in AuditLogEntry.objects.get(reason__startswith="Test event sent").reason


def test_a_receiver_that_does_not_answer_in_time_is_a_logged_timeout():
    workspace = WorkspaceFactory()
    with Receiver(script=[("sleep", 1.0)]) as receiver:
        destination = destination_for(workspace, receiver.url)
        attempt = services.destination_test_send(destination=destination, actor=None)
    assert attempt.status == DeliveryStatus.FAILED and attempt.error.startswith("Timed out after 0.5 s")


def test_an_address_the_guard_refuses_now_is_logged_and_nothing_is_sent(settings):
    workspace = WorkspaceFactory()
    with Receiver() as receiver:
        destination = destination_for(workspace, receiver.url)
        settings.ALLOW_PRIVATE_WEBHOOK_URLS = False  # e.g. the allow-list changed since the destination was saved
        attempt = services.destination_test_send(destination=destination, actor=None)
    assert receiver.requests == []
    assert attempt.status == DeliveryStatus.FAILED and "private, loopback or reserved" in attempt.error
    destination.refresh_from_db()
    assert destination.is_active  # the test reports it; deactivating is left to a real delivery
