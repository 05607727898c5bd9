"""Each role's home in the admin: the panels, the navigation and the search box, composed from what apps register.

The core knows no app: each app registers, in its `AppConfig.ready()`, the panels it shows on a role's home,
the links it puts first in that role's navigation, and what the search box finds in it:

    home_panel_register(HomePanel(role=Role.OPS, key="fleet-health", title=_("Fleet health"),
                                  template="admin/fleet/home/fleet_health.html", context=fleet_health_panel))
    home_link_register(HomeLink(role=Role.OPS, title=_("Devices"), icon="devices",
                                url_name="admin:fleet_device_changelist", permission="fleet.view_device"))
    search_provider_register(fleet_search)  # (request, term, workspace_ids) -> list[SearchHit]

Logging in lands on `/admin/` (the index), which shows a tab per role the user holds (a superuser sees all
four); `?role=` picks one, the first held is the default. A panel's `context(request, workspace_ids)` gets only
the workspaces where the user holds that role (every workspace for a superuser) and must scope every query to
them; it should cost a constant, small number of queries whatever the fleet's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from texture_portal.choices import Role

# The roles with a home of their own, in the order their tabs appear. An Admin sees all of them.
HOME_ROLES = (Role.OPS, Role.CUSTOMER_SUPPORT, Role.ENGINEERING, Role.PROGRAM_LEAD)
ROLE_ICONS = {
    Role.OPS: "monitor_heart",
    Role.CUSTOMER_SUPPORT: "support_agent",
    Role.ENGINEERING: "integration_instructions",
    Role.PROGRAM_LEAD: "insights",
}


@dataclass(frozen=True)
class HomePanel:
    """A card on a role's home: a template rendered with what `context(request, workspace_ids)` returns."""

    role: str
    key: str
    title: Any
    template: str
    context: Callable[[HttpRequest, list[int]], dict]
    order: int = 100
    permission: str | None = None  # a model permission the user must hold in those workspaces
    wide: bool = False  # spans the page's full width


@dataclass(frozen=True)
class HomeLink:
    """An entry of a role's navigation, listed before the admin's full list of models."""

    role: str
    title: Any
    url_name: str
    icon: str = "arrow_forward"
    permission: str | None = None
    order: int = 100
    url_args: tuple = ()


@dataclass(frozen=True)
class SearchHit:
    title: str
    description: str
    link: str
    icon: str = "search"


@dataclass
class _Registry:
    panels: list[HomePanel] = field(default_factory=list)
    links: list[HomeLink] = field(default_factory=list)
    search_providers: list[Callable] = field(default_factory=list)


_registry = _Registry()


def home_panel_register(panel: HomePanel) -> None:
    if any(p.role == panel.role and p.key == panel.key for p in _registry.panels):
        return  # ready() may run twice (tests); the first registration stands
    _registry.panels.append(panel)


def home_link_register(link: HomeLink) -> None:
    if any(
        x.role == link.role and x.url_name == link.url_name and x.url_args == link.url_args for x in _registry.links
    ):
        return
    _registry.links.append(link)


def search_provider_register(provider: Callable[[HttpRequest, str, list[int]], list[SearchHit]]) -> None:
    if provider not in _registry.search_providers:
        _registry.search_providers.append(provider)


def home_panels(role: str) -> list[HomePanel]:
    return sorted((p for p in _registry.panels if p.role == role), key=lambda p: (p.order, p.key))


def home_links(role: str) -> list[HomeLink]:
    return sorted((x for x in _registry.links if x.role == role), key=lambda x: (x.order, str(x.title)))


# -- who holds what -----------------------------------------------------------------------------------------


def roles_held(user, *, with_workspaces: bool = True) -> dict[str, list[int]]:
    """{role: [workspace ids]} for the homes this user may open, in HOME_ROLES order.

    A superuser, or an Admin of a workspace, gets every home for the workspaces concerned. The memberships are
    the ones the permission backend reads anyway (no query of its own); a superuser's workspaces are listed only
    when `with_workspaces` (the navigation needs only the roles)."""
    from texture_portal.auth import roles_by_workspace
    from texture_portal.models import Workspace

    if not (user.is_authenticated and user.is_active):
        return {}
    if user.is_superuser:
        every = list(Workspace.objects.order_by("pk").values_list("pk", flat=True)) if with_workspaces else []
        return dict.fromkeys(HOME_ROLES, every)
    held: dict[str, list[int]] = {}
    for workspace_id, role in sorted(roles_by_workspace(user)):
        for home in HOME_ROLES if role == Role.ADMIN else (role,):
            held.setdefault(home, []).append(workspace_id)
    return {role: held[role] for role in HOME_ROLES if role in held}


