"""Reads of integrations: which devices a job works on, which integrations are live."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import TruncDate

from fleet.choices import DeviceState
from fleet.models import Device, TelemetryRollup
from integrations.choices import IntegrationChannel, RunKind
from integrations.models import IntegrationRun, WorkspaceIntegration


@dataclass(frozen=True)
class CredentialShown:
    """What staff see of one stored credential: its key, whether it holds a value, and when it last changed
    (None: written before changes were recorded). Never any part of the value."""

    key: str
    is_set: bool
    changed_at: datetime | None


def integration_credentials_shown(*, integration: WorkspaceIntegration) -> list[CredentialShown]:
    """The integration's credential keys, in order, as staff may see them (see CredentialShown)."""
    stamps = integration.credentials_changed_at or {}
    return [
        CredentialShown(
            key=key,
            is_set=value not in (None, ""),
            changed_at=datetime.fromisoformat(stamps[key]) if stamps.get(key) else None,
        )
        for key, value in sorted(integration.credentials.items())
    ]


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
    """Bound devices (on the workspace or offline) of this integration: the ones telemetry sync reads. Devices a
    customer connected with their own account (Texture Connect) are read with their tokens, not these."""
    qs = (
        Device.objects.filter(
            workspace_id=integration.workspace_id,
            state__in=[DeviceState.ON_WORKSPACE, DeviceState.OFFLINE],
            manufacturer__integration_channel=integration.channel,
        )
        .exclude(oem_device_id="")
        .exclude(oem_data__has_key="connectionId")
    )
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


# -- the engineering page's integration tiles -----------------------------------------------------------------


@dataclass
class IntegrationTile:
    """One OEM channel of one workspace as its tile shows it: the integration (None: not set up), its latest
    discovery and telemetry runs, and its devices by state."""

    channel: str
    label: str
    integration: WorkspaceIntegration | None = None
    last_discovery: IntegrationRun | None = None
    last_telemetry: IntegrationRun | None = None
    devices: dict[str, int] = field(default_factory=dict)

    @property
    def health(self) -> str:
        """`disabled`, `not_configured`, `connected` or `error`: the tile's colour."""
        if self.integration is None or not self.integration.enabled:
            return "disabled"
        return self.integration.status

    @property
    def devices_total(self) -> int:
        return sum(self.devices.values())


def _latest_run_id(kind: str) -> Subquery:
    return Subquery(
        IntegrationRun.objects.filter(integration_id=OuterRef("pk"), kind=kind)
        .order_by("-started_at", "-id")
        .values("pk")[:1]
    )


def integration_tiles(*, workspace_id: int) -> list[IntegrationTile]:
    """The workspace's seven OEM tiles (every channel, set up or not), in three queries whatever the size of the
    fleet and of the run history: the integrations with the ids of their latest runs (one indexed subquery each,
    on `integration_run_recent_idx`), those runs, and the devices counted by channel and state."""
    integrations = list(
        WorkspaceIntegration.objects.filter(workspace_id=workspace_id)
        .defer("credentials")  # the tiles show health, never credentials: nothing to decrypt
        .annotate(
            last_discovery_id=_latest_run_id(RunKind.DISCOVERY), last_telemetry_id=_latest_run_id(RunKind.TELEMETRY)
        )
    )
    run_ids = [pk for i in integrations for pk in (i.last_discovery_id, i.last_telemetry_id) if pk]
    runs = IntegrationRun.objects.in_bulk(run_ids) if run_ids else {}
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        Device.objects.filter(workspace_id=workspace_id)
        .values_list("manufacturer__integration_channel", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for channel, state, n in rows:
        counts[channel][state] = n
    by_channel = {i.channel: i for i in integrations}
    tiles = []
    for channel, label in IntegrationChannel.choices:
        integration = by_channel.get(channel)
        tiles.append(
            IntegrationTile(
                channel=channel,
                label=str(label),
                integration=integration,
                last_discovery=runs.get(integration.last_discovery_id) if integration else None,
                last_telemetry=runs.get(integration.last_telemetry_id) if integration else None,
                devices=counts.get(channel, {}),
            )
        )
    return tiles


def integrations_health_summary(*, workspace_ids: list[int]) -> dict[str, dict[str, int]]:
    """{channel: {health: workspaces}} over these workspaces (one grouped query): the Engineering home's summary.
    Health as on the tiles: `disabled` (or not set up), `not_configured`, `connected`, `error`."""
    summary: dict[str, dict[str, int]] = {channel: {} for channel in IntegrationChannel.values}
    rows = (
        WorkspaceIntegration.objects.filter(workspace_id__in=workspace_ids)
        .values_list("channel", "enabled", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    set_up: dict[str, int] = defaultdict(int)
    for channel, enabled, status, n in rows:
        health = status if enabled else "disabled"
        summary.setdefault(channel, {})
        summary[channel][health] = summary[channel].get(health, 0) + n
        set_up[channel] += n
    for channel in summary:
        missing = len(set(workspace_ids)) - set_up[channel]
        if missing > 0:
            summary[channel]["disabled"] = summary[channel].get("disabled", 0) + missing
    return summary
