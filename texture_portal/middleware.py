import re
import uuid

from texture_portal.context import reset_correlation_id, set_correlation_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CorrelationIdMiddleware:
    """Gives every request a correlation id (from `X-Request-ID` when it is sane) for the audit log."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        correlation_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = set_correlation_id(correlation_id)
        try:
            response = self.get_response(request)
        finally:
            reset_correlation_id(token)
        response["X-Request-ID"] = correlation_id
        return response
