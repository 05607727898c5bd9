"""Review fixes of webhooks out: a resolver failure is retried (not final), IPv6 forms that embed a non-public
IPv4 are refused, an attempt whose worker died is closed and retried by the sweep, and only the start of the
receiver's answer is read. DNS is mocked (socket.getaddrinfo); nothing but 127.0.0.1 is ever contacted."""

import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from tests.factories import DeviceFactory
from tests.texture_portal.events.test_webhooks import Receiver, local_hooks, make_destination
from texture_portal.events import webhooks
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.services import event_emit
from texture_portal.events.tasks import destinations_sweep_task

pytestmark = pytest.mark.django_db


def resolving_to(*addresses):
    """A getaddrinfo that answers the given addresses for any host, without a lookup."""

    def getaddrinfo(host, port, *args, **kwargs):
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]

    return getaddrinfo


def not_resolving(host, port, *args, **kwargs):
    raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


def an_event(device, key="k", minutes_ago=0):
    event_emit(
        workspace_id=device.workspace_id,
        type="device.updated",
        key=key,
        data={},
        timestamp=timezone.now() - timedelta(minutes=minutes_ago),
    )
    return PlatformEvent.objects.get(key=key)


# -- 1. a host that does not resolve is a retryable failure ------------------------------------------------


def test_an_unresolvable_host_is_retried_and_the_destination_stays_active(settings, monkeypatch):
    device = DeviceFactory()
    destination = make_destination(device.workspace, "https://hooks.example.com/texture")
    event = an_event(device)
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    monkeypatch.setattr(socket, "getaddrinfo", not_resolving)
    posted = []
    monkeypatch.setattr(webhooks, "http_post", lambda *args: posted.append(args))
    outcome = webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1)
    assert outcome.status == "failed" and outcome.retry_in is not None and "does not resolve" in outcome.detail
    assert posted == []
    destination.refresh_from_db()
    assert destination.is_active and destination.deactivated_reason == "" and destination.consecutive_failures == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status == DeliveryStatus.FAILED and attempt.next_attempt_at is not None
    # still refused when a destination is saved (as an ApplicationError, its own kind)
    with pytest.raises(webhooks.WebhookHostUnresolved):
        webhooks.webhook_url_check("https://hooks.example.com/texture")


def test_a_host_that_resolves_to_a_private_address_is_still_final(settings, monkeypatch):
    device = DeviceFactory()
    destination = make_destination(device.workspace, "https://hooks.example.com/texture")
    event = an_event(device)
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("93.184.215.14", "10.0.0.7"))
    outcome = webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1)
    assert outcome.status == "failed" and outcome.retry_in is None
    destination.refresh_from_db()
    assert not destination.is_active and "10.0.0.7" in destination.deactivated_reason


# -- 2. IPv6 forms that carry a non-public IPv4 --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::1",
    ],
)
def test_ipv6_forms_embedding_a_non_public_ipv4_are_refused(settings, monkeypatch, address):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to(address))
    with pytest.raises(webhooks.UnsafeWebhookUrl, match="private, loopback or reserved") as refused:
        webhooks.webhook_url_check("https://hooks.example.com/texture")
    assert not isinstance(refused.value, webhooks.WebhookHostUnresolved)


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "2606:4700:4700::1111", "8.8.8.8"])
def test_ipv6_forms_embedding_a_public_ipv4_pass(settings, monkeypatch, address):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to(address))
    webhooks.webhook_url_check("https://hooks.example.com/texture")


# -- 3. an attempt whose worker died -----------------------------------------------------------------------


def stale_in_flight(destination, event, attempt=1, seconds_ago=None):
    age = webhooks.stale_in_flight_seconds() + 5 if seconds_ago is None else seconds_ago
    return DeliveryAttempt.objects.create(
        workspace_id=destination.workspace_id,
        destination=destination,
        event=event,
        attempt=attempt,
        status=DeliveryStatus.IN_FLIGHT,
        created=timezone.now() - timedelta(seconds=age),
    )


def old_destination(device, url):
    destination = make_destination(device.workspace, url)
    Destination.objects.filter(pk=destination.pk).update(created=timezone.now() - timedelta(hours=1))
    return destination


