"""Webhook destinations end to end: a receiver on 127.0.0.1 (ephemeral port), signed envelopes verified with the
documented recipe, retries with backoff on failure and timeout, the attempt log, deactivation, the SSRF guard."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from fleet.services import device_mark_offline, device_mark_on_workspace
from tests.api_support import load_example_receiver
from tests.factories import DeviceFactory, WorkspaceFactory
from texture_portal.events import services, webhooks
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.services import event_emit
from texture_portal.events.tasks import destination_deliver_task, platform_event_fan_out_task
from texture_portal.exceptions import ApplicationError

pytestmark = pytest.mark.django_db

# Deliveries in these tests go to a receiver on loopback, which the guard refuses unless allowed.
local_hooks = override_settings(
    ALLOW_PRIVATE_WEBHOOK_URLS=True,
    WEBHOOK_RETRY_BASE_SECONDS=0,
    WEBHOOK_MAX_ATTEMPTS=4,
    WEBHOOK_TIMEOUT_SECONDS=0.5,
    WEBHOOK_DEACTIVATE_AFTER_FAILURES=50,
)


class Receiver:
    """An HTTP server on 127.0.0.1:<ephemeral> that records each POST and answers from a script:
    an int is a status, ("sleep", s) sleeps past the client's timeout before answering 200."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
                step = receiver.script.pop(0) if receiver.script else 200
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = 200
                try:
                    self.send_response(step)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/texture"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def make_destination(workspace, url, **fields):
    with override_settings(ALLOW_PRIVATE_WEBHOOK_URLS=True):
        return services.destination_create(workspace=workspace, label="ERP", url=url, actor=None, **fields)


@local_hooks
def test_a_committed_change_is_delivered_signed_and_verifies_with_the_documented_recipe(
    django_capture_on_commit_callbacks,
):
    device = DeviceFactory()
    with Receiver() as receiver:
        destination = make_destination(device.workspace, receiver.url)
        assert destination.secret.startswith("whsec_") and len(destination.secret) > 40  # generated when blank
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found at the OEM")
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    headers, body = request["headers"], request["body"]
    example = load_example_receiver()
    assert example.verify_signature(
        destination.secret, body, headers["Texture-Signature"], headers["Texture-Timestamp"]
    )
    assert not example.verify_signature("whsec_wrong", body, headers["Texture-Signature"], headers["Texture-Timestamp"])
    tampered = body.replace(b"on_workspace", b"offline")
    assert not example.verify_signature(
        destination.secret, tampered, headers["Texture-Signature"], headers["Texture-Timestamp"]
    )
    stale = str(int(headers["Texture-Timestamp"]) - 3600)
    assert not example.verify_signature(destination.secret, body, headers["Texture-Signature"], stale)
    envelope = json.loads(body)
    assert set(envelope) == {"type", "version", "key", "timestamp", "data"}
    assert envelope["type"] == "device.discovered" and envelope["data"]["id"] == device.pk
    assert headers["Content-Type"] == "application/json" and headers["Texture-Event-Type"] == "device.discovered"
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status, attempt.attempt, attempt.response_status) == (DeliveryStatus.SUCCEEDED, 1, 200)
    assert Destination.objects.get(pk=destination.pk).last_success_at is not None


@local_hooks
def test_the_example_receiver_accepts_a_real_delivery(django_capture_on_commit_callbacks):
    """The receiver integrators copy, run as is, against a real delivery."""
    example = load_example_receiver()
    device = DeviceFactory()
    destination = make_destination(device.workspace, "http://127.0.0.1:1/", secret="s3cret-s3cret-s3cret")
    received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), example.make_handler(destination.secret, on_event=received.append))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        services.destination_update(
            destination=destination, data={"url": f"http://127.0.0.1:{server.server_address[1]}/"}, actor=None
        )
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found")
    finally:
        server.shutdown()
        server.server_close()
    assert [e["type"] for e in received] == ["device.discovered"]
    assert DeliveryAttempt.objects.get().response_status == 204


