"""One error body for every API failure:

    {"error": {"status": 404, "code": "not_found", "message": "…", "fields": {"input.chargePercentage": ["…"]}}}

`fields` is present only for validation errors (dotted paths of the request body or query). Texts are cut
(ERROR_TEXT_MAX characters): a message quoting a value sent (an unknown choice of 8,000 characters) never
echoes it whole."""

import math

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from texture_portal.exceptions import AccessDenied, ApplicationError, Conflict, InvalidTransition


def _flatten(detail, path="") -> dict[str, list[str]]:
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            flat.update(_flatten(value, f"{path}.{name}" if path and name else (name or path)))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {path or "non_field": [str(item) for item in detail]}
        flat = {}
        for index, item in enumerate(detail):
            if item:
                flat.update(_flatten(item, f"{path}.{index}" if path else str(index)))
        return flat
    return {path or "non_field": [str(detail)]}


ERROR_TEXT_MAX = 300
ERROR_NAME_MAX = 100


def cut_text(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    error = {"status": status_code, "code": code, "message": cut_text(message)}
    if fields:
        error["fields"] = {
            cut_text(name, ERROR_NAME_MAX): [cut_text(text) for text in texts] for name, texts in fields.items()
        }
    return {"error": error}


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent | RequestDataTooBig):
        # Django refuses these before any view looks at them: said in the API's body, not its HTML 400 page
        return Response(
            error_body(400, "request_too_large", f"{exc} Send fewer parameters or a smaller body."),
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, InvalidTransition):
        return Response(error_body(409, "invalid_transition", exc.message), status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, Conflict):
        return Response(error_body(409, "conflict", exc.message), status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, AccessDenied):
        return Response(error_body(403, "permission_denied", exc.message), status=status.HTTP_403_FORBIDDEN)
    elif isinstance(exc, ApplicationError):
        fields = {"non_field": [str(p) for p in exc.extra["problems"]]} if exc.extra.get("problems") else None
        return Response(error_body(400, "rejected", exc.message, fields), status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (logged, no internals leaked)
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(response.status_code, "validation_error", "The request is invalid.", _flatten(exc.detail))
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else "Request failed."
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body = error_body(response.status_code, code, message)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        body["error"]["message"] = f"Rate limit exceeded. Retry in {response['Retry-After']} s."
    response.data = body
    return response
