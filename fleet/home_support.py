"""What the fleet shows on Customer Support's home and finds from the search box of every page (registered with
texture_portal.home in FleetConfig.ready)."""

from urllib.parse import urlencode

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from fleet.customer import CustomerHit, contacts_by_ids, customer_search, customers_recently_offline
from texture_portal.choices import Role
from texture_portal.home import (
    HomeLink,
    HomePanel,
    SearchHit,
    home_link_register,
    home_panel_register,
    search_provider_register,
)

# The customers a user opened last (their ids, newest first), kept in the session by the customer page.
RECENTLY_VIEWED_SESSION_KEY = "fleet_customers_viewed"
RECENTLY_VIEWED_KEPT = 8
COMMAND_SEARCH_LIMIT = 8


def workspaces_allowed(user, permission: str, workspace_ids: list[int]) -> list[int]:
    """Those of `workspace_ids` where the user holds `permission` (all of them for a superuser)."""
    if user.is_superuser:
        return list(workspace_ids)
    from texture_portal.auth import WorkspaceRoleBackend

    return sorted(set(WorkspaceRoleBackend().workspace_ids_with_perm(user, permission)) & set(workspace_ids))


def workspaces_with_perm(user, permission: str) -> list[int]:
    """Every workspace where the user holds `permission` (all of them for a superuser)."""
    if user.is_superuser:
        from texture_portal.models import Workspace

        return list(Workspace.objects.order_by("pk").values_list("pk", flat=True))
    from texture_portal.auth import WorkspaceRoleBackend

    return WorkspaceRoleBackend().workspace_ids_with_perm(user, permission)


def customer_link(hit: CustomerHit) -> str:
    """The customer page; a serial hit opens it on that device."""
    url = reverse("admin:fleet_contact_customer", args=[hit.contact.pk])
    device_id = hit.device_id
    return f"{url}?device={device_id}#device-{device_id}" if device_id else url


def customer_search_hits(request, term: str, workspace_ids: list[int]) -> list[SearchHit]:
    """The search box's customers: whoever the term finds in the workspaces where the user may view contacts.

    unfold keeps a command search's results for 5 minutes in Django's cache, keyed by the user's id and the
    (lower-cased) term: never shared between users, but a customer added or changed meanwhile shows the next
    time the term is typed after that. The results page (`admin:fleet_contact_search`) is never cached."""
    allowed = workspaces_allowed(request.user, "fleet.view_contact", workspace_ids)
    hits = customer_search(term=term, workspace_ids=allowed, limit=COMMAND_SEARCH_LIMIT)
    results = [
        SearchHit(
            title=f"{hit.contact.first_name} {hit.contact.last_name} · {hit.contact.reference_id}",
            description=hit.describe(),
            link=customer_link(hit),
            icon="battery_charging_full" if hit.device_id else "person",
        )
        for hit in hits
    ]
    if len(hits) == COMMAND_SEARCH_LIMIT:
        results.append(
            SearchHit(
                title=f"All customers matching “{term}”",
                description="Customer search results",
                link=f"{reverse('admin:fleet_contact_search')}?{urlencode({'q': term})}",
                icon="person_search",
            )
        )
    return results


def support_search_panel(request, workspace_ids: list[int]) -> dict:
    """The search form, the customers this user opened last, and the devices that went offline last (two
    queries whatever the fleet's size)."""
    viewed = request.session.get(RECENTLY_VIEWED_SESSION_KEY, []) if hasattr(request, "session") else []
    viewed = [pk for pk in viewed if isinstance(pk, int)][:RECENTLY_VIEWED_KEPT]
    return {
        "search_url": reverse("admin:fleet_contact_search"),
        "recently_viewed": contacts_by_ids(ids=viewed, workspace_ids=workspace_ids) if viewed else [],
        "recently_offline": customers_recently_offline(workspace_ids=workspace_ids),
    }


def remember_viewed(request, contact_id: int) -> None:
    viewed = [pk for pk in request.session.get(RECENTLY_VIEWED_SESSION_KEY, []) if pk != contact_id]
    request.session[RECENTLY_VIEWED_SESSION_KEY] = [contact_id, *viewed][:RECENTLY_VIEWED_KEPT]


def register() -> None:
    search_provider_register(customer_search_hits)
    home_panel_register(
        HomePanel(
            role=Role.CUSTOMER_SUPPORT,
            key="customer-search",
            title=_("Find a customer"),
            template="admin/fleet/home/support_search.html",
            context=support_search_panel,
            order=10,
            permission="fleet.view_contact",
            wide=True,
        )
    )
    for order, (title, url_name, icon, permission) in enumerate(
        [
            (_("Customer search"), "admin:fleet_contact_search", "person_search", "fleet.view_contact"),
            (_("Contacts"), "admin:fleet_contact_changelist", "contacts", "fleet.view_contact"),
            (_("Devices"), "admin:fleet_device_changelist", "devices", "fleet.view_device"),
            (_("Sites"), "admin:fleet_site_changelist", "home_pin", "fleet.view_site"),
        ]
    ):
        home_link_register(
            HomeLink(
                role=Role.CUSTOMER_SUPPORT,
                title=title,
                url_name=url_name,
                icon=icon,
                permission=permission,
                order=10 * (order + 1),
            )
        )
