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
