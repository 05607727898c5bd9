"""Texture Connect's hosted page: no login (the signed link is the customer's key), mobile-friendly, the
workspace's name, vendored assets only. Thin: each step parses, calls one service, renders or redirects."""

from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from integrations.choices import ConnectSessionStatus
from integrations.connect import services
from integrations.connect.forms import ChannelForm, DetailsForm, credentials_form
from texture_portal.exceptions import ApplicationError

# The session this browser went to the OEM for (signed): the `state` coming back must be that session's.
BROWSER_COOKIE = "texture_connect"
COOKIE_SALT = "integrations.connect.browser"


def _context(session, **extra) -> dict:
    workspace = session.workspace if session is not None else None
    return {
        "session": session,
        "client_name": (session.client_name or workspace.organization.name) if session else "Texture Connect",
        "workspace_name": str(workspace.organization.name) if workspace else "",
        **extra,
    }


def _problem(request, *, title: str, message: str, status: int, session=None):
    return render(request, "connect/problem.html", _context(session, title=title, message=message), status=status)


def _session_or_problem(request, token: str):
    try:
        return services.connect_session_from_link(token), None
    except services.LinkExpired:
        return None, _problem(
            request,
            title="This link has expired",
            message="Ask the company that sent it for a new link.",
            status=410,
        )
    except services.LinkInvalid as exc:
        return None, _problem(request, title="This link is not valid", message=exc.message, status=400)


def _connected(request, session):
    return render(request, "connect/outcome.html", _context(session, return_url=services.connect_redirect_url(session)))


@never_cache
@require_http_methods(["GET", "POST"])
def start(request, token: str):
    """Step 1: the customer's details (skipped when the integrator sent complete `customerInfo`)."""
    session, problem = _session_or_problem(request, token)
    if problem:
        return problem
    if session.status == ConnectSessionStatus.CONNECTED:
        return _connected(request, session)
    initial = services.connect_session_details(session)
    complete_info = session.customer_info and services.details_complete(initial)
    if request.method == "GET" and not session.customer_details and not session.contact_id and complete_info:
        services.connect_session_details_save(session=session, details=initial)
        return redirect("connect:manufacturer", token=token)
    form = DetailsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.connect_session_details_save(session=session, details=form.cleaned_data)
        except ApplicationError as exc:
            return _problem(request, title="This link cannot be used", message=exc.message, status=409)
        return redirect("connect:manufacturer", token=token)
    return render(request, "connect/details.html", _context(session, form=form, token=token))


@never_cache
@require_http_methods(["GET", "POST"])
def manufacturer(request, token: str):
    """Step 2: the manufacturer (skipped when only one is on offer), then off to its consent page, or to the
    form for its own credentials."""
    session, problem = _session_or_problem(request, token)
    if problem:
        return problem
    if session.status == ConnectSessionStatus.CONNECTED:
        return _connected(request, session)
    if not session.customer_details:
        return redirect("connect:start", token=token)
    channels = services.connect_channels(session)
    if not channels:
        return _problem(
            request,
            title="Nothing to connect here yet",
            message="None of the manufacturers this link is for can be connected at the moment.",
            status=409,
            session=session,
        )
    form = ChannelForm(
        request.POST or None,
        choices=[(c.channel, f"{c.label} — {', '.join(c.manufacturers[:6])}") for c in channels],
    )
    chosen = None
    if len(channels) == 1:
        chosen = channels[0]
    elif request.method == "POST" and form.is_valid():
        chosen = next(c for c in channels if c.channel == form.cleaned_data["channel"])
    if chosen is None:
        return render(request, "connect/manufacturer.html", _context(session, form=form, channels=channels))
    if not chosen.uses_oauth:
        return redirect("connect:credentials", token=token, channel=chosen.channel)
    redirect_uri = request.build_absolute_uri(reverse("connect:callback", args=[chosen.channel]))
    try:
        url = services.connect_session_authorize(session=session, channel=chosen.channel, redirect_uri=redirect_uri)
    except ApplicationError as exc:
        return _problem(request, title="This manufacturer cannot be connected", message=exc.message, status=409)
    response = HttpResponseRedirect(url)
    response.set_signed_cookie(
        BROWSER_COOKIE,
        str(session.public_id),
        salt=COOKIE_SALT,
        max_age=int(services.link_ttl().total_seconds()),
        httponly=True,
        samesite="Lax",  # sent when the OEM's page sends the browser back (a top-level GET)
        secure=request.is_secure(),
    )
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def credentials(request, token: str, channel: str):
    """Step 2b: an OEM without OAuth takes the customer's own login or key (stored encrypted)."""
    session, problem = _session_or_problem(request, token)
    if problem:
        return problem
    if session.status == ConnectSessionStatus.CONNECTED:
        return _connected(request, session)
    choice = next((c for c in services.connect_channels(session) if c.channel == channel and not c.uses_oauth), None)
    if choice is None or not session.customer_details:
        return redirect("connect:start", token=token)
    form = credentials_form(choice.fields, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            session = services.connect_session_credentials_submit(
                session=session, channel=channel, credentials=form.cleaned_data
            )
        except ApplicationError as exc:
            return _problem(request, title="This link cannot be used", message=exc.message, status=409)
        return _ended(request, session, token=token)
    return render(request, "connect/credentials.html", _context(session, form=form, choice=choice))


def _ended(request, session, *, token: str | None = None):
    if session.status == ConnectSessionStatus.CONNECTED:
        return redirect(services.connect_redirect_url(session))
    return render(
        request,
        "connect/outcome.html",
        _context(
            session,
            retry_url=services.connect_link_path(session),
            return_url=services.connect_redirect_url(session),
        ),
    )


@never_cache
def callback(request, channel: str):
    """The OEM sends the customer back here (`redirect_uri`): code (or error) and `state`."""
    browser_session = request.get_signed_cookie(
        BROWSER_COOKIE, default="", salt=COOKIE_SALT, max_age=int(services.link_ttl().total_seconds())
    )
    try:
        session = services.connect_session_callback(
            channel=channel,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            error=request.GET.get("error", ""),
            error_description=request.GET.get("error_description", ""),
            browser_session=browser_session,
        )
    except services.LinkExpired:
        return _problem(
            request, title="This link has expired", message="Ask the company that sent it for a new link.", status=410
        )
    except services.CallbackRefused as exc:
        return _problem(request, title="This sign-in cannot be used", message=exc.message, status=400)
    except ApplicationError as exc:
        return _problem(request, title="This manufacturer cannot be connected", message=exc.message, status=409)
    response = _ended(request, session)
    if session.status == ConnectSessionStatus.CONNECTED:
        response.delete_cookie(BROWSER_COOKIE)
    return response


def done(request):
    """Where sessions created in the admin send the customer at the end (their `redirectUrl`)."""
    status = request.GET.get("status", "")
    return render(request, "connect/done.html", {"status": status, "client_name": "Texture Connect"})