@local_hooks
def test_failures_and_timeouts_are_retried_with_every_attempt_logged(django_capture_on_commit_callbacks):
    device = DeviceFactory()
    with Receiver(script=[500, ("sleep", 1.0), 200]) as receiver:
        destination = make_destination(device.workspace, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found")
    attempts = list(DeliveryAttempt.objects.order_by("attempt"))
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert attempts[0].response_status == 500 and attempts[0].error == "HTTP 500"
    assert attempts[1].response_status is None and attempts[1].error.startswith("Timed out after 0.5 s")
    assert attempts[0].next_attempt_at is not None
    # the receiver saw the same signed body each time, with the attempt number
    assert len({r["body"] for r in receiver.requests}) == 1
    assert [r["headers"]["Texture-Delivery-Attempt"] for r in receiver.requests][-1] == "3"
    destination.refresh_from_db()
    assert destination.consecutive_failures == 0 and destination.is_active


@local_hooks
def test_retries_stop_after_the_last_attempt(django_capture_on_commit_callbacks):
    device = DeviceFactory()
    with Receiver(script=[503] * 10) as receiver:
        make_destination(device.workspace, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found")
    assert len(receiver.requests) == 4  # WEBHOOK_MAX_ATTEMPTS
    last = DeliveryAttempt.objects.order_by("-attempt").first()
    assert last.attempt == 4 and last.status == "failed" and last.next_attempt_at is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_RETRY_MAX_SECONDS = 30, 1800
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (6, 960), (7, 1800), (12, 1800)]:
        delays = [webhooks.retry_delay_seconds(attempt) for _ in range(50)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


@local_hooks
def test_a_destination_that_keeps_failing_is_deactivated_with_a_reason(settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_DEACTIVATE_AFTER_FAILURES = 3
    settings.WEBHOOK_MAX_ATTEMPTS = 10
    device = DeviceFactory()
    with Receiver(script=[500] * 20) as receiver:
        destination = make_destination(device.workspace, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found")
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_offline(device=device, reason="silent")  # nothing more is sent to an inactive destination
    destination.refresh_from_db()
    assert not destination.is_active and destination.deactivated_at is not None
    assert destination.deactivated_reason == "3 deliveries in a row failed; the last: HTTP 500."
    assert len(receiver.requests) == 3 and DeliveryAttempt.objects.count() == 3
    # reactivating (a staff decision) clears the reason and the count
    services.destination_update(destination=destination, data={"is_active": True}, actor=None)
    destination.refresh_from_db()
    assert destination.is_active and destination.deactivated_reason == "" and destination.consecutive_failures == 0


@local_hooks
def test_410_gone_deactivates_at_once(django_capture_on_commit_callbacks):
    device = DeviceFactory()
    with Receiver(script=[410]) as receiver:
        destination = make_destination(device.workspace, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found")
    destination.refresh_from_db()
    assert not destination.is_active and "410" in destination.deactivated_reason and len(receiver.requests) == 1


@local_hooks
def test_delivery_is_idempotent_per_destination_and_event():
    device = DeviceFactory()
    event_emit(workspace_id=device.workspace_id, type="device.updated", key="k-1", data={"id": device.pk})
    event = PlatformEvent.objects.get(key="k-1")
    with Receiver() as receiver:
        destination = make_destination(device.workspace, receiver.url)
        assert destination_deliver_task.apply(args=(destination.pk, event.pk, 1)).get() == "succeeded"
        # the same task again, a duplicate fan-out, or a later attempt number: nothing more is sent
        assert destination_deliver_task.apply(args=(destination.pk, event.pk, 1)).get() == "skipped"
        assert platform_event_fan_out_task.apply(args=(device.workspace_id, "k-1")).get() == 1
        assert destination_deliver_task.apply(args=(destination.pk, event.pk, 2)).get() == "skipped"
    assert len(receiver.requests) == 1 and DeliveryAttempt.objects.count() == 1


@local_hooks
def test_event_type_filter_and_workspace_scope(django_capture_on_commit_callbacks):
    device = DeviceFactory()
    other_workspace_device = DeviceFactory()
    with Receiver() as receiver, Receiver() as other:
        make_destination(device.workspace, receiver.url, event_types=["device.disconnected"])
        make_destination(other_workspace_device.workspace, other.url)
        with django_capture_on_commit_callbacks(execute=True):
            device_mark_on_workspace(device=device, reason="found")
            device_mark_offline(device=device, reason="silent")
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["device.disconnected"]
    assert other.requests == []  # events never cross workspaces


@local_hooks
def test_a_rolled_back_change_delivers_nothing(django_capture_on_commit_callbacks):
    from django.db import transaction

    device = DeviceFactory()
    with Receiver() as receiver:
        make_destination(device.workspace, receiver.url)
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            device_mark_on_workspace(device=device, reason="found")
            raise RuntimeError("boom")
    assert callbacks == [] and receiver.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "ftp://8.8.8.8/hook",
        "http://user:pass@8.8.8.8/hook",
    ],
)
def test_private_loopback_and_odd_urls_are_refused(settings, url):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    with pytest.raises(ApplicationError):
        webhooks.webhook_url_check(url)
    with pytest.raises(ApplicationError):
        services.destination_create(workspace=WorkspaceFactory(), label="x", url=url, actor=None)


def test_a_public_literal_address_passes_the_guard_without_any_request(settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    webhooks.webhook_url_check("https://8.8.8.8/hook")  # a literal: resolved locally, nothing is contacted


@local_hooks
def test_the_guard_runs_again_at_delivery_time(settings):
    """A destination saved while allowed (or whose DNS changed) is refused at send time and deactivated."""
    device = DeviceFactory()
    event_emit(workspace_id=device.workspace_id, type="device.updated", key="k-2", data={})
    event = PlatformEvent.objects.get(key="k-2")
    with Receiver() as receiver:
        destination = make_destination(device.workspace, receiver.url)
        settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
        outcome = webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1)
    assert outcome.status == "failed" and outcome.retry_in is None and receiver.requests == []
    destination.refresh_from_db()
    assert not destination.is_active and "private, loopback or reserved" in destination.deactivated_reason


def test_unknown_event_types_are_refused():
    with pytest.raises(ApplicationError, match="Unknown event types"):
        make_destination(WorkspaceFactory(), "http://127.0.0.1:1/", event_types=["device.exploded"])


@local_hooks
def test_the_sweep_delivers_events_that_missed_the_after_commit_path():
    """E.g. the broker was down at commit: the outbox row is there, no attempt was made."""
    from datetime import timedelta

    from django.utils import timezone

    from texture_portal.events.tasks import destinations_sweep_task

    device = DeviceFactory()
    with Receiver() as receiver:
        destination = make_destination(device.workspace, receiver.url, event_types=["device.updated"])
        earlier = timezone.now() - timedelta(minutes=10)
        event_emit(workspace_id=device.workspace_id, type="device.updated", key="missed", data={}, timestamp=earlier)
        event_emit(workspace_id=device.workspace_id, type="site.created", key="unwanted", data={}, timestamp=earlier)
        event_emit(workspace_id=device.workspace_id, type="device.updated", key="just-now", data={})  # in grace
        Destination.objects.filter(pk=destination.pk).update(created=earlier - timedelta(minutes=1))
        assert destinations_sweep_task.apply().get() == 1
        assert destinations_sweep_task.apply().get() == 0  # delivered: nothing left to sweep
    assert [json.loads(r["body"])["key"] for r in receiver.requests] == ["missed"]