@local_hooks
def test_the_sweep_closes_an_interrupted_attempt_and_makes_the_next_one():
    device = DeviceFactory()
    with Receiver() as receiver:
        destination = old_destination(device, receiver.url)
        event = an_event(device, "died", minutes_ago=10)
        recent = an_event(device, "still-running", minutes_ago=10)
        stale_in_flight(destination, event)
        stale_in_flight(destination, recent, seconds_ago=5)  # its worker may still be at it
        assert destinations_sweep_task.apply().get() == 1
        assert destinations_sweep_task.apply().get() == 0  # delivered: nothing left to sweep
    assert [r["headers"]["Texture-Delivery-Attempt"] for r in receiver.requests] == ["2"]
    rows = list(DeliveryAttempt.objects.filter(event=event).order_by("attempt"))
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "succeeded")]
    assert rows[0].error == webhooks.INTERRUPTED
    assert DeliveryAttempt.objects.get(event=recent).status == DeliveryStatus.IN_FLIGHT


@local_hooks
def test_retries_after_an_interrupted_attempt_keep_counting_up():
    device = DeviceFactory()
    with Receiver(script=[500, 200]) as receiver:
        destination = old_destination(device, receiver.url)
        event = an_event(device, "died", minutes_ago=10)
        stale_in_flight(destination, event)
        assert destinations_sweep_task.apply().get() == 1
    assert [r["headers"]["Texture-Delivery-Attempt"] for r in receiver.requests] == ["2", "3"]
    rows = DeliveryAttempt.objects.filter(event=event).order_by("attempt")
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "failed"), (3, "succeeded")]


@local_hooks
def test_an_interrupted_last_attempt_is_closed_without_a_retry():
    device = DeviceFactory()
    with Receiver() as receiver:
        destination = old_destination(device, receiver.url)
        event = an_event(device, "died", minutes_ago=10)
        stale_in_flight(destination, event, attempt=4)  # WEBHOOK_MAX_ATTEMPTS
        assert destinations_sweep_task.apply().get() == 0
    assert receiver.requests == []
    row = DeliveryAttempt.objects.get(event=event)
    assert row.status == DeliveryStatus.FAILED and row.error == webhooks.INTERRUPTED and row.next_attempt_at is None


@local_hooks
def test_a_duplicate_task_does_not_send_a_retry_before_it_is_due():
    device = DeviceFactory()
    with Receiver(script=[500]) as receiver:
        destination = make_destination(device.workspace, receiver.url)
        event = an_event(device)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(webhooks, "retry_delay_seconds", lambda attempt: 3600)
            assert webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1).status == (
                "failed"
            )
        duplicate = webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1)
    assert duplicate.status == "skipped" and len(receiver.requests) == 1 and DeliveryAttempt.objects.count() == 1


# -- 4. only the start of the answer is read ---------------------------------------------------------------


class EndlessBody(BaseHTTPRequestHandler):
    """Answers 200 and the start of a huge body, then stalls (longer than the client's read timeout)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", str(10_000_000))
        self.end_headers()
        try:
            self.wfile.write(b"x" * 4096)
            self.wfile.flush()
            time.sleep(2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format, *args):
        pass


@local_hooks
def test_only_the_start_of_the_answer_is_read_and_the_response_is_closed(monkeypatch):
    device = DeviceFactory()
    event = an_event(device)
    server = ThreadingHTTPServer(("127.0.0.1", 0), EndlessBody)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    responses = []
    real_post = webhooks.http_post

    def http_post(*args):
        responses.append(real_post(*args))
        return responses[-1]

    monkeypatch.setattr(webhooks, "http_post", http_post)
    try:
        destination = make_destination(device.workspace, f"http://127.0.0.1:{server.server_address[1]}/")
        started = time.monotonic()
        outcome = webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.status == "succeeded" and elapsed < 1.5
    row = DeliveryAttempt.objects.get()
    assert row.response_status == 200 and row.response_excerpt == "x" * 500
    assert responses[0].raw.closed


@local_hooks
def test_a_response_already_in_memory_is_logged(monkeypatch):
    """A stand-in for http_post (as the API fuzz test uses) has no raw stream to read or close."""
    import requests

    def http_post(url, body, headers):
        response = requests.Response()
        response.status_code, response._content = 202, b"queued"
        return response

    monkeypatch.setattr(webhooks, "http_post", http_post)
    device = DeviceFactory()
    destination = make_destination(device.workspace, "http://127.0.0.1:1/")
    event = an_event(device)
    assert webhooks.destination_deliver(destination_id=destination.pk, event_id=event.pk, attempt=1).status == (
        "succeeded"
    )
    row = DeliveryAttempt.objects.get()
    assert (row.status, row.response_status, row.response_excerpt) == ("succeeded", 202, "queued")
