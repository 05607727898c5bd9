"""What integrations tell the fleet's customer page (fleet.customer): per workspace and OEM channel, whether the
integration is enabled and working and when discovery last looked serials up, so a Registered System's
explanation can say why it is not live yet. Registered in IntegrationsConfig.ready (the fleet imports nothing
of integrations)."""

from django.db.models import Max

from fleet.customer import IntegrationFacts, integration_facts_provider_register
from integrations.choices import IntegrationChannel, IntegrationStatus, RunKind, RunStatus
from integrations.models import IntegrationRun, WorkspaceIntegration


def integration_facts(*, workspace_ids: list[int], channels: list[str]) -> dict[tuple[int, str], IntegrationFacts]:
    """{(workspace id, channel): facts} for the integrations that exist (two queries whatever their number)."""
    from integrations.adapters.registry import ADAPTERS

    integrations = list(
        WorkspaceIntegration.objects.filter(workspace_id__in=workspace_ids, channel__in=channels).only(
            "pk", "workspace_id", "channel", "enabled", "status", "last_error"
        )
    )
    if not integrations:
        return {}
    # started_at: discovery looks serials up as of its start (a device registered later was not looked up)
    last_lookups = dict(
        IntegrationRun.objects.filter(
            integration_id__in=[i.pk for i in integrations], kind=RunKind.DISCOVERY, status=RunStatus.SUCCEEDED
        )
        .values("integration_id")
        .annotate(at=Max("started_at"))
        .values_list("integration_id", "at")
        .order_by()
    )
    facts = {}
    for integration in integrations:
        status = integration.status
        facts[(integration.workspace_id, integration.channel)] = IntegrationFacts(
            label=str(IntegrationChannel(integration.channel).label),
            enabled=integration.enabled,
            working=None if status == IntegrationStatus.NOT_CONFIGURED else status == IntegrationStatus.CONNECTED,
            last_error=integration.last_error,
            last_discovery_at=last_lookups.get(integration.pk),
            can_discover=integration.channel in ADAPTERS,
        )
    return facts


def register() -> None:
    integration_facts_provider_register(integration_facts)


# -- the customer page's connections section ---------------------------------------------------------------------
CONNECT_SESSIONS_SHOWN = 10


def customer_connections_section(request, page) -> dict | None:
    """The customer's own OEM accounts (Texture Connect) and their latest Connect sessions: two queries."""
    from integrations.models import ConnectSession, CustomerConnection

    contact = page.contact
    connections = list(
        CustomerConnection.objects.filter(workspace_id=contact.workspace_id, contact=contact).order_by("channel")
    )
    sessions = list(
        ConnectSession.objects.filter(workspace_id=contact.workspace_id, contact=contact).order_by("-created", "-id")[
            :CONNECT_SESSIONS_SHOWN
        ]
    )
    can_send = request.user.has_perm("integrations.add_connectsession", contact)
    if not connections and not sessions and not can_send:
        return None
    return {"connections": connections, "sessions": sessions, "can_send": can_send, "contact": contact}


def register_section() -> None:
    from django.utils.translation import gettext_lazy as _

    from fleet.customer import CustomerSection, customer_section_register

    customer_section_register(
        CustomerSection(
            key="oem-connections",
            title=_("Connected OEM accounts"),
            template="admin/integrations/customer_connections.html",
            context=customer_connections_section,
            order=30,
            permission="integrations.view_customerconnection",
        )
    )
