"""Destinations (webhooks out): creating them, the private-address guard, signing, and one delivery attempt.

Signature recipe (docs/integrators.md): `Texture-Signature` is the lowercase hex HMAC-SHA256 of the raw
request body, keyed with the destination secret (its UTF-8 bytes). `Texture-Timestamp` is the Unix time (s)
the attempt was sent, for rejecting stale deliveries; replays of an old body are caught by deduplicating on
the envelope's `key`, which the signature covers.
"""

import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from integrations.choices import PlatformEventType
from integrations.destinations import DeliveryAttempt, DeliveryStatus, Destination, destination_secret_generate
from integrations.models import PlatformEvent
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError

logger = logging.getLogger(__name__)

USER_AGENT = "TexturePortal-Webhooks/1.0"


# -- the private-address guard ---------------------------------------------------------------------------


class UnsafeWebhookUrl(ApplicationError):
    """The URL is not one the portal may POST to."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def webhook_url_check(url: str) -> None:
    """Refuse URLs that are not http(s), carry credentials, or resolve to a private, loopback, link-local or
    otherwise non-public address (unless ALLOW_PRIVATE_WEBHOOK_URLS, for local development). Checked when a
    destination is saved and again before every attempt (DNS can change in between)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise UnsafeWebhookUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("The URL must not contain a user name or password.")
    if settings.ALLOW_PRIVATE_WEBHOOK_URLS:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"The host “{parts.hostname}” does not resolve.") from exc
    for info in infos:
        address = info[4][0]
        if not _is_public(address):
            raise UnsafeWebhookUrl(
                f"The host “{parts.hostname}” resolves to {address}, a private, loopback or reserved address."
            )


# -- destinations ------------------------------------------------------------------------------------------


def _event_types_check(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(PlatformEventType.values))
    if unknown:
        raise ApplicationError(f"Unknown event types: {', '.join(unknown)}.")
    return sorted(set(event_types))


