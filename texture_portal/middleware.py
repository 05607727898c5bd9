import re
import uuid
import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import TooManyFieldsSent, ValidationError
from django.http import HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from texture_portal.api.exceptions import error_body
from texture_portal.context import reset_correlation_id, set_correlation_id
from texture_portal.text import cut
from texture_portal.timezones import validate_timezone_name, zone_for_workspaces, zone_or_utc

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
API_PREFIX = "/v1/"


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


class AdminTimezoneMiddleware:
    """Admin pages show and read times in the zone the user works in (the API is untouched: it speaks UTC).

    The zone of an admin request, first that applies:
    1. the one the user chose for this session with `?tz=America/New_York` on any admin URL (`?tz=` or
       `?tz=auto` forgets the choice) — the page is redirected to itself without the parameter;
    2. a superuser (who sees every workspace): UTC;
    3. the timezone of the user's workspaces when they all share it; UTC when they differ (or there is none).
    Every time the admin shows carries its abbreviation, so a UTC page says so. A page about one program's event
    overrides this with the program's zone (dispatch's event page); a schedule labels its occurrences in its own.
    Costs one query per admin request of a non-superuser (the distinct zones of their workspaces).
    """

    SESSION_KEY = "admin_timezone"
    PARAMETER = "tz"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not _is_admin_path(request.path_info):
            return self.get_response(request)
        if self.PARAMETER in request.GET and request.method in ("GET", "HEAD"):
            return self._choose(request)
        with timezone.override(admin_zone(request)):
            # TemplateResponses render inside get_response (the handler renders them before the middleware
            # unwinds), so everything the page shows is converted in this zone.
            return self.get_response(request)

    def _choose(self, request):
        """Remember (or forget) the zone chosen with ?tz=, then show the page without the parameter (a
        changelist would read it as a filter)."""
        name = request.GET.get(self.PARAMETER, "").strip()
        if request.user.is_authenticated:
            if name in ("", "auto"):
                request.session.pop(self.SESSION_KEY, None)
            else:
                try:
                    validate_timezone_name(name)
                except ValidationError as exc:
                    messages.error(request, exc.messages[0])
                else:
                    request.session[self.SESSION_KEY] = name
                    messages.info(
                        request, f"Times are shown in {name} for this session (add ?tz=auto to go back to the default)."
                    )
        rest = request.GET.copy()
        del rest[self.PARAMETER]
        query = rest.urlencode()
        return HttpResponseRedirect(f"{request.path}?{query}" if query else request.path)


class AdminInputGuardMiddleware:
    """Admin requests carrying what no admin page can use get a short 400 before any view runs:

    - a NUL byte in the address, a query value or a form value (PostgreSQL refuses it in text, so a filter, an
      autocomplete term or a reason typed into a form would end in a database error);
    - a query value longer than ADMIN_QUERY_VALUE_MAX_LENGTH (a 100,000-character search is a LIKE pattern SQLite
      refuses; nobody filters with a paragraph). Searches have their own, lower limit in the pages that run them
      (ADMIN_SEARCH_MAX_LENGTH), which say so on the page.
    One place for every admin page, Django's and the apps' custom ones alike; the message quotes the parameter's
    name, never its value.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _is_admin_path(request.path_info):
            refusal = self.refusal(request)
            if refusal:
                return HttpResponseBadRequest(f"Bad request: {refusal}", content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    def refusal(self, request) -> str | None:
        if "\x00" in request.path_info:
            return "the address holds a NUL character."
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return f"the query parameter “{cut(name)}” holds a NUL character."
            longest = max((len(value) for value in values), default=0)
            if longest > settings.ADMIN_QUERY_VALUE_MAX_LENGTH:
                return (
                    f"the query parameter “{cut(name)}” is {longest:,} characters long; "
                    f"at most {settings.ADMIN_QUERY_VALUE_MAX_LENGTH:,} are allowed."
                )
        if request.method == "POST":
            for name, values in request.POST.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    return f"the form field “{cut(name)}” holds a NUL character."
        return None


def _is_admin_path(path: str) -> bool:
    if path.startswith(API_PREFIX):  # the API's requests, the most frequent, skip the reverse()
        return False
    try:
        return path.startswith(reverse("admin:index"))
    except NoReverseMatch:
        return False


def admin_zone(request) -> zoneinfo.ZoneInfo:
    """The zone an admin request shows and reads times in (see AdminTimezoneMiddleware)."""
    user = request.user
    if not (user.is_authenticated and user.is_active):
        return zoneinfo.ZoneInfo("UTC")
    chosen = request.session.get(AdminTimezoneMiddleware.SESSION_KEY)
    if chosen:
        return zone_or_utc(chosen)
    if user.is_superuser:
        return zoneinfo.ZoneInfo("UTC")
    from texture_portal.auth import workspace_timezone_names

    return zone_for_workspaces(workspace_timezone_names(user))  # read with the permissions: no query of its own


class ApiRequestLimitsMiddleware:
    """Refuses, in the API's own error body and before any view or parser reads them, `/v1` requests that ask
    the server to spend more than the configured limits (README "Limits"):

    - a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE (API_UPLOAD_MAX_BYTES for a multipart upload), judged
      by its Content-Length so nothing is read;
    - more query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS;
    - a query parameter name or value longer than API_QUERY_VALUE_MAX_LENGTH characters, or holding a NUL
      character (which no filter matches and PostgreSQL refuses in a query); a path or a header holding a NUL.

    Django would answer the first two with its HTML 400 page on the paths no DRF view handles; filters and
    cursors would reach the database with the last. Error texts name the parameter, never echo its value."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            refusal = api_request_refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)


def _shown_name(name: str) -> str:
    name = name.replace("\x00", "\\0")
    return name if len(name) <= 40 else name[:39] + "…"


def api_request_refusal(request):
    """The error response a `/v1` request's size or query earns, or None when it is within the limits."""

    def too_large(message: str):
        return JsonResponse(error_body(400, "request_too_large", message), status=400)

    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    multipart = request.content_type == "multipart/form-data"
    limit = settings.API_UPLOAD_MAX_BYTES if multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and length > limit:
        what = "upload" if multipart else "body"
        return too_large(f"The request {what} is {length:,} bytes; the limit is {limit:,}.")
    try:
        query = request.GET
    except TooManyFieldsSent:
        return too_large(
            f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} query parameters; send fewer (ids may be "
            "comma-separated)."
        )
    max_length = settings.API_QUERY_VALUE_MAX_LENGTH
    fields = {}
    if "\x00" in request.path_info:  # a path parameter (a tag's name) no row can hold; PostgreSQL refuses it
        fields["path"] = ["The path may not contain NUL characters (%00)."]
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
            header = key[5:].replace("_", "-").title()
            fields[_shown_name(header)] = ["Headers may not contain NUL characters."]
    for name, values in query.lists():
        for value in (name, *values):
            if "\x00" in value:
                fields[_shown_name(name)] = ["Query parameters may not contain NUL characters (%00)."]
            elif len(value) > max_length:
                fields[_shown_name(name)] = [f"Longer than {max_length:,} characters."]
    if fields:
        return JsonResponse(error_body(400, "validation_error", "The request is invalid.", fields), status=400)
    return None
