"""Reads of integrations: which devices a job works on, which integrations are live."""

from collections import defaultdict
from datetime import UTC, date, datetime

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from fleet.choices import DeviceState
from fleet.models import Device, TelemetryRollup
from integrations.models import IntegrationRun, WorkspaceIntegration


def integrations_enabled(*, channel: str | None = None) -> QuerySet[WorkspaceIntegration]:
    qs = WorkspaceIntegration.objects.filter(enabled=True).select_related("workspace")
    return qs.filter(channel=channel) if channel else qs


def integrations_runnable() -> QuerySet[WorkspaceIntegration]:
    """Enabled integrations of channels the portal has an adapter for (the ones jobs can run)."""
    from integrations.adapters.registry import ADAPTERS

    return integrations_enabled().filter(channel__in=list(ADAPTERS))


def devices_awaiting_discovery(*, integration: WorkspaceIntegration) -> QuerySet[Device]:
    """Registered Systems of this workspace whose manufacturer is reached through this integration."""
    return Device.objects.filter(
        workspace_id=integration.workspace_id,
        state=DeviceState.REGISTERED,
        manufacturer__integration_channel=integration.channel,
    ).order_by("pk")


def devices_for_sync(*, integration: WorkspaceIntegration, device_ids: list[int] | None = None) -> QuerySet[Device]:
    """Bound devices (on the workspace or offline) of this integration: the ones telemetry sync reads."""
    qs = Device.objects.filter(
        workspace_id=integration.workspace_id,
        state__in=[DeviceState.ON_WORKSPACE, DeviceState.OFFLINE],
        manufacturer__integration_channel=integration.channel,
    ).exclude(oem_device_id="")
    if device_ids is not None:
        qs = qs.filter(pk__in=device_ids)
    return qs.only("pk", "workspace_id", "system_identifier", "oem_device_id", "oem_data", "device_type").order_by("pk")


def device_ids_for_sync(*, integration: WorkspaceIntegration) -> list[int]:
    return list(devices_for_sync(integration=integration).values_list("pk", flat=True))


def linked_external_ids(*, integration: WorkspaceIntegration) -> frozenset[str]:
    """OEM ids (vehicle ids, site ids…) already bound to this integration's devices."""
    return frozenset(devices_for_sync(integration=integration).values_list("oem_device_id", flat=True).distinct())


def devices_without_enabled_integration(*, workspace_id: int | None = None) -> list[tuple[int, str, list[int]]]:
    """[(workspace_id, channel, [device ids])] of Registered Systems whose OEM is not enabled there."""
    enabled = set(WorkspaceIntegration.objects.filter(enabled=True).values_list("workspace_id", "channel"))
    qs = Device.objects.filter(state=DeviceState.REGISTERED)
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    groups = defaultdict(list)
    for pk, ws, channel in qs.values_list("pk", "workspace_id", "manufacturer__integration_channel"):
        if (ws, channel) not in enabled:
            groups[(ws, channel)].append(pk)
    return [(ws, channel, ids) for (ws, channel), ids in groups.items()]


def integration_last_runs(*, integration: WorkspaceIntegration, limit: int = 10) -> QuerySet[IntegrationRun]:
    return integration.runs.all()[:limit]


def rollup_counts_by_day(*, device_ids: list[int], since: datetime, until: datetime) -> dict[tuple[int, date], int]:
    """{(device id, UTC day): 15-minute rollups it has} in [since, until): one grouped query for all devices."""
    if not device_ids:
        return {}
    rows = (
        TelemetryRollup.objects.filter(device_id__in=device_ids, interval_start__gte=since, interval_start__lt=until)
        .annotate(day=TruncDate("interval_start", tzinfo=UTC))
        .values_list("device_id", "day")
        .annotate(intervals=Count("id"))
        .order_by()
    )
    return {(device_id, day): intervals for device_id, day, intervals in rows}
