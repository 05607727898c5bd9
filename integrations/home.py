"""What integrations shows on the Engineering role's home (registered with texture_portal.home in
IntegrationsConfig.ready): the integration tiles' summary with the webhooks' last day, and the role's pages."""

from django.utils.translation import gettext_lazy as _

from integrations.choices import IntegrationChannel
from integrations.selectors import integrations_health_summary
from texture_portal.choices import Role
from texture_portal.events.selectors import delivery_figures
from texture_portal.home import HomeLink, HomePanel, home_link_register, home_panel_register

HEALTH_LABELS = {
    "error": _("error"),
    "not_configured": _("not tested"),
    "connected": _("credentials OK"),
    "disabled": _("off"),
}


def integrations_panel(request, workspace_ids: list[int]) -> dict:
    """Three queries whatever the fleet: the integrations grouped by OEM and health, the deliveries of the last
    24 hours by status (and the user's permission cache)."""
    summary = integrations_health_summary(workspace_ids=workspace_ids)
    rows = []
    for channel, label in IntegrationChannel.choices:
        health = summary.get(channel, {})
        rows.append(
            {
                "channel": channel,
                "label": label,
                "health": [(key, HEALTH_LABELS[key], health[key]) for key in HEALTH_LABELS if health.get(key)],
                "worst": next((key for key in HEALTH_LABELS if health.get(key)), "disabled"),
            }
        )
    return {
        "tiles": rows,
        "errors": sum(1 for row in rows if row["worst"] == "error"),
        "deliveries": delivery_figures(workspace_ids=workspace_ids),
        "workspaces": len(workspace_ids),
    }


def register() -> None:
    home_panel_register(
        HomePanel(
            role=Role.ENGINEERING,
            key="integrations",
            title=_("Integrations and webhooks"),
            template="admin/integrations/home/integrations.html",
            context=integrations_panel,
            order=10,
            permission="integrations.view_workspaceintegration",
            wide=True,
        )
    )
    links = [
        (
            _("Engineering page"),
            "admin:integrations_engineering",
            "integration_instructions",
            "integrations.view_workspaceintegration",
        ),
        (_("API keys"), "admin:texture_portal_apikey_changelist", "key", "texture_portal.view_apikey"),
        (_("Destinations"), "admin:events_destination_changelist", "webhook", "events.view_destination"),
        (_("Delivery attempts"), "admin:events_deliveryattempt_changelist", "outbox", "events.view_deliveryattempt"),
        (
            _("Integrations"),
            "admin:integrations_workspaceintegration_changelist",
            "hub",
            "integrations.view_workspaceintegration",
        ),
        (_("Platform events"), "admin:events_platformevent_changelist", "campaign", "events.view_platformevent"),
    ]
    for order, (title, url_name, icon, permission) in enumerate(links, start=1):
        home_link_register(
            HomeLink(
                role=Role.ENGINEERING,
                title=title,
                url_name=url_name,
                icon=icon,
                permission=permission,
                order=order * 10,
            )
        )
