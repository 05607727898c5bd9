"""Delivering platform events to destinations: signing, one attempt (behind the private-address guard), its retry,
deactivation of a destination that keeps failing, and the sweep's helpers.

Signature recipe (docs/integrators.md): `Texture-Signature` is the lowercase hex HMAC-SHA256 of the raw
request body, keyed with the destination secret (its UTF-8 bytes). `Texture-Timestamp` is the Unix time (s)
the attempt was sent, for rejecting stale deliveries; replays of an old body are caught by deduplicating on
the envelope's `key`, which the signature covers.
"""

import dataclasses
import datetime
import hashlib
import hmac
import json
import logging
import random
import time

import requests
import urllib3
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from texture_portal.events.choices import DeliveryStatus, WebhookEventType
from texture_portal.events.guard import UnsafeWebhookUrl, WebhookHostUnresolved, webhook_url_check
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.services import destination_deactivate

logger = logging.getLogger(__name__)

USER_AGENT = "TexturePortal-Webhooks/1.0"


# -- signing and delivering ----------------------------------------------------------------------------------


def webhook_body(event: PlatformEvent) -> bytes:
    """The exact bytes POSTed (and signed): the envelope as compact JSON."""
    return json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay_seconds(attempt: int) -> float:
    """Exponential backoff with jitter after failed attempt `attempt` (1-based), capped."""
    ceiling = min(settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


HTTP_CONNECT_TIMEOUT_SECONDS = 5
RESPONSE_READ_LIMIT = 1024  # bytes of the receiver's answer read (for the log); the rest is never downloaded


def http_post(url: str, body: bytes, headers: dict) -> requests.Response:
    """The one outgoing call. Redirects are not followed (a redirect could lead to a private address).
    Streamed: the caller reads at most RESPONSE_READ_LIMIT bytes of the body and closes the response."""
    return requests.post(
        url,
        data=body,
        headers=headers,
        timeout=(HTTP_CONNECT_TIMEOUT_SECONDS, settings.WEBHOOK_TIMEOUT_SECONDS),
        allow_redirects=False,
        stream=True,
    )


def _response_excerpt(response: requests.Response) -> str:
    """The start of the body, decoded leniently; never more than RESPONSE_READ_LIMIT bytes are read."""
    if response.raw is None:  # a response already in memory (a stand-in for http_post)
        return response.content[:RESPONSE_READ_LIMIT].decode(response.encoding or "utf-8", errors="replace")[:500]
    try:
        raw = response.raw.read(RESPONSE_READ_LIMIT, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
        return ""  # the status decided the outcome; a body that stalls or breaks is not logged
    return raw[:RESPONSE_READ_LIMIT].decode(response.encoding or "utf-8", errors="replace")[:500]


@dataclasses.dataclass
class DeliveryOutcome:
    status: str  # "succeeded", "failed", "skipped"
    detail: str = ""
    retry_in: float | None = None  # seconds until the next attempt, when one is due


INTERRUPTED = "Interrupted: the worker stopped before the attempt finished."
RESUME_SLACK = datetime.timedelta(seconds=60)


def _attempt_resume(*, destination: Destination, event: PlatformEvent, attempt: int) -> DeliveryAttempt | None:
    """Attempt `attempt` is already claimed. When the latest attempt of this (destination, event) failed with a
    retry due (`next_attempt_at` reached) that nobody has claimed — e.g. the sweep closed an attempt whose worker
    died, and queued attempt 1 again — claim the next number instead. The unique constraint still lets only one
    task claim it; a duplicate task that comes before the retry is due is skipped."""
    latest = (
        DeliveryAttempt.objects.filter(destination_id=destination.pk, event_id=event.pk).order_by("-attempt").first()
    )
    if (
        latest is None
        or latest.attempt < attempt
        or latest.status != DeliveryStatus.FAILED
        or latest.next_attempt_at is None
        or latest.next_attempt_at > timezone.now() + RESUME_SLACK
    ):
        return None
    try:
        with transaction.atomic():
            return DeliveryAttempt.objects.create(
                workspace_id=destination.workspace_id,
                destination=destination,
                event=event,
                attempt=latest.attempt + 1,
                status=DeliveryStatus.IN_FLIGHT,
            )
    except IntegrityError:
        return None


def is_test_for(event: PlatformEvent, destination_id: int) -> bool:
    return event.type == WebhookEventType.TEST and (event.data or {}).get("destinationId") == destination_id


def destination_deliver(*, destination_id: int, event_id: int, attempt: int) -> DeliveryOutcome:
    """Make attempt number `attempt` of delivering one event to one destination; log it; decide the retry.

    Idempotent: nothing is sent when the event already reached the destination, when the destination is
    inactive or no longer wants this type, or when this attempt number was already claimed.

    A test event (`webhook.test`) goes only to the destination it names, whatever its filter and even when it
    is inactive (staff check a repaired receiver before reactivating it); its outcome is logged like any
    other but is not retried and neither counts towards nor causes the destination's deactivation.
    """
    destination = Destination.objects.filter(pk=destination_id).first()
    event = PlatformEvent.objects.filter(pk=event_id).first()
    if destination is None or event is None or event.workspace_id != destination.workspace_id:
        return DeliveryOutcome("skipped", "destination or event gone")
    test = event.type == WebhookEventType.TEST
    if test and not is_test_for(event, destination_id):
        return DeliveryOutcome("skipped", "a test event of another destination")
    if not destination.is_active and not test:
        return DeliveryOutcome("skipped", "destination inactive")
    if not test and not destination.accepts(event.type):
        return DeliveryOutcome("skipped", "event type not subscribed")
    done = DeliveryAttempt.objects.filter(destination_id=destination_id, event_id=event_id)
    if done.filter(status=DeliveryStatus.SUCCEEDED).exists():
        return DeliveryOutcome("skipped", "already delivered")
    try:
        with transaction.atomic():
            record = DeliveryAttempt.objects.create(
                workspace_id=destination.workspace_id,
                destination=destination,
                event=event,
                attempt=attempt,
                status=DeliveryStatus.IN_FLIGHT,
            )
    except IntegrityError:
        record = _attempt_resume(destination=destination, event=event, attempt=attempt)
        if record is None:
            return DeliveryOutcome("skipped", f"attempt {attempt} already made")
        attempt = record.attempt

    body = webhook_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Texture-Signature": webhook_signature(destination.secret, body),
        "Texture-Timestamp": str(int(time.time())),
        "Texture-Event-Type": event.type,
        "Texture-Event-Key": event.key,
        "Texture-Delivery-Attempt": str(attempt),
    }
    started = time.monotonic()
    response_status, excerpt, error, retryable = None, "", "", True
    try:
        webhook_url_check(destination.url)
        response = http_post(destination.url, body, headers)
        try:
            response_status = response.status_code
            if not 200 <= response_status < 300:
                error = f"HTTP {response_status}"
            excerpt = _response_excerpt(response)
        finally:
            if response.raw is not None:
                response.close()
    except WebhookHostUnresolved as exc:
        error = exc.message  # a resolver hiccup: retried like a timeout
    except UnsafeWebhookUrl as exc:
        error, retryable = exc.message, False
    except requests.Timeout:
        error = f"Timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    duration_ms = int((time.monotonic() - started) * 1000)
    now = timezone.now()

    if not error:
        record.status, record.response_status, record.response_excerpt = (
            DeliveryStatus.SUCCEEDED,
            response_status,
            excerpt,
        )
        record.duration_ms = duration_ms
        record.save(update_fields=["status", "response_status", "response_excerpt", "duration_ms", "last_updated"])
        if test:
            Destination.objects.filter(pk=destination_id).update(last_success_at=now)
        else:
            Destination.objects.filter(pk=destination_id).update(consecutive_failures=0, last_success_at=now)
        return DeliveryOutcome("succeeded")

    if test:
        Destination.objects.filter(pk=destination_id).update(last_failure_at=now)
        record.status, record.response_status, record.response_excerpt = DeliveryStatus.FAILED, response_status, excerpt
        record.error, record.duration_ms = error[:500], duration_ms
        record.save(
            update_fields=["status", "response_status", "response_excerpt", "error", "duration_ms", "last_updated"]
        )
        return DeliveryOutcome("failed", error)

    Destination.objects.filter(pk=destination_id).update(
        consecutive_failures=F("consecutive_failures") + 1, last_failure_at=now
    )
    failures = Destination.objects.values_list("consecutive_failures", flat=True).get(pk=destination_id)
    deactivate_reason = ""
    if not retryable:
        deactivate_reason = f"Refused to deliver: {error}"
    elif response_status == 410:
        deactivate_reason = "The receiver answered 410 Gone."
    elif failures >= settings.WEBHOOK_DEACTIVATE_AFTER_FAILURES:
        deactivate_reason = f"{failures} deliveries in a row failed; the last: {error}."
    if deactivate_reason:
        destination_deactivate(destination_id=destination_id, reason=deactivate_reason)
    retry_in = None
    if not deactivate_reason and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_in = retry_delay_seconds(attempt)
    record.status, record.response_status, record.response_excerpt = DeliveryStatus.FAILED, response_status, excerpt
    record.error, record.duration_ms = error[:500], duration_ms
    record.next_attempt_at = now + datetime.timedelta(seconds=retry_in) if retry_in is not None else None
    record.save(
        update_fields=[
            "status",
            "response_status",
            "response_excerpt",
            "error",
            "duration_ms",
            "next_attempt_at",
            "last_updated",
        ]
    )
    return DeliveryOutcome("failed", error, retry_in)


def destinations_for_event(event: PlatformEvent) -> list[int]:
    """Ids of the active destinations of the event's workspace that subscribe to its type."""
    if event.type == WebhookEventType.TEST:
        return []  # a test goes to its own destination only (destination_test_send), never fanned out
    rows = Destination.objects.filter(workspace_id=event.workspace_id, is_active=True).values_list("pk", "event_types")
    return [pk for pk, types in rows if not types or event.type in types]


def stale_in_flight_seconds() -> float:
    """An attempt still in flight after this long lost its worker: twice the whole HTTP budget, plus a margin."""
    return 2 * (HTTP_CONNECT_TIMEOUT_SECONDS + settings.WEBHOOK_TIMEOUT_SECONDS) + 60


def interrupted_attempts_close(*, since: datetime.datetime, limit: int) -> list[tuple[int, int]]:
    """Mark failed the in-flight attempts (to active destinations, since `since`) older than
    stale_in_flight_seconds() whose worker died mid-attempt, with the retry due now; (destination id, event id)
    of each one that has attempts left. Queuing attempt 1 again for such a pair makes the next attempt
    (`_attempt_resume`)."""
    now = timezone.now()
    stale = DeliveryAttempt.objects.filter(
        status=DeliveryStatus.IN_FLIGHT,
        destination__is_active=True,
        created__gte=since,
        created__lt=now - datetime.timedelta(seconds=stale_in_flight_seconds()),
    ).order_by("created", "id")
    pairs: list[tuple[int, int]] = []
    rows = stale.values_list("pk", "destination_id", "event_id", "attempt", "event__type")[:limit]
    for pk, destination_id, event_id, attempt, event_type in rows:
        retry = attempt < settings.WEBHOOK_MAX_ATTEMPTS and event_type != WebhookEventType.TEST  # tests: once
        closed = DeliveryAttempt.objects.filter(pk=pk, status=DeliveryStatus.IN_FLIGHT).update(
            status=DeliveryStatus.FAILED, error=INTERRUPTED, next_attempt_at=now if retry else None, last_updated=now
        )
        if closed and retry:
            pairs.append((destination_id, event_id))
        if closed:
            logger.warning(
                "Attempt %s of event %s to destination %s was interrupted", attempt, event_id, destination_id
            )
    return pairs


def undelivered_events(*, window_hours: int = 24, grace_seconds: int = 120, limit: int = 1000) -> list[tuple[int, int]]:
    """(destination id, event id) of events of the last `window_hours` that an active destination wants but
    never got a first attempt for — e.g. the broker was down when the change committed — or whose latest
    attempt was interrupted (its worker died while in flight; that attempt is marked failed, and queuing
    attempt 1 for the pair makes the next attempt). Events younger than `grace_seconds` are left to the normal
    after-commit path."""
    now = timezone.now()
    since = now - datetime.timedelta(hours=window_hours)
    pairs: list[tuple[int, int]] = interrupted_attempts_close(since=since, limit=limit)
    for destination in Destination.objects.filter(is_active=True).only("pk", "workspace_id", "event_types", "created"):
        events = PlatformEvent.objects.filter(
            workspace_id=destination.workspace_id,
            timestamp__gte=max(since, destination.created),
            timestamp__lt=now - datetime.timedelta(seconds=grace_seconds),
        ).exclude(Exists(DeliveryAttempt.objects.filter(destination_id=destination.pk, event_id=OuterRef("pk"))))
        events = events.exclude(type=WebhookEventType.TEST)  # sent at once to its own destination, or not at all
        if destination.event_types:
            events = events.filter(type__in=destination.event_types)
        ids = events.order_by("timestamp", "id").values_list("pk", flat=True)[: limit - len(pairs)]
        pairs += [(destination.pk, event_id) for event_id in ids]
        if len(pairs) >= limit:
            break
    return pairs
