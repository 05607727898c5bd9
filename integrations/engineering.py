"""The engineering page (Integrations → Engineering): one workspace's integration tiles (Test connection, Discover
now), its API keys (create one; the key is shown once), its webhook destinations with their delivery log (create
one; Send test event), and what an integrator needs to start (the API base URL, the auth header, the rate limit, the
OpenAPI docs and docs/integrators.md).

It composes integrations (its own) with the core's API keys (`texture_portal.services.api_key_create`) and events
service (`texture_portal.events`): integrations may import the core, never the reverse. Views are thin: each POST
checks the role in the workspace concerned and calls one service. The page costs a constant number of queries
whatever the number of devices, runs, destinations and attempts (tests/integrations/test_engineering_page.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from integrations import selectors, services
from integrations.models import WorkspaceIntegration
from texture_portal.api.authentication import API_KEY_HEADER
from texture_portal.api.throttling import rate_limit
from texture_portal.api_keys import READ_ALL, ApiKey, api_scope_choices, api_scopes_normalize
from texture_portal.auth import WorkspaceRoleBackend, workspaces_where
from texture_portal.choices import AuditSource
from texture_portal.demo.webhooks import demo_receiver_deliveries, demo_receiver_url
from texture_portal.events import selectors as event_selectors
from texture_portal.events import services as event_services
from texture_portal.events.guard import webhook_url_check
from texture_portal.events.models import Destination
from texture_portal.exceptions import ApplicationError
from texture_portal.services import api_key_create

VIEW_INTEGRATIONS = "integrations.view_workspaceintegration"
CHANGE_INTEGRATIONS = "integrations.change_workspaceintegration"
ADD_INTEGRATIONS = "integrations.add_workspaceintegration"
VIEW_API_KEYS, ADD_API_KEYS = "texture_portal.view_apikey", "texture_portal.add_apikey"
VIEW_DESTINATIONS, ADD_DESTINATIONS = "events.view_destination", "events.add_destination"
CHANGE_DESTINATIONS = "events.change_destination"
VIEW_DELIVERIES = "events.view_deliveryattempt"

GUIDE = settings.BASE_DIR / "docs" / "integrators.md"
API_KEYS_SHOWN = 25
ATTEMPTS_SHOWN = 20
PERIODS = {1: "second", 60: "minute", 3600: "hour"}


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What will use this key, e.g. “MDMS sync”."))
    expires_at = forms.DateTimeField(
        label=_("Expires (UTC)"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Empty: never expires."),
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=api_scope_choices,
        initial=[READ_ALL],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Read-only unless you tick what the integration must change (a write scope also reads)."),
    )

    def clean_scopes(self):
        try:
            return api_scopes_normalize(self.cleaned_data["scopes"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class DestinationCreateForm(forms.Form):
    label = forms.CharField(label=_("Label"), max_length=100)
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            webhook_url_check(url)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return url


@dataclass
class Access:
    """What the user may do in one workspace (the role held there decides; a superuser may do everything)."""

    user: object
    workspace_id: int

    def may(self, perm: str) -> bool:
        if self.user.is_active and self.user.is_superuser:
            return True
        return self.workspace_id in WorkspaceRoleBackend().workspace_ids_with_perm(self.user, perm)


def rate_limit_label() -> str:
    count, seconds = rate_limit()
    return f"{count} requests per {PERIODS.get(seconds, f'{seconds} s')}"


class EngineeringPage:
    """The page and its actions, wired into the integrations admin by `WorkspaceIntegrationAdmin.get_urls`."""

    template = "admin/integrations/engineering.html"

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    def urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("engineering/", wrap(self.page_view), name="integrations_engineering"),
            path(
                "engineering/integrations/<int:pk>/test/",
                wrap(require_POST(self.test_connection_view)),
                name="integrations_engineering_test",
            ),
            path(
                "engineering/integrations/<int:pk>/discover/",
                wrap(require_POST(self.discover_view)),
                name="integrations_engineering_discover",
            ),
            path("engineering/api-keys/", wrap(self.api_key_create_view), name="integrations_engineering_api_key"),
            path(
                "engineering/destinations/",
                wrap(self.destination_create_view),
                name="integrations_engineering_destination",
            ),
            path(
                "engineering/destinations/<int:pk>/test/",
                wrap(require_POST(self.destination_test_view)),
                name="integrations_engineering_destination_test",
            ),
            path("engineering/integrators-guide/", wrap(self.guide_view), name="integrations_engineering_guide"),
        ]

    # -- which workspace -----------------------------------------------------------------------------------

    def _workspaces(self, request):
        workspaces = list(workspaces_where(request.user, VIEW_INTEGRATIONS).select_related("organization"))
        if not workspaces:
            raise PermissionDenied("The engineering page needs the Engineering role (or Ops, Program Lead, Admin).")
        return sorted(workspaces, key=lambda w: (w.organization.name, w.name, w.pk))

    def _workspace(self, request, workspaces):
        wanted = request.POST.get("workspace") or request.GET.get("workspace")
        if wanted:
            chosen = next((w for w in workspaces if str(w.pk) == wanted), None)
            if chosen is None:
                raise Http404("No such workspace among yours.")
            return chosen
        return workspaces[0]

    def _page_url(self, workspace, anchor: str = "") -> str:
        url = reverse("admin:integrations_engineering") + "?" + urlencode({"workspace": workspace.pk})
        return url + (f"#{anchor}" if anchor else "")

    # -- the page ----------------------------------------------------------------------------------------

    def page_view(self, request):
        workspaces = self._workspaces(request)
        return self._render(request, workspaces, self._workspace(request, workspaces))

    def _render(self, request, workspaces, workspace, *, status: int = 200, **extra):
        access = Access(request.user, workspace.pk)
        ids = [workspace.pk]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Engineering"),
            "content_title": _("Engineering"),  # the console's header (no `opts`: this page is no model's)
            "workspaces": workspaces,
            "workspace": workspace,
            "tiles": selectors.integration_tiles(workspace_id=workspace.pk),
            "can_manage_integrations": access.may(CHANGE_INTEGRATIONS),
            "can_add_integration": access.may(ADD_INTEGRATIONS),
            "api": {
                "base_url": request.build_absolute_uri("/v1/"),
                "header": API_KEY_HEADER,
                "rate_limit": rate_limit_label(),
                "docs": reverse("api-docs"),
                "redoc": reverse("api-redoc"),
                "schema": reverse("api-schema"),
                "guide": reverse("admin:integrations_engineering_guide"),
            },
            "api_key_form": extra.pop("api_key_form", None) or ApiKeyCreateForm(),
            "destination_form": extra.pop("destination_form", None) or DestinationCreateForm(),
        }
        if access.may(VIEW_API_KEYS):
            context["api_keys"] = list(
                ApiKey.objects.filter(workspace_id=workspace.pk).select_related("created_by")[:API_KEYS_SHOWN]
            )
            context["can_add_api_key"] = access.may(ADD_API_KEYS)
        if access.may(VIEW_DESTINATIONS):
            context["destinations"] = list(event_selectors.destinations_overview(workspace_ids=ids))
            context["can_add_destination"] = access.may(ADD_DESTINATIONS)
            context["can_test_destination"] = access.may(CHANGE_DESTINATIONS)
        if access.may(VIEW_DELIVERIES):
            destination_id = request.GET.get("destination") or ""
            context["attempts"] = event_selectors.delivery_attempts_recent(
                workspace_ids=ids,
                # an id no database holds is simply no destination (never a database error)
                destination_id=int(destination_id) if destination_id.isdigit() and len(destination_id) < 19 else None,
                limit=ATTEMPTS_SHOWN,
            )
            context["delivery_figures"] = event_selectors.delivery_figures(workspace_ids=ids)
        if settings.DEMO_WEBHOOK_RECEIVER and demo_receiver_url():
            destination_ids = [d.pk for d in context.get("destinations", [])]
            context["demo_receiver"] = {
                "url": demo_receiver_url(),
                "received": demo_receiver_deliveries(destination_ids=destination_ids)[:10],
            }
        context.update(extra)
        return TemplateResponse(request, self.template, context, status=status)

    # -- integrations --------------------------------------------------------------------------------------

    def _integration(self, request, pk) -> WorkspaceIntegration:
        integration = get_object_or_404(self.model_admin.get_queryset(request), pk=pk)
        if not request.user.has_perm(CHANGE_INTEGRATIONS, integration):
            raise PermissionDenied(f"You may not manage integrations in “{integration.workspace}”.")
        return integration

    def test_connection_view(self, request, pk):
        integration = self._integration(request, pk)
        outcome = services.integration_test_connection(
            integration=integration, actor=request.user, source=AuditSource.ADMIN
        )
        level = messages.SUCCESS if outcome.startswith("Connected") else messages.ERROR
        messages.add_message(request, level, f"{integration.get_channel_display()}: {outcome}")
        return HttpResponseRedirect(self._page_url(integration.workspace, f"tile-{integration.channel}"))

    def discover_view(self, request, pk):
        integration = self._integration(request, pk)
        try:
            services.integration_discovery_queue(integration=integration, actor=request.user, source=AuditSource.ADMIN)
        except ApplicationError as exc:
            messages.error(request, f"{integration.get_channel_display()}: {exc.message}")
        else:
            messages.success(
                request,
                f"{integration.get_channel_display()}: discovery queued; its run shows on the tile and in the "
                "integration's runs.",
            )
        return HttpResponseRedirect(self._page_url(integration.workspace, f"tile-{integration.channel}"))

    # -- API keys ----------------------------------------------------------------------------------------

    def api_key_create_view(self, request):
        workspaces = self._workspaces(request)
        workspace = self._workspace(request, workspaces)
        if request.method != "POST":
            return HttpResponseRedirect(self._page_url(workspace, "api-keys"))
        if not Access(request.user, workspace.pk).may(ADD_API_KEYS):
            raise PermissionDenied(f"You may not create API keys in “{workspace}”.")
        form = ApiKeyCreateForm(request.POST)
        if not form.is_valid():
            return self._render(request, workspaces, workspace, status=400, api_key_form=form)
        try:
            api_key, raw = api_key_create(
                workspace=workspace,
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data.get("expires_at"),
                scopes=form.cleaned_data["scopes"],
                actor=request.user,
                source=AuditSource.ADMIN,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return self._render(request, workspaces, workspace, status=400, api_key_form=form)
        # The key is in this response only (not in a message cookie, not in the session): shown once.
        return self._render(
            request,
            workspaces,
            workspace,
            shown_once={"kind": "api-key", "name": api_key.name, "value": raw, "header": API_KEY_HEADER},
        )

    # -- destinations ------------------------------------------------------------------------------------

    def destination_create_view(self, request):
        workspaces = self._workspaces(request)
        workspace = self._workspace(request, workspaces)
        if request.method != "POST":
            return HttpResponseRedirect(self._page_url(workspace, "destinations"))
        if not Access(request.user, workspace.pk).may(ADD_DESTINATIONS):
            raise PermissionDenied(f"You may not create destinations in “{workspace}”.")
        form = DestinationCreateForm(request.POST)
        if not form.is_valid():
            return self._render(request, workspaces, workspace, status=400, destination_form=form)
        try:
            destination = event_services.destination_create(
                workspace=workspace,
                label=form.cleaned_data["label"],
                url=form.cleaned_data["url"],
                actor=request.user,
                source=AuditSource.ADMIN,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return self._render(request, workspaces, workspace, status=400, destination_form=form)
        return self._render(
            request,
            workspaces,
            workspace,
            shown_once={"kind": "signing-secret", "name": destination.label, "value": destination.secret},
        )

    def destination_test_view(self, request, pk):
        workspaces = self._workspaces(request)
        destination = get_object_or_404(Destination.objects.filter(workspace_id__in=[w.pk for w in workspaces]), pk=pk)
        if not request.user.has_perm(CHANGE_DESTINATIONS, destination):
            raise PermissionDenied(f"You may not send test events to “{destination.label}”.")
        attempt = event_services.destination_test_send(
            destination=destination, actor=request.user, source=AuditSource.ADMIN
        )
        if attempt.status == "succeeded":
            messages.success(
                request,
                f"Test event delivered to “{destination.label}”: HTTP {attempt.response_status} in "
                f"{attempt.duration_ms} ms.",
            )
        else:
            messages.error(request, f"Test event to “{destination.label}” failed: {attempt.error}.")
        workspace = next(w for w in workspaces if w.pk == destination.workspace_id)
        return HttpResponseRedirect(self._page_url(workspace, "deliveries"))

    # -- docs/integrators.md -------------------------------------------------------------------------------

    def guide_view(self, request):
        self._workspaces(request)  # the same people as the page
        try:
            text = GUIDE.read_text(encoding="utf-8")
        except OSError:
            text = None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Guide for integrators"),
            "content_title": _("Guide for integrators"),
            "guide": text,
            "guide_path": "docs/integrators.md",
        }
        return TemplateResponse(request, "admin/integrations/integrators_guide.html", context)
