"""The demo's webhook receiver, served by the portal itself at /demo/webhook-receiver/ (DEMO_WEBHOOK_RECEIVER, on
with DEBUG), and the demo destination that points at it.

Why inside the portal rather than a process of its own beside the simulator: it needs no port, process or secret
of its own (`make serve` starts nothing more), it verifies each delivery with the secret of the destination it was
sent for, read from the portal's own database, so a destination engineering creates in the admin works at once,
and tests reach it through Django's live server. The private-address guard lets it through because the portal's
own `host:port` is on WEBHOOK_ALLOWED_HOSTS (`make serve` passes it; empty in production).

The receiver does what docs/integrators.md asks of a real one: it checks `Texture-Signature` (hex HMAC-SHA256 of
the raw body) against the secret of each destination pointing at it and `Texture-Timestamp` (within five
minutes), answers 401 when neither matches and 200 with a short JSON summary otherwise — the summary is what the
delivery log shows as the receiver's answer — and keeps the last deliveries it saw in the cache
(`demo_receiver_deliveries`), which the engineering page lists.
"""

import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from texture_portal.events.models import Destination
from texture_portal.events.services import destination_create
from texture_portal.events.types import event_type_values
from texture_portal.exceptions import ApplicationError

logger = logging.getLogger(__name__)

RECEIVER_PATH = "/demo/webhook-receiver/"
CACHE_KEY = "texture:demo:webhook-receiver"
KEEP = 50  # deliveries remembered
TOLERANCE_SECONDS = 300
DEMO_DESTINATION_LABEL = "Demo webhook receiver"
# Sent for every reading of every device: the demo's receiver is spared them (the delivery log stays readable).
DEMO_SKIPPED_TYPES = {"device.updated", "webhook.test"}


def _signature_valid(secret: str, body: bytes, signature: str, timestamp: str) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(expected, signature or ""):
        return False
    try:
        return abs(time.time() - int(timestamp)) <= TOLERANCE_SECONDS
    except (TypeError, ValueError):
        return False


def _remember(entry: dict) -> None:
    seen = cache.get(CACHE_KEY) or []
    cache.set(CACHE_KEY, [entry, *seen][:KEEP], timeout=None)


def demo_receiver_deliveries(*, destination_ids=None) -> list[dict]:
    """What the receiver saw, newest first (of these destinations only, when given)."""
    seen = cache.get(CACHE_KEY) or []
    if destination_ids is None:
        return list(seen)
    wanted = set(destination_ids)
    return [entry for entry in seen if entry.get("destinationId") in wanted]


@csrf_exempt  # a webhook carries a signature, not a CSRF token
def webhook_receiver(request):
    if not settings.DEMO_WEBHOOK_RECEIVER:
        raise Http404("The demo webhook receiver is off (DEMO_WEBHOOK_RECEIVER).")
    if request.method != "POST":
        return JsonResponse({"error": "POST a signed delivery here (docs/integrators.md, Webhooks)."}, status=405)
    body = request.body
    signature = request.headers.get("Texture-Signature", "")
    timestamp = request.headers.get("Texture-Timestamp", "")
    candidates = Destination.objects.filter(url__contains=RECEIVER_PATH).order_by("pk")[:200]
    destination = next((d for d in candidates if _signature_valid(d.secret, body, signature, timestamp)), None)
    received_at = timezone.now().isoformat()
    if destination is None:
        _remember({"receivedAt": received_at, "verified": False, "type": request.headers.get("Texture-Event-Type")})
        return JsonResponse(
            {"verified": False, "error": "The signature matches no destination pointing here, or is stale."},
            status=401,
        )
    try:
        envelope = json.loads(body)
    except ValueError:
        return JsonResponse({"verified": True, "error": "The body is not JSON."}, status=400)
    entry = {
        "receivedAt": received_at,
        "verified": True,
        "destinationId": destination.pk,
        "destinationLabel": destination.label,
        "type": envelope.get("type"),
        "key": envelope.get("key"),
        "attempt": request.headers.get("Texture-Delivery-Attempt"),
    }
    _remember(entry)
    return JsonResponse({"received": entry["type"], "key": entry["key"], "signature": "verified"})


def demo_receiver_url() -> str | None:
    """The receiver's address as a destination names it: on the first host:port WEBHOOK_ALLOWED_HOSTS lists
    (`make serve` puts the portal's own first), or None when nothing is allowed (production)."""
    allowed = [entry.strip() for entry in settings.WEBHOOK_ALLOWED_HOSTS if entry.strip()]
    return f"http://{allowed[0]}{RECEIVER_PATH}" if allowed else None


def demo_destination_ensure(*, workspace, actor=None) -> Destination | None:
    """The workspace's destination pointing at the demo receiver (created once; the seed calls this). It listens
    to every registered event type except the per-reading `device.updated`. None, with a warning, when the
    receiver's address is not allowed (no WEBHOOK_ALLOWED_HOSTS: not a demo)."""
    url = demo_receiver_url()
    if url is None or not settings.DEMO_WEBHOOK_RECEIVER:
        logger.warning("No demo destination: WEBHOOK_ALLOWED_HOSTS is empty or DEMO_WEBHOOK_RECEIVER is off.")
        return None
    existing = Destination.objects.filter(workspace=workspace, url=url).order_by("pk").first()
    if existing is not None:
        return existing
    try:
        return destination_create(
            workspace=workspace,
            label=DEMO_DESTINATION_LABEL,
            url=url,
            event_types=[t for t in event_type_values() if t not in DEMO_SKIPPED_TYPES],
            actor=actor,
        )
    except ApplicationError as exc:
        logger.warning("No demo destination: %s", exc.message)
        return None
