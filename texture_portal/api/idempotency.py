"""`Idempotency-Key` on the API's creates (see `texture_portal.idempotency`)."""

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.response import Response

from texture_portal.idempotency import MAX_KEY_LENGTH, idempotency_replay, idempotency_store, request_fingerprint

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID): a retry with the same key and body gets the first answer again and "
    "creates nothing; the same key with another body is a 409. Kept for 24 hours, per workspace.",
)


class IdempotentCreateMixin:
    """For API views: `self.idempotent(request, write)` runs `write()` (which returns the Response) once per key."""

    def idempotent(self, request, write) -> Response:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return write()
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise serializers.ValidationError(
                {IDEMPOTENCY_HEADER: [f"must be 1 to {MAX_KEY_LENGTH} printable characters"]}
            )
        workspace_id = request.auth.workspace_id
        fingerprint = request_fingerprint(method=request.method, path=request.path, body=request.data)
        with transaction.atomic():
            stored = idempotency_replay(workspace_id=workspace_id, key=key, fingerprint=fingerprint)
            if stored is not None:
                response = Response(stored.response_body, status=stored.response_status)
                response["Idempotent-Replayed"] = "true"
                return response
            response = write()
            if 200 <= response.status_code < 300:
                idempotency_store(
                    workspace_id=workspace_id,
                    key=key,
                    method=request.method,
                    path=request.path,
                    fingerprint=fingerprint,
                    status=response.status_code,
                    body=response.data,
                )
        return response
