"""Writes of integrations: OEM channels per workspace and their credentials, connection tests, discovery
and telemetry sync (each recorded as an IntegrationRun)."""

import logging
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Sum
from django.utils import timezone

from fleet import selectors as fleet_selectors
from fleet import services as fleet_services
from fleet.choices import AlertSeverity, AlertSubtype, AlertType
from integrations import selectors
from integrations.adapters.base import OemAdapter as OemAdapterBase
from integrations.choices import IntegrationChannel, IntegrationStatus, RunKind, RunStatus
from integrations.models import IntegrationRun, WorkspaceIntegration
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError

log = logging.getLogger(__name__)


def credentials_stamped(stamps: dict, before: dict, after: dict, *, now=None) -> dict:
    """`credentials_changed_at` once `before` became `after`: now for every key whose value changed or is new,
    the stamp kept for the others, none for a key no longer stored."""
    moment = (now or timezone.now()).astimezone(UTC).isoformat()
    return {
        key: moment if key not in before or before[key] != value else stamps.get(key)
        for key, value in after.items()
        if key not in before or before[key] != value or stamps.get(key)
    }


@transaction.atomic
def workspace_integration_save(
    *,
    workspace,
    channel: str,
    actor,
    enabled: bool | None = None,
    credentials: dict | None = None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> WorkspaceIntegration:
    """Create or update the workspace's integration for `channel`. `credentials` replaces the stored ones
    when given (never logged: the audit row lists only which keys changed)."""
    integration, created = WorkspaceIntegration.objects.select_for_update().get_or_create(
        workspace=workspace, channel=channel
    )
    changes = {}
    update_fields = []
    if enabled is not None and integration.enabled != enabled:
        changes["enabled"] = [integration.enabled, enabled]
        integration.enabled = enabled
        update_fields.append("enabled")
    if credentials is not None and credentials != integration.credentials:
        changed_keys = sorted(
            set(credentials) ^ set(integration.credentials)
            | {k for k in credentials if integration.credentials.get(k) != credentials[k]}
        )
        changes["credentials"] = {"keys_changed": changed_keys}
        integration.credentials_changed_at = credentials_stamped(
            integration.credentials_changed_at, integration.credentials, credentials
        )
        integration.credentials = credentials
        integration.status = IntegrationStatus.NOT_CONFIGURED
        integration.last_error = ""
        update_fields += ["credentials", "credentials_changed_at", "status", "last_error"]
    if update_fields:
        integration.full_clean()
        integration.save(update_fields=[*update_fields, "last_updated"])
    if created or changes:
        audit_record(
            actor=actor,
            action=AuditAction.INTEGRATION_CHANGED,
            target=integration,
            source=source,
            changes=changes,
        )
    return integration


# -- connection, discovery, telemetry ---------------------------------------------------------------------
def integration_tokens_refresh(*, integration: WorkspaceIntegration, adapter, failed: str | None) -> bool:
    """Refresh the adapter's OAuth tokens, serialized across processes by the integration's row lock.

    Rotating refresh tokens are single use: two jobs refreshing with the same one would lock the integration
    out (the second is refused). So under the lock the stored tokens are read again: when the stored access
    token is not the one that just failed, another job already refreshed and its tokens are adopted (the
    caller refreshes again, through here, if that token is refused too). Otherwise the OEM is asked, with the
    stored credentials (the latest, staff's edits included), and the new tokens are stored before the lock is
    released, merged into the row so no other key changes. Returns True when the OEM issued new tokens.

    Called from the adapter (`credentials_store`), possibly in a worker thread with its own connection. Jobs
    call the OEM outside any transaction: inside one, the new tokens would be committed (or rolled back, and
    the rotated refresh token lost) with it, and the row stay locked until then.
    """
    with transaction.atomic():
        row = (
            WorkspaceIntegration.objects.select_for_update()
            .only("pk", "credentials", "credentials_changed_at")
            .get(pk=integration.pk)
        )
        stored = row.credentials
        if stored.get("access_token") and stored.get("access_token") != failed:
            adapter.adopt_tokens(stored)
            integration.credentials, integration.credentials_changed_at = stored, row.credentials_changed_at
            return False
        tokens = adapter.request_tokens(stored)
        stamps = credentials_stamped(row.credentials_changed_at, stored, {**stored, **tokens})
        stored = {**stored, **tokens}
        WorkspaceIntegration.objects.filter(pk=integration.pk).update(credentials=stored, credentials_changed_at=stamps)
    adapter.adopt_tokens(tokens)
    integration.credentials, integration.credentials_changed_at = stored, stamps
    return True


def integration_credentials_persist(*, integration: WorkspaceIntegration, adapter) -> None:
    """Store, after a job, the credentials its adapter changed and has not stored yet (a sign-in token;
    refreshed OAuth tokens are stored by `integration_tokens_refresh` at once).

    Only those keys, merged into the row read again under its lock, and only where the stored value is still
    the one the adapter was loaded with: a key changed meanwhile (staff entering a new secret or refresh token
    in the admin, another job) keeps its new value, and every other key stays as stored. Not audited: the
    system rotates these every few hours and the values are never shown; credential changes by people are
    audited in `workspace_integration_save`."""
    pending = adapter.credentials_pending()
    if not pending:
        return
    with transaction.atomic():
        locked = WorkspaceIntegration.objects.select_for_update().only("pk", "credentials", "credentials_changed_at")
        row = locked.filter(pk=integration.pk).first()
        if row is None:
            return  # the integration was deleted while the job ran
        stored, stamps = row.credentials, row.credentials_changed_at
        updates = {key: new for key, (loaded, new) in pending.items() if stored.get(key) == loaded}
        if updates:
            stamps = credentials_stamped(stamps, stored, {**stored, **updates})
            stored = {**stored, **updates}
            WorkspaceIntegration.objects.filter(pk=integration.pk).update(
                credentials=stored, credentials_changed_at=stamps
            )
    integration.credentials, integration.credentials_changed_at = stored, stamps
    adapter.credentials_saved()


def _integration_health(
    *, integration: WorkspaceIntegration, error: str = "", credentials_refused: bool = False
) -> None:
    """Record what the OEM's last answer says of the integration. The credentials rule: the OEM refusing its
    credentials (`credentials_refused`) raises the integration's alert; a call that works resolves it."""
    status = IntegrationStatus.ERROR if error else IntegrationStatus.CONNECTED
    WorkspaceIntegration.objects.filter(pk=integration.pk).update(
        status=status, last_error=error[:2000], last_checked_at=timezone.now()
    )
    integration.status, integration.last_error = status, error[:2000]
    cause = credentials_cause(integration.pk)
    if error and credentials_refused:
        fleet_services.alert_raise(
            workspace_id=integration.workspace_id,
            alert=fleet_services.AlertRaise(
                cause=cause,
                type=AlertType.INTEGRATION,
                subtype=AlertSubtype.CREDENTIALS_REFUSED,
                severity=AlertSeverity.CRITICAL,
                title=f"{integration.get_channel_display()}: credentials refused",
                description=(
                    f"{integration.get_channel_display()} refused the workspace's credentials: {error[:500]} "
                    "Nothing is discovered or synced from it until they work again (Integrations → update them, "
                    "then test the connection)."
                ),
                subject_label=f"{integration.get_channel_display()} integration",
                subject_ref=f"integration:{integration.pk}",
                source_system="integrations",
            ),
        )
    elif not error:
        fleet_services.alerts_resolve(
            workspace_id=integration.workspace_id,
            causes=[cause],
            reason=f"{integration.get_channel_display()} accepts the credentials again.",
        )


def credentials_cause(integration_id: int) -> str:
    return f"integrations:credentials_refused:integration:{integration_id}"


def integration_test_connection(*, integration: WorkspaceIntegration, actor, source=AuditSource.ADMIN) -> str:
    """One authenticated call to the OEM with the stored credentials; records status and last error."""
    from integrations.adapters import AuthError, IntegrationError, adapter_for

    try:
        adapter = adapter_for(integration)
    except IntegrationError as exc:
        _integration_health(integration=integration, error=exc.message)
        return f"Connection failed: {exc.message}"
    missing = adapter.check_credentials()
    try:
        if missing:
            raise ApplicationError(f"Missing credentials: {', '.join(missing)}.")
        message = adapter.test_connection()
        _integration_health(integration=integration)
        outcome = f"Connected: {message}."
    except (IntegrationError, ApplicationError) as exc:
        _integration_health(integration=integration, error=exc.message, credentials_refused=isinstance(exc, AuthError))
        outcome = f"Connection failed: {exc.message}"
    finally:
        # a token refreshed before a failing call is still the only valid one (rotating refresh tokens)
        integration_credentials_persist(integration=integration, adapter=adapter)
        adapter.close()
    audit_record(
        actor=actor,
        action=AuditAction.INTEGRATION_CHANGED,
        target=integration,
        source=source,
        changes={"tested": outcome},
    )
    return outcome


def integration_discovery_queue(*, integration: WorkspaceIntegration, actor, source=AuditSource.ADMIN) -> None:
    """ "Discover now": queue one discovery run of this integration after commit (the run, its progress and its
    errors then show in the integration's runs). Refused, with the reason, for an integration that is not
    enabled. Audited (who asked, when)."""
    from integrations.tasks import discovery_run_task

    if not integration.enabled:
        raise ApplicationError("not enabled: enable it first.")
    audit_record(
        actor=actor,
        action=AuditAction.INTEGRATION_CHANGED,
        target=integration,
        source=source,
        changes={"discovery": "queued"},
    )
    transaction.on_commit(partial(discovery_run_task.delay, integration.pk))


def _run_start(*, integration, kind, attempt: int = 1, devices_total: int = 0, started_at=None) -> IntegrationRun:
    return IntegrationRun.objects.create(
        workspace_id=integration.workspace_id,
        integration=integration,
        kind=kind,
        attempt=attempt,
        devices_total=devices_total,
        started_at=started_at or timezone.now(),
    )


def _run_finish(run: IntegrationRun, *, status, message: str = "", **counts) -> IntegrationRun:
    for name, value in counts.items():
        setattr(run, name, value)
    run.status, run.message, run.finished_at = status, message[:500], timezone.now()
    run.errors = run.errors[:200]  # a bounded sample: the counts say how many there were
    run.save()
    return run


def _adapter_setting(channel: str, name: str):
    """A class attribute of the channel's adapter (declared with its default on `OemAdapter`); None when the
    channel has no adapter yet (the job then says so on its run)."""
    from integrations.adapters import IntegrationError, adapter_class

    try:
        return getattr(adapter_class(channel), name)
    except IntegrationError:
        return None


# Back-off of look-ups of serials an OEM did not have (OEMs whose look-ups cost quota declare
# `discovery_recheck_after`): doubling after each miss in a row, up to this.
DISCOVERY_RECHECK_MAX = timedelta(days=1)


def discovery_recheck_at(device, *, first: timedelta) -> datetime | None:
    """When discovery may look this Registered System's serial up again (None: now). Misses are remembered per
    serial, so an edited serial is looked up at once."""
    miss = (device.oem_data or {}).get("discoveryMiss") or {}
    if miss.get("serial") != device.system_identifier or not miss.get("at"):
        return None
    return datetime.fromisoformat(miss["at"]) + min(
        DISCOVERY_RECHECK_MAX, first * 2 ** (max(1, miss.get("misses", 1)) - 1)
    )


def devices_due_for_discovery(*, integration: WorkspaceIntegration, now=None) -> tuple[list, datetime | None]:
    """(Registered Systems discovery should look up now, when the next backed-off one is due). Every awaiting
    device is due unless the OEM's look-ups cost quota and its serial was not found recently."""
    awaiting = list(selectors.devices_awaiting_discovery(integration=integration))
    first = _adapter_setting(integration.channel, "discovery_recheck_after")
    if first is None:
        return awaiting, None
    now = now or timezone.now()
    due, later = [], []
    for device in awaiting:
        recheck_at = discovery_recheck_at(device, first=first)
        if recheck_at is None or recheck_at <= now:
            due.append(device)
        else:
            later.append(recheck_at)
    return due, min(later, default=None)


def discovery_is_due(*, integration: WorkspaceIntegration, now=None) -> bool:
    """Whether a scheduled discovery has anything to look up (a serial in its back-off waits)."""
    if _adapter_setting(integration.channel, "discovery_recheck_after") is None:
        return selectors.devices_awaiting_discovery(integration=integration).exists()
    return bool(devices_due_for_discovery(integration=integration, now=now)[0])


def discovery_run(*, integration: WorkspaceIntegration, attempt: int = 1, now=None) -> IntegrationRun:
    """Look up every Registered System of this integration's OEM at the OEM (by `systemIdentifier`).

    Found: bound (OEM ids stored) and moved to Device on Workspace (`device.discovered`). Not found: stays a
    Registered System with a readable reason. One listing call per account where the OEM allows it; OEM ids
    already bound are passed to the adapter (`linked_external_ids`), so an OEM that pays a call per device
    (Smartcar's VIN) spends none on them. Where each look-up costs quota (SolarEdge), a serial not found is
    looked up again only after a back-off.
    Raises the adapter's transient errors (rate limit, outage) for the task to retry; auth errors are
    recorded on the integration.
    """
    from integrations.adapters import AuthError, IntegrationError, adapter_for

    if not integration.enabled:
        raise ApplicationError(f"{integration.get_channel_display()} is not enabled for this workspace.")
    now = now or timezone.now()
    due, next_recheck = devices_due_for_discovery(integration=integration, now=now)
    devices = {d.system_identifier: d for d in due}
    run = _run_start(
        integration=integration, kind=RunKind.DISCOVERY, attempt=attempt, devices_total=len(devices), started_at=now
    )
    oem = integration.get_channel_display()
    if not devices and next_recheck is not None:
        return _run_finish(
            run,
            status=RunStatus.SUCCEEDED,
            message=f"Skipped: every registered serial was looked up at {oem} recently and not found; each look-up "
            f"costs {oem}'s daily quota, so the next is at {next_recheck:%Y-%m-%d %H:%M} UTC.",
        )
    try:
        adapter = adapter_for(integration)
    except IntegrationError as exc:
        return _run_finish(run, status=RunStatus.FAILED, message=exc.message, errors=[exc.message])
    adapter.linked_external_ids = selectors.linked_external_ids(integration=integration)
    try:
        found = {d.serial: d for d in adapter.discover(sorted(devices))}
    except IntegrationError as exc:
        if isinstance(exc, AuthError):
            _integration_health(integration=integration, error=exc.message, credentials_refused=True)
        _run_finish(
            run,
            status=RunStatus.FAILED,
            message=exc.message,
            http_requests=adapter.requests_made,
            errors=[exc.message],
        )
        raise
    except Exception as exc:
        # a malformed OEM answer (KeyError, ValueError…): the run says so instead of staying running
        message = _unexpected(integration, exc).message
        _run_finish(
            run, status=RunStatus.FAILED, message=message, http_requests=adapter.requests_made, errors=[message]
        )
        raise
    finally:
        # a token refreshed before a failing call is still the only valid one (rotating refresh tokens)
        integration_credentials_persist(integration=integration, adapter=adapter)
        adapter.close()
    _integration_health(integration=integration)
    bound, missing, bound_ids = 0, [], []
    for serial, device in devices.items():
        match = found.get(serial)
        if match is None:
            missing.append(device.pk)
            continue
        fleet_services.device_mark_discovered(
            device=device,
            oem_device_id=match.external_id,
            oem_data={**match.oem_data, "kind": match.kind, "model": match.model, "firmware": match.firmware},
            reason=f"Found at {oem} ({match.external_id}).",
            grid_services_status=match.grid_services_status,
        )
        bound_ids.append(device.pk)
        bound += 1
    checked = now.strftime("%Y-%m-%d %H:%M UTC")
    reason = (
        f"Not found at {oem} for this workspace's account (checked {checked}): check the serial and that "
        "the device is provisioned to the account."
    )
    if missing and _adapter_setting(integration.channel, "discovery_recheck_after") is not None:
        fleet_services.devices_record_discovery_miss(device_ids=missing, at=now)
        reason += " Looked up again after a back-off (each look-up costs the OEM's daily quota)."
    fleet_services.devices_note_reason(device_ids=missing, reason=reason)
    if bound_ids and channel_has_history(integration.channel):
        # the devices' past (event baselines need the days before an event), once the binding is committed
        from integrations.tasks import telemetry_history_task

        transaction.on_commit(lambda: telemetry_history_task.delay(integration.pk, bound_ids))
    return _run_finish(
        run,
        status=RunStatus.SUCCEEDED,
        message=f"{bound} discovered, {len(missing)} not found, {len(found)} listed by {oem}."
        + (f" Next look-up of serials not found earlier: {next_recheck:%Y-%m-%d %H:%M} UTC." if next_recheck else ""),
        devices_ok=bound,
        devices_failed=len(missing),
        http_requests=adapter.requests_made,
    )


def discovery_note_disabled(*, workspace_id: int | None = None) -> int:
    """Registered Systems whose OEM has no enabled integration in their workspace (or no adapter yet) say so."""
    from integrations.adapters.registry import ADAPTERS

    noted = 0
    for _workspace, channel, device_ids in selectors.devices_without_enabled_integration(workspace_id=workspace_id):
        label = IntegrationChannel(channel).label
        noted += fleet_services.devices_note_reason(
            device_ids=device_ids,
            reason=f"The {label} integration is not enabled for this workspace: enable it and enter its "
            "credentials under Integrations.",
        )
    for integration in selectors.integrations_enabled().exclude(channel__in=list(ADAPTERS)):
        if workspace_id is not None and integration.workspace_id != workspace_id:
            continue
        noted += fleet_services.devices_note_reason(
            device_ids=selectors.devices_awaiting_discovery(integration=integration).values_list("pk", flat=True),
            reason=f"The portal has no {integration.get_channel_display()} adapter yet: the device cannot be "
            "discovered.",
        )
    return noted


def _unexpected(integration: WorkspaceIntegration, exc: Exception):
    """An IntegrationError (not transient) standing for an exception the adapter did not map (malformed body)."""
    from integrations.adapters import IntegrationError

    return IntegrationError(
        f"Unexpected answer from {integration.get_channel_display()}: {type(exc).__name__}: {exc}"[:500]
    )


NOT_READ = object()  # a device a sync did not read because the OEM had said stop


def _in_pool_thread(call, *args):
    """Run `call` in a pool thread. A token refresh there locks the integration's row through the thread's own
    database connection: closed when the call ends, not left to the thread's end."""
    try:
        return call(*args)
    finally:
        connections.close_all()


@dataclass
class SyncOutcome:
    run: IntegrationRun
    retry_device_ids: list[int]
    retry_after: float | None


DAY = timedelta(days=1)


@dataclass(frozen=True)
class TelemetryPace:
    """How often an OEM with a daily call quota (SolarEdge: 300 a day per API key) lets one integration sync.

    The integration's runs (syncs and discovery) share `budget` = quota − the adapter's reserve (the reserve
    covers connection tests, which no run records). Syncs are spread evenly over what discovery leaves of it:
    one sync of `cost` calls every `interval`, a whole number of the OEM's beats. Calls are counted over the
    last 24 hours, a rolling window, so the limit holds whenever the OEM's own day starts.
    """

    oem: str
    quota: int
    budget: int
    sites: int
    cost: int
    beat: timedelta
    interval: timedelta
    spent: int  # calls of the integration's runs in the last 24 h
    last_sync_at: datetime | None

    def wait(self, now: datetime, *, attempt: int = 1) -> str:
        """Why a sync must not run now ("" when it may). A retry (attempt > 1) finishes the sync it retries, so
        only the budget holds it back."""
        quota = f"{self.oem}'s quota of {self.quota} calls a day per API key ({self.budget} for syncs and discovery)"
        sync = f"one sync of {self.sites} site(s) ({self.cost} calls)"
        if self.cost > self.budget:
            return f"{quota} cannot cover {sync}"
        plan = f"{quota} allows {sync} every {_duration(self.interval)}"
        if attempt == 1 and self.last_sync_at is not None:
            due_at = self.last_sync_at + self.interval
            # beats fire on the clock and runs start a little after them: half a beat of slack
            if now < due_at - self.beat / 2:
                return f"{plan}; next due {due_at:%H:%M} UTC ({self.spent} calls in the last 24 h)"
        if self.spent + self.cost > self.budget:
            return f"{plan}, and {self.spent} calls were made in the last 24 h: waiting until older ones age out"
        return ""


def _duration(value: timedelta) -> str:
    minutes = round(value.total_seconds() / 60)
    return f"{minutes} min" if minutes < 180 else f"{minutes / 60:.1f} h"


def telemetry_pace(*, integration: WorkspaceIntegration, devices: list, now=None) -> TelemetryPace | None:
    """The pace of an OEM that declares a daily call quota (`daily_call_quota`); None for the others, which
    sync at every beat of their cadence. `devices` are the DeviceRefs a sync reads."""
    from integrations.adapters import adapter_class

    quota = _adapter_setting(integration.channel, "daily_call_quota")
    if not quota:
        return None
    cls = adapter_class(integration.channel)
    now = now or timezone.now()
    budget = quota - cls.daily_call_reserve
    cost = cls.telemetry_calls(devices)
    runs = integration.runs.filter(started_at__gt=now - DAY, started_at__lte=now)
    spent = dict(runs.values_list("kind").annotate(calls=Sum("http_requests")).order_by())
    # what discovery spent is not there for syncs: spread them over the rest
    for_syncs = max(1, budget - spent.get(RunKind.DISCOVERY, 0))
    beat = cls.telemetry_cadence
    return TelemetryPace(
        oem=integration.get_channel_display(),
        quota=quota,
        budget=budget,
        sites=len({d.external_id for d in devices}),
        cost=cost,
        beat=beat,
        interval=beat * max(1, math.ceil(DAY * cost / for_syncs / beat)),
        spent=sum(spent.values()),
        last_sync_at=runs.filter(kind=RunKind.TELEMETRY, http_requests__gt=0)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first(),
    )


def telemetry_sync(
    *, integration: WorkspaceIntegration, device_ids: list[int] | None = None, attempt: int = 1, now=None
) -> SyncOutcome:
    """Read the latest telemetry of the integration's live devices and store it.

    Per-device answers (offline, not found) are recorded on the run; devices whose call failed transiently
    (timeout, dropped connection, 5xx) are returned for a retry, and a rate limit or auth failure stops the
    batch. Whatever was read before a failure is written: nothing is lost, and because readings are unique
    on (device, measured time) a retry duplicates nothing. An OEM with a daily call quota is read only as
    often as the quota allows (`telemetry_pace`): the other beats finish at once, saying when the next is due.
    """
    from integrations.adapters import (
        AuthError,
        DeviceOffline,
        DeviceRef,
        IntegrationError,
        NotFound,
        RateLimited,
        TransientError,
        adapter_for,
    )

    now = now or timezone.now()
    devices = list(selectors.devices_for_sync(integration=integration, device_ids=device_ids))
    refs = {
        d.pk: DeviceRef(
            serial=d.system_identifier, external_id=d.oem_device_id, oem_data=d.oem_data, device_type=d.device_type
        )
        for d in devices
    }
    pace = telemetry_pace(integration=integration, devices=list(refs.values()), now=now) if devices else None
    run = _run_start(
        integration=integration,
        kind=RunKind.TELEMETRY,
        attempt=attempt,
        devices_total=len(devices),
        started_at=now,
    )
    if not integration.enabled or not devices:
        return SyncOutcome(_run_finish(run, status=RunStatus.SUCCEEDED, message="Nothing to sync."), [], None)
    if pace is not None and (wait := pace.wait(now, attempt=attempt)):
        # not an error: the quota decides how many beats read (the devices keep their last readings)
        return SyncOutcome(_run_finish(run, status=RunStatus.SUCCEEDED, message=f"Skipped: {wait}."), [], None)
    try:
        adapter = adapter_for(integration, pool_size=settings.OEM_SYNC_CONCURRENCY)
    except IntegrationError as exc:
        return SyncOutcome(
            _run_finish(run, status=RunStatus.FAILED, message=exc.message, errors=[exc.message]), [], None
        )
    readings, errors, retry, stop = [], [], [], None
    per_device_notes = {}

    def record(device_id, result):
        if isinstance(result, IntegrationError):
            errors.append(f"{refs[device_id].serial}: {result.message}")
            per_device_notes[device_id] = result.message
            if isinstance(result, TransientError):
                retry.append(device_id)
        else:
            readings.append((device_id, result))

    try:
        if type(adapter).fetch_telemetry_many is not OemAdapterBase.fetch_telemetry_many:
            by_serial = {ref.serial: pk for pk, ref in refs.items()}
            for serial, result in adapter.fetch_telemetry_many(list(refs.values())).items():
                record(by_serial[serial], result)
        else:
            # Once the OEM says stop (a rate limit, refused credentials), the pool threads read nothing more:
            # cancelling the futures from this thread alone came too late when a thread had already taken
            # the next device (seen under load), which spent calls the OEM had just refused.
            stopped = threading.Event()

            def fetch(ref):
                if stopped.is_set():
                    return NOT_READ
                try:
                    return adapter.fetch_telemetry(ref)
                except (RateLimited, AuthError):
                    stopped.set()
                    raise

            with ThreadPoolExecutor(max_workers=settings.OEM_SYNC_CONCURRENCY) as pool:
                futures = {pool.submit(_in_pool_thread, fetch, ref): pk for pk, ref in refs.items()}
                for future in as_completed(futures):
                    device_id = futures[future]
                    if future.cancelled():
                        continue  # not read because the OEM said stop: retried with the rest
                    try:
                        result = future.result()
                        if result is NOT_READ:
                            retry.append(device_id)  # not read because the OEM said stop: retried
                            continue
                        record(device_id, result)
                    except (DeviceOffline, NotFound) as exc:
                        record(device_id, exc)
                    except (RateLimited, AuthError) as exc:
                        stop = stop or exc
                        retry.append(device_id)
                        for pending in futures:
                            pending.cancel()
                    except TransientError as exc:
                        record(device_id, exc)
                    except IntegrationError as exc:
                        record(device_id, exc)
                    except Exception as exc:
                        # a malformed answer for one device is that device's failure, not the batch's
                        log.exception("%s: unexpected error reading %s", integration, refs[device_id].serial)
                        record(device_id, _unexpected(integration, exc))
    except (RateLimited, AuthError, TransientError) as exc:
        # an account-wide answer to a batch call: every device of the batch waits for the retry
        stop = exc
        retry = [pk for pk in refs if pk not in {d for d, _ in readings}]
    except IntegrationError as exc:
        # a batch call refused (not found, rejected…): not transient, so recorded and left to the next beat
        stop = exc
    except Exception as exc:
        log.exception("%s: unexpected error reading telemetry", integration)
        stop = _unexpected(integration, exc)
    finally:
        integration_credentials_persist(integration=integration, adapter=adapter)
        adapter.close()
    if isinstance(stop, RateLimited):
        # cancelled futures never ran: they are retried with the rest
        done = {d for d, _ in readings} | set(per_device_notes)
        retry = sorted(set(retry) | {pk for pk in refs if pk not in done})
    result = fleet_services.telemetry_ingest(workspace_id=integration.workspace_id, readings=readings)
    # a device read now is past its last OEM error (the offline sweep would quote a stale one)
    fleet_services.devices_clear_sync_error(device_ids=[device_id for device_id, _ in readings])
    if per_device_notes:
        fleet_services.devices_record_sync_error(errors=per_device_notes)
    if isinstance(stop, AuthError):
        _integration_health(integration=integration, error=stop.message, credentials_refused=True)
        retry = []
    elif readings:
        _integration_health(integration=integration)
    if stop is not None:
        errors.insert(0, stop.message)
    status = RunStatus.SUCCEEDED
    if stop is not None and not readings:
        status = RunStatus.FAILED
    elif stop is not None or errors:
        status = RunStatus.PARTIAL
    run = _run_finish(
        run,
        status=status,
        message=(
            f"{len(readings)} of {len(devices)} devices read, {result.readings_written} readings stored, "
            f"{len(result.devices_recovered)} back online"
            + (f"; stopped: {stop.message}" if stop else "")
            + (f"; {len(retry)} to retry" if retry else "")
        ),
        devices_ok=len(readings),
        devices_failed=len(devices) - len(readings),
        readings_written=result.readings_written,
        http_requests=adapter.requests_made,
        errors=errors,
    )
    return SyncOutcome(run, sorted(set(retry)), getattr(stop, "retry_after", None))


def channel_cadence(channel: str):
    from integrations.adapters import adapter_class

    return adapter_class(channel).telemetry_cadence


def telemetry_intervals(*, channel: str, now=None) -> dict[int, timedelta]:
    """{workspace id: how often its integration actually syncs} for an OEM whose quota paces syncs (empty for
    the others, which sync at every beat of their cadence)."""
    from integrations.adapters import DeviceRef

    if not _adapter_setting(channel, "daily_call_quota"):
        return {}
    intervals = {}
    for integration in selectors.integrations_enabled(channel=channel):
        refs = [
            DeviceRef(serial=d.system_identifier, external_id=d.oem_device_id)
            for d in selectors.devices_for_sync(integration=integration)
        ]
        if refs:
            intervals[integration.workspace_id] = telemetry_pace(
                integration=integration, devices=refs, now=now
            ).interval
    return intervals


def offline_sweep(*, now=None) -> list[int]:
    """Devices with no reading within their OEM's cadence × grace go offline, with the reason (and the OEM's
    last answer, when there was one). A single failed sync is never enough: grace is at least two cadences.
    Where a quota paces the syncs (SolarEdge), the cadence is the paced one of the device's integration."""
    from integrations.adapters.registry import ADAPTERS

    now = now or timezone.now()
    grace = max(2.0, settings.OEM_OFFLINE_GRACE_FACTOR)
    marked = []
    for channel in ADAPTERS:
        cadence = channel_cadence(channel)
        paced = telemetry_intervals(channel=channel, now=now)
        for device in fleet_selectors.devices_stale(channel=channel, stale_since=now - cadence * grace):
            expected = paced.get(device.workspace_id, cadence)
            stale_since = now - expected * grace
            if (device.last_seen_at or device.state_changed_at) >= stale_since:
                continue  # stale by the beat, not by what the quota lets this integration read
            last = device.last_seen_at.strftime("%Y-%m-%d %H:%M UTC") if device.last_seen_at else "never"
            reason = (
                f"No telemetry since {last} (expected every {expected.total_seconds() / 60:.0f} min; "
                f"offline after {grace:g}×)."
            )
            oem_error = (device.oem_data or {}).get("lastSyncError", {}).get("message")
            if oem_error:
                reason += f" Last OEM answer: {oem_error}"
            if fleet_services.device_mark_stale_offline(device=device, stale_since=stale_since, reason=reason):
                marked.append(device.pk)
    return marked


def integration_runs_prune(*, now=None, batch: int = 5000) -> int:
    """Delete finished runs older than INTEGRATION_RUN_RETENTION_DAYS (a telemetry run every 5 minutes per
    integration and batch adds up to hundreds of thousands a year); in batches, so no delete holds locks long.
    Returns how many were deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.INTEGRATION_RUN_RETENTION_DAYS)
    old = IntegrationRun.objects.filter(started_at__lt=cutoff).exclude(status=RunStatus.RUNNING)
    deleted = 0
    while ids := list(old.order_by("pk").values_list("pk", flat=True)[:batch]):
        deleted += IntegrationRun.objects.filter(pk__in=ids).delete()[0]
    return deleted


# -- telemetry history (backfill) ----------------------------------------------------------------------------
# A UTC day with fewer of its 15-minute rollups than this share is a gap the backfill asks the OEM for.
HISTORY_COVERAGE = 0.9
# A history run still `running` after this is presumed dead (a worker lost mid-run): another may start.
HISTORY_RUN_LEASE = timedelta(minutes=30)
# Devices per `telemetry_history` call: what is read is ingested before the next batch (bounded memory).
HISTORY_BATCH = 25
ROLLUP_INTERVAL = timedelta(minutes=15)


def _utc_midnight(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def telemetry_history_gaps(*, device_ids: list[int], since: datetime, until: datetime) -> dict[tuple, list[int]]:
    """{(start, end): [device ids]}: for each device, its runs of consecutive UTC days in [since, until) that
    have fewer than HISTORY_COVERAGE of their 15-minute rollups (the last day counted up to `until`). One grouped
    query for all devices; devices with the same gaps share a key, so one history call serves them."""
    since = _utc_midnight(since)
    counts = selectors.rollup_counts_by_day(device_ids=device_ids, since=since, until=until)
    days = []
    day = since
    while day < until:
        days.append(day)
        day += DAY
    gaps: dict[tuple, list[int]] = defaultdict(list)
    for device_id in device_ids:
        gap_start = None
        for day in days:
            expected = (min(day + DAY, until) - day) / ROLLUP_INTERVAL
            missing = counts.get((device_id, day.date()), 0) < HISTORY_COVERAGE * expected
            if missing and gap_start is None:
                gap_start = day
            elif not missing and gap_start is not None:
                gaps[(gap_start, day)].append(device_id)
                gap_start = None
        if gap_start is not None:
            gaps[(gap_start, until)].append(device_id)
    return dict(gaps)


def channel_has_history(channel: str) -> bool:
    return bool(_adapter_setting(channel, "history_supported"))


def _rollups_refresh(*, since, until, device_ids, tries: int = 5) -> int:
    """`telemetry_rollups_refresh` for these devices and range; on PostgreSQL a refresh under way makes it step
    aside (-1), so it is tried again a few times, a second apart."""
    for attempt in range(tries):
        written = fleet_services.telemetry_rollups_refresh(since=since, until=until, device_ids=device_ids)
        if written != -1:
            return written
        time.sleep(1 + attempt)
    return -1


def telemetry_history_backfill(
    *,
    integration: WorkspaceIntegration,
    device_ids: list[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> IntegrationRun:
    """Fill the gaps in the integration's devices' telemetry from the OEM's history API, recorded as a run.

    The window is [since, until), by default the TELEMETRY_HISTORY_DAYS days before now (from that day's UTC
    midnight). Days whose 15-minute rollups are mostly missing (`telemetry_history_gaps`, one query for all
    devices) are asked for, in batches of devices sharing the same gaps; what the OEM returns goes through
    fleet's ingest (readings are unique per device and time, and an older reading never moves a device's
    latest reading or `last_seen_at` back), then the rollups of those devices and days are recomputed. Every
    OEM call waits for the OEM's shared token bucket (`OemAdapter.http`).

    Safe to run twice, and at once: a run that finds another of the same integration under way (started within
    HISTORY_RUN_LEASE) steps aside; and should two overlap anyway, both write the same rows. A second run finds
    no gaps and calls nothing. An OEM without a history API says so on the run and is not called. A rate limit,
    an outage or refused credentials stop the run (what was read is kept); the next run asks for what is still
    missing.
    """
    from integrations.adapters import (
        AuthError,
        DeviceRef,
        IntegrationError,
        adapter_class,
        adapter_for,
    )

    now = now or timezone.now()
    until = until or now
    since = _utc_midnight(since or until - timedelta(days=settings.TELEMETRY_HISTORY_DAYS))
    devices = list(selectors.devices_for_sync(integration=integration, device_ids=device_ids))
    with transaction.atomic():
        # the integration's row lock orders concurrent starts: the second sees the first's run
        WorkspaceIntegration.objects.select_for_update().filter(pk=integration.pk).values_list("pk").first()
        running = (
            integration.runs.filter(
                kind=RunKind.HISTORY, status=RunStatus.RUNNING, started_at__gt=now - HISTORY_RUN_LEASE
            )
            .order_by("started_at")
            .first()
        )
        run = _run_start(integration=integration, kind=RunKind.HISTORY, devices_total=len(devices), started_at=now)
    if running is not None:
        return _run_finish(
            run,
            status=RunStatus.SUCCEEDED,
            message=f"Skipped: the history backfill started {running.started_at:%H:%M:%S} UTC is still running.",
        )
    try:
        cls = adapter_class(integration.channel)
    except IntegrationError as exc:
        return _run_finish(run, status=RunStatus.FAILED, message=exc.message, errors=[exc.message])
    if not integration.enabled or not devices:
        return _run_finish(run, status=RunStatus.SUCCEEDED, message="Nothing to backfill.")
    if not cls.history_supported:
        return _run_finish(run, status=RunStatus.SUCCEEDED, message=f"Skipped: {cls.history_note}")
    gaps = telemetry_history_gaps(device_ids=[d.pk for d in devices], since=since, until=until)
    if not gaps:
        return _run_finish(
            run,
            status=RunStatus.SUCCEEDED,
            message=f"No gaps: every device has its 15-minute rollups since {since:%Y-%m-%d}.",
        )
    refs = {
        d.pk: DeviceRef(
            serial=d.system_identifier, external_id=d.oem_device_id, oem_data=d.oem_data, device_type=d.device_type
        )
        for d in devices
    }
    try:
        adapter = adapter_for(integration, pool_size=settings.OEM_SYNC_CONCURRENCY)
    except IntegrationError as exc:
        return _run_finish(run, status=RunStatus.FAILED, message=exc.message, errors=[exc.message])
    written, read, failed, errors, stop = 0, set(), {}, [], None
    rollups = 0
    try:
        for (start, end), ids in sorted(gaps.items()):
            for first in range(0, len(ids), HISTORY_BATCH):
                batch = ids[first : first + HISTORY_BATCH]
                by_serial = {refs[pk].serial: pk for pk in batch}
                results = adapter.telemetry_history([refs[pk] for pk in batch], start, end)
                readings = []
                for serial, result in results.items():
                    pk = by_serial[serial]
                    if isinstance(result, IntegrationError):
                        failed[pk] = result.message
                        errors.append(f"{serial}: {result.message}")
                    else:
                        readings += [(pk, snapshot) for snapshot in result]
                        read.add(pk)
                if readings:
                    written += fleet_services.telemetry_ingest(
                        workspace_id=integration.workspace_id, readings=readings
                    ).readings_written
                    refreshed = _rollups_refresh(since=start, until=end, device_ids=sorted({pk for pk, _ in readings}))
                    if refreshed == -1:
                        errors.append(f"rollups {start:%Y-%m-%d}–{end:%Y-%m-%d}: another refresh held the lock")
                    else:
                        rollups += refreshed
    except IntegrationError as exc:
        # account-wide (a rate limit, refused credentials, an outage): what was read is kept
        stop = exc
    except Exception as exc:
        log.exception("%s: unexpected error reading telemetry history", integration)
        stop = _unexpected(integration, exc)
    finally:
        integration_credentials_persist(integration=integration, adapter=adapter)
        adapter.close()
    if isinstance(stop, AuthError):
        _integration_health(integration=integration, error=stop.message, credentials_refused=True)
    if stop is not None:
        errors.insert(0, stop.message)
    asked = {pk for ids in gaps.values() for pk in ids}
    status = RunStatus.SUCCEEDED
    if stop is not None and not read:
        status = RunStatus.FAILED
    elif stop is not None or failed:
        status = RunStatus.PARTIAL
    days = sorted({day for start, end in gaps for day in (start, end)})
    return _run_finish(
        run,
        status=status,
        message=(
            f"History {days[0]:%Y-%m-%d %H:%M}–{days[-1]:%Y-%m-%d %H:%M} UTC: {len(read)} of {len(asked)} devices "
            f"with gaps read, {written} readings stored, {rollups} 15-minute rollups refreshed"
            + (f"; stopped: {stop.message}" if stop else "")
        ),
        devices_ok=len(read),
        devices_failed=len(asked - read),
        readings_written=written,
        http_requests=adapter.requests_made,
        errors=errors,
    )