@transaction.atomic
def destination_create(
    *,
    workspace,
    label: str,
    url: str,
    actor,
    event_types: list[str] = (),
    secret: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> Destination:
    """A new active destination. A blank secret is generated (`whsec_…`, 256 bits)."""
    webhook_url_check(url)
    destination = Destination(
        workspace=workspace,
        label=label,
        url=url,
        event_types=_event_types_check(list(event_types)),
        signing_secret={"secret": secret or destination_secret_generate()},
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    destination.full_clean()
    destination.save()
    audit_record(
        actor=actor,
        action=AuditAction.OBJECT_CREATED,
        target=destination,
        source=source,
        changes={"url": url, "event_types": destination.event_types},
        reason="Destination created",
    )
    return destination


DESTINATION_EDITABLE = ("label", "url", "event_types", "is_active")


@transaction.atomic
def destination_update(
    *, destination: Destination, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE
) -> dict:
    """Change label, URL, event types or `is_active`. Reactivating clears the failure count and reason."""
    locked = Destination.objects.select_for_update().get(pk=destination.pk)
    changes = {}
    if "url" in data and data["url"] != locked.url:
        webhook_url_check(data["url"])
    if "event_types" in data:
        data = {**data, "event_types": _event_types_check(list(data["event_types"]))}
    for name in DESTINATION_EDITABLE:
        if name in data and data[name] != getattr(locked, name):
            changes[name] = [getattr(locked, name), data[name]]
            setattr(locked, name, data[name])
    if "is_active" in changes:
        if locked.is_active:
            locked.deactivated_at, locked.deactivated_reason, locked.consecutive_failures = None, "", 0
        else:
            locked.deactivated_at = timezone.now()
            locked.deactivated_reason = f"Deactivated by {getattr(actor, 'get_username', lambda: 'the portal')()}"
    if changes:
        locked.full_clean()
        locked.save()
        audit_record(actor=actor, action=AuditAction.OBJECT_CHANGED, target=locked, source=source, changes=changes)
    destination.refresh_from_db()
    return changes


@transaction.atomic
def destination_rotate_secret(*, destination: Destination, actor, source=AuditSource.SERVICE) -> str:
    """A new secret (returned once); deliveries from now on are signed with it."""
    secret = destination_secret_generate()
    Destination.objects.filter(pk=destination.pk).update(signing_secret={"secret": secret}, last_updated=timezone.now())
    destination.refresh_from_db()
    audit_record(
        actor=actor, action=AuditAction.OBJECT_CHANGED, target=destination, source=source, reason="Secret rotated"
    )
    return secret


def destination_deactivate(*, destination_id: int, reason: str) -> bool:
    """Deactivate (if still active) with the reason; True when this call did it."""
    with transaction.atomic():
        updated = Destination.objects.filter(pk=destination_id, is_active=True).update(
            is_active=False, deactivated_at=timezone.now(), deactivated_reason=reason[:300], last_updated=timezone.now()
        )
        if updated:
            destination = Destination.objects.get(pk=destination_id)
            audit_record(
                actor=None,
                action=AuditAction.OBJECT_CHANGED,
                target=destination,
                source=AuditSource.TASK,
                changes={"is_active": [True, False]},
                reason=reason,
            )
    if updated:
        logger.warning("Destination %s deactivated: %s", destination_id, reason)
    return bool(updated)


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


def http_post(url: str, body: bytes, headers: dict) -> requests.Response:
    """The one outgoing call. Redirects are not followed (a redirect could lead to a private address)."""
    return requests.post(
        url, data=body, headers=headers, timeout=(5, settings.WEBHOOK_TIMEOUT_SECONDS), allow_redirects=False
    )


@dataclasses.dataclass
class DeliveryOutcome:
    status: str  # "succeeded", "failed", "skipped"
    detail: str = ""
    retry_in: float | None = None  # seconds until the next attempt, when one is due


def destination_deliver(*, destination_id: int, event_id: int, attempt: int) -> DeliveryOutcome:
    """Make attempt number `attempt` of delivering one event to one destination; log it; decide the retry.

    Idempotent: nothing is sent when the event already reached the destination, when the destination is
    inactive or no longer wants this type, or when this attempt number was already claimed.
    """
    destination = Destination.objects.filter(pk=destination_id).first()
    event = PlatformEvent.objects.filter(pk=event_id).first()
    if destination is None or event is None or event.workspace_id != destination.workspace_id:
        return DeliveryOutcome("skipped", "destination or event gone")
    if not destination.is_active:
        return DeliveryOutcome("skipped", "destination inactive")
    if not destination.accepts(event.type):
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
        return DeliveryOutcome("skipped", f"attempt {attempt} already made")

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
        response_status, excerpt = response.status_code, response.text[:500]
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}"
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
        Destination.objects.filter(pk=destination_id).update(consecutive_failures=0, last_success_at=now)
        return DeliveryOutcome("succeeded")

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
    rows = Destination.objects.filter(workspace_id=event.workspace_id, is_active=True).values_list("pk", "event_types")
    return [pk for pk, types in rows if not types or event.type in types]


def undelivered_events(*, window_hours: int = 24, grace_seconds: int = 120, limit: int = 1000) -> list[tuple[int, int]]:
    """(destination id, event id) of events of the last `window_hours` that an active destination wants but
    never got a first attempt for — e.g. the broker was down when the change committed. Events younger than
    `grace_seconds` are left to the normal after-commit path."""
    now = timezone.now()
    since = now - datetime.timedelta(hours=window_hours)
    pairs: list[tuple[int, int]] = []
    for destination in Destination.objects.filter(is_active=True).only("pk", "workspace_id", "event_types", "created"):
        events = PlatformEvent.objects.filter(
            workspace_id=destination.workspace_id,
            timestamp__gte=max(since, destination.created),
            timestamp__lt=now - datetime.timedelta(seconds=grace_seconds),
        ).exclude(Exists(DeliveryAttempt.objects.filter(destination_id=destination.pk, event_id=OuterRef("pk"))))
        if destination.event_types:
            events = events.filter(type__in=destination.event_types)
        ids = events.order_by("timestamp", "id").values_list("pk", flat=True)[: limit - len(pairs)]
        pairs += [(destination.pk, event_id) for event_id in ids]
        if len(pairs) >= limit:
            break
    return pairs
