"""`Idempotency-Key` on API POSTs: the first answer to a key is stored with a hash of its request, and the same
key with the same request gets that answer again (a retried create creates nothing twice). The same key with
another request is a 409. Keys are per workspace and expire after IDEMPOTENCY_KEY_TTL (24 hours).

Hand-written rather than a package: the candidates (django-idempotency-key and the like) keep keys per user or
globally, not per workspace API key, and store the answer outside the write's transaction. Here the record is
written in the same transaction as the object it created, so a create that rolls back leaves no key behind,
and two requests racing with one key meet at the unique constraint: one creates, the other gets a 409."""

import hashlib
import json
from datetime import timedelta

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from texture_portal.exceptions import Conflict
from texture_portal.models import WorkspaceScopedModel

IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKey(WorkspaceScopedModel):
    """The first answer given to one `Idempotency-Key` of a workspace, until `expires_at`."""

    key = models.CharField(_("key"), max_length=MAX_KEY_LENGTH)
    method = models.CharField(_("method"), max_length=10)
    path = models.CharField(_("path"), max_length=500)
    request_hash = models.CharField(_("request hash"), max_length=64, help_text=_("SHA-256 of method, path, body."))
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.JSONField(_("response body"))
    expires_at = models.DateTimeField(_("expires"))

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="idempotency_key_unique_per_workspace")
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_key_expiry_idx")]

    def __str__(self) -> str:
        return self.key


def request_fingerprint(*, method: str, path: str, body) -> str:
    """SHA-256 of the request: the same JSON body in another key order is the same request. (The standard
    library's encoder, not orjson: a body may hold integers beyond 64 bits or lone surrogates, escaped here.)"""
    canonical = json.dumps({"method": method, "path": path, "body": body}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_replay(*, workspace_id: int, key: str, fingerprint: str, now=None) -> IdempotencyKey | None:
    """The stored answer to `key` when it was given for this same request; None when the key is new (or
    expired). Raises Conflict when the key was used for another request.

    Call it inside the transaction that will make the change and store the answer: on PostgreSQL it first takes
    a transaction-scoped advisory lock on (workspace, key), so a concurrent request with the same key waits for
    the first to commit and then gets its answer (instead of racing it through validation)."""
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        digest = hashlib.sha256(f"{workspace_id}:{key}".encode()).digest()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])
    stored = IdempotencyKey.objects.filter(workspace_id=workspace_id, key=key, expires_at__gt=now).first()
    if stored is None:
        return None
    if stored.request_hash != fingerprint:
        raise Conflict(
            f"Idempotency-Key “{key}” was already used for another request (method, path or body differ); "
            "use a new key for a new request."
        )
    return stored


def idempotency_store(
    *, workspace_id: int, key: str, method: str, path: str, fingerprint: str, status: int, body, now=None
) -> None:
    """Record the answer, in the caller's transaction (call it inside the one that made the change). An expired
    record of the key is replaced; a record written meanwhile by a concurrent request is a Conflict."""
    now = now or timezone.now()
    IdempotencyKey.objects.filter(workspace_id=workspace_id, key=key, expires_at__lte=now).delete()
    try:
        with transaction.atomic():
            IdempotencyKey.objects.create(
                workspace_id=workspace_id,
                key=key,
                method=method,
                path=path[:500],
                request_hash=fingerprint,
                response_status=status,
                response_body=body,
                expires_at=now + IDEMPOTENCY_KEY_TTL,
            )
    except IntegrityError as exc:
        raise Conflict(f"Idempotency-Key “{key}” is being used by another request at the same time.") from exc


def idempotency_keys_prune(*, now=None) -> int:
    """Delete expired records (a periodic task; safe to run twice)."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
