"""Customer support's pages, added to the contacts' admin: the search results (`/admin/fleet/contact/search/?q=`)
and the customer page (`/admin/fleet/contact/<id>/customer/`). Views stay thin: the reads are fleet.customer's."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from fleet.choices import DeviceState
from fleet.customer import (
    SEARCH_MIN_LENGTH,
    customer_page,
    customer_search,
    customer_sections,
    device_counts_by_contact,
    phone_display,
)
from fleet.home_support import customer_link, remember_viewed, workspaces_with_perm
from texture_portal.filters import MAX_ID

SEARCH_PAGE_LIMIT = 100
DEVICE_COUNT_LABELS = [
    (DeviceState.ON_WORKSPACE, _("live")),
    (DeviceState.OFFLINE, _("offline")),
    (DeviceState.REGISTERED, _("not live yet")),
]
SEARCH_TERM_MAX = 200


class CustomerPagesMixin:
    """For ContactAdmin (a WorkspaceScopedAdmin): the customer search results and the customer page."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("search/", wrap(self.customer_search_view), name="fleet_contact_search"),
            path("<int:pk>/customer/", wrap(self.customer_view), name="fleet_contact_customer"),
            *super().get_urls(),
        ]

    def _workspace_ids(self, request) -> list[int]:
        return workspaces_with_perm(request.user, "fleet.view_contact")

    def customer_search_view(self, request):
        """Every customer the term finds (up to 100), with what matched: the command search's full list."""
        if not self.has_view_permission(request):
            raise PermissionDenied("You may not view contacts.")
        term = " ".join(request.GET.get("q", "").split())
        hits, error = [], ""
        if len(term) > SEARCH_TERM_MAX:
            error = f"The search term is longer than {SEARCH_TERM_MAX} characters."
        elif term and len(term) < SEARCH_MIN_LENGTH:
            error = f"Type at least {SEARCH_MIN_LENGTH} characters."
        elif term:
            hits = customer_search(term=term, workspace_ids=self._workspace_ids(request), limit=SEARCH_PAGE_LIMIT)
        if error:
            messages.error(request, error)
        counts = device_counts_by_contact(contact_ids=[h.contact.pk for h in hits]) if hits else {}
        rows = [
            {
                "hit": hit,
                "link": customer_link(hit),
                "phone": phone_display(hit.contact.phone),
                "devices": [
                    (state, label, counts[hit.contact.pk][state])
                    for state, label in DEVICE_COUNT_LABELS
                    if counts.get(hit.contact.pk, {}).get(state)
                ],
            }
            for hit in hits
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Customer search"),
            "term": term,
            "rows": rows,
            "limited": len(hits) == SEARCH_PAGE_LIMIT,
            "limit": SEARCH_PAGE_LIMIT,
        }
        return TemplateResponse(request, "admin/fleet/contact/customer_search.html", context)

    def customer_view(self, request, pk):
        """The customer page: details, sites on the offline map, each device's state in plain words, enrollments,
        state history, and the sections other apps register (dispatch: recent events)."""
        if pk > MAX_ID:
            raise Http404("No such contact.")  # not an id the database could hold
        contact = self.get_object(request, str(pk))  # 404 outside the user's workspaces
        if not self.has_view_permission(request, contact):
            raise PermissionDenied(f"You may not view “{contact}”.")
        device = request.GET.get("device", "")
        highlight = int(device) if device.isdigit() and int(device) <= MAX_ID else None
        page = customer_page(contact=contact, highlight_device_id=highlight)
        sections = []
        for section in customer_sections():
            if section.permission and not request.user.has_perm(section.permission, contact):
                continue
            section_context = section.context(request, page)
            if section_context is None:
                continue
            html = render_to_string(section.template, {**section_context, "page": page, "section": section}, request)
            sections.append({"key": section.key, "title": section.title, "html": html})
        remember_viewed(request, contact.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": contact,
            "title": f"{contact.first_name} {contact.last_name} · {contact.reference_id}",
            "page": page,
            "phone": phone_display(contact.phone),
            "sections": sections,
            "can_change": self.has_change_permission(request, contact),
            "map_config": {
                "sites": page.map_features,
                "statesUrl": static("fleet/maps/us-states.geojson"),
                "tileUrl": settings.MAP_TILE_URL,
                "tileAttribution": settings.MAP_TILE_ATTRIBUTION,
                "highlightDeviceId": highlight,
            },
            "search_url": reverse("admin:fleet_contact_search"),
        }
        return TemplateResponse(request, "admin/fleet/contact/customer.html", context)