def _allowed(user, permission: str | None, workspace_ids: list[int]) -> bool:
    if permission is None or user.is_superuser:
        return True
    from texture_portal.auth import WorkspaceRoleBackend

    return bool(set(WorkspaceRoleBackend().workspace_ids_with_perm(user, permission)) & set(workspace_ids))


def _url(link: HomeLink) -> str | None:
    try:
        return reverse(link.url_name, args=link.url_args)
    except NoReverseMatch:
        return None


# -- unfold's callbacks (settings.UNFOLD) -------------------------------------------------------------------


def console_styles(request: HttpRequest) -> str:
    from django.templatetags.static import static

    return static("texture_portal/console.css")


def dashboard(request: HttpRequest, context: dict) -> dict:
    """The index page: a tab per role held, the chosen role's panels rendered."""
    held = roles_held(request.user)
    chosen = request.GET.get("role")
    if chosen not in held:
        chosen = next(iter(held), None)
    tabs = [
        {
            "role": role,
            "label": Role(role).label,
            "icon": ROLE_ICONS.get(role, "home"),
            "link": f"?role={role}",
            "active": role == chosen,
        }
        for role in held
    ]
    panels = []
    if chosen:
        workspace_ids = held[chosen]
        for panel in home_panels(chosen):
            if not _allowed(request.user, panel.permission, workspace_ids):
                continue
            panel_context = panel.context(request, workspace_ids)
            if panel_context is None:
                continue
            html = render_to_string(panel.template, {**panel_context, "panel": panel}, request=request)
            panels.append({"key": panel.key, "title": panel.title, "html": html, "wide": panel.wide})
    context.update({"role_tabs": tabs, "home_role": chosen, "home_panels": panels})
    return context


def sidebar_navigation(request: HttpRequest) -> list[dict]:
    """The roles' own pages first (the chosen role's, then the others held), then the admin's models.

    One link is marked active: the one whose path is the longest prefix of the page's (unfold would light every
    link whose path the page's contains: the engineering page and Integrations both)."""
    held = roles_held(request.user, with_workspaces=False)
    index = reverse("admin:index")
    chosen = request.GET.get("role") if request.path == index else None
    order = sorted(held, key=lambda role: role != chosen)
    groups = []
    for role in order:
        items = []
        for link in home_links(role):
            url = _url(link)
            if url is None or not _allowed(request.user, link.permission, held[role]):
                continue
            items.append({"title": link.title, "icon": link.icon, "link": url})
        if items:
            home = {"title": _("Home"), "icon": ROLE_ICONS.get(role, "home"), "link": f"{index}?role={role}"}
            groups.append({"title": Role(role).label, "separator": True, "collapsible": False, "items": [home, *items]})
    _mark_active(request, groups, index)
    return groups


def _mark_active(request: HttpRequest, groups: list[dict], index: str) -> None:
    path = request.path
    best = None
    for group in groups:
        for item in group["items"]:
            item["active"] = False
            link_path = item["link"].split("?")[0]
            if link_path == index:
                matches = path == index and item["link"].endswith(f"?role={request.GET.get('role', '')}")
                matches = matches or (path == index and not request.GET.get("role") and best is None)
            else:
                matches = path.startswith(link_path)
            if matches and (best is None or len(link_path) > len(best[0])):
                best = (link_path, item)
    if best is not None:
        best[1]["active"] = True


def search(request: HttpRequest, term: str) -> list:
    """The search box of every page (unfold's command search): what each app's provider finds, scoped to the
    workspaces the user may see."""
    from unfold.dataclasses import SearchResult

    from texture_portal.models import WorkspaceMembership

    term = (term or "").strip()
    if len(term) < 2 or not request.user.is_authenticated:
        return []
    if request.user.is_superuser:
        from texture_portal.models import Workspace

        workspace_ids = list(Workspace.objects.values_list("pk", flat=True))
    else:
        workspace_ids = list(
            WorkspaceMembership.objects.filter(user_id=request.user.pk).values_list("workspace_id", flat=True)
        )
    results = []
    for provider in _registry.search_providers:
        for hit in provider(request, term, workspace_ids):
            results.append(SearchResult(title=hit.title, description=hit.description, link=hit.link, icon=hit.icon))
    return results
