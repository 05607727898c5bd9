"""Writes of the fleet: contacts, sites, devices, device state, and alerts. Every one is atomic and audited."""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import orjson
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from fleet import events
from fleet.choices import (
    ALERT_ACTIVE,
    ALERT_SNOOZABLE,
    ALERT_STATUS_TRANSITIONS,
    DEVICE_STATE_TRANSITIONS,
    AlertSeverity,
    AlertStatus,
    AlertSubtype,
    AlertType,
    DeviceState,
)
from fleet.events import FleetEventType
from fleet.models import (
    Alert,
    AlertNotificationSetting,
    Contact,
    Device,
    DeviceStateChange,
    DeviceTag,
    Manufacturer,
    Site,
    TelemetryReading,
)
from programs.services import enrollment_submit
from texture_portal.audit import audit_actor_label, audit_record, audit_record_many
from texture_portal.bulk import update_objects
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events import services as outbox
from texture_portal.events.envelope import iso
from texture_portal.exceptions import ApplicationError, Conflict, WorkspaceMismatch
from texture_portal.model_update import model_update
from texture_portal.tenancy import require_same_workspace

logger = logging.getLogger(__name__)

CONTACT_FIELDS = ["reference_id", "first_name", "last_name", "email", "phone"]
SITE_FIELDS = [
    "contact",
    "site_name",
    "site_reference_id",
    "street_one",
    "street_two",
    "city",
    "state",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "timezone",
]
DEVICE_FIELDS = ["contact", "site", "name", "device_type"]


@transaction.atomic
def contact_create(*, workspace, actor, source: AuditSource | str = AuditSource.SERVICE, **data) -> Contact:
    contact = Contact(workspace=workspace, **{k: v for k, v in data.items() if k in CONTACT_FIELDS})
    contact.full_clean()
    contact.save()
    audit_record(actor=actor, action=AuditAction.CONTACT_CREATED, target=contact, source=source)
    outbox.event_emit(
        workspace_id=contact.workspace_id,
        type=FleetEventType.CUSTOMER_CREATED,
        key=f"customer.created:{contact.pk}",
        data=events.contact_data(contact),
    )
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE) -> dict:
    """Update a contact's details; returns the changes (empty: nothing written, nothing audited)."""
    changes = model_update(instance=contact, fields=CONTACT_FIELDS, data=data)
    if changes:
        entry = audit_record(
            actor=actor, action=AuditAction.CONTACT_UPDATED, target=contact, source=source, changes=changes
        )
        outbox.event_emit(
            workspace_id=contact.workspace_id,
            type=FleetEventType.CUSTOMER_UPDATED,
            key=f"customer.updated:{contact.pk}:{entry.pk}",
            data=events.contact_data(contact),
        )
    return changes


@transaction.atomic
def site_create(*, workspace, contact: Contact, actor, source: AuditSource | str = AuditSource.SERVICE, **data) -> Site:
    require_same_workspace(workspace.pk, contact)
    site = Site(workspace=workspace, contact=contact, **{k: v for k, v in data.items() if k in SITE_FIELDS})
    site.full_clean()
    site.save()
    audit_record(actor=actor, action=AuditAction.SITE_CREATED, target=site, source=source)
    outbox.event_emit(
        workspace_id=site.workspace_id,
        type=FleetEventType.SITE_CREATED,
        key=f"site.created:{site.pk}",
        data=events.site_data(site),
    )
    return site


@transaction.atomic
def site_update(*, site: Site, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE) -> dict:
    if "contact" in data:
        require_same_workspace(site.workspace_id, data["contact"])
    changes = model_update(instance=site, fields=SITE_FIELDS, data=data)
    if "contact" in changes:
        # Devices follow their site: a device's contact is its site's contact.
        site.devices.update(contact_id=site.contact_id, last_updated=timezone.now())
    if changes:
        entry = audit_record(actor=actor, action=AuditAction.SITE_UPDATED, target=site, source=source, changes=changes)
        outbox.event_emit(
            workspace_id=site.workspace_id,
            type=FleetEventType.SITE_UPDATED,
            key=f"site.updated:{site.pk}:{entry.pk}",
            data=events.site_data(site),
        )
    return changes


@transaction.atomic
def contact_upsert(
    *, workspace, reference_id: str, data: dict, actor, source: AuditSource | str = AuditSource.SERVICE
) -> tuple[Contact, bool]:
    """The workspace's contact of this `reference_id` updated with `data`, or created; (contact, created).
    The row is locked while it is updated, so two upserts of one reference do not interleave."""
    contact = Contact.objects.select_for_update().filter(workspace=workspace, reference_id=reference_id).first()
    if contact is None:
        try:
            with transaction.atomic():
                created = contact_create(
                    workspace=workspace, actor=actor, source=source, **data, reference_id=reference_id
                )
            return created, True
        except (IntegrityError, ValidationError):
            # created meanwhile by a concurrent upsert of the same reference: update that one
            contact = Contact.objects.select_for_update().filter(workspace=workspace, reference_id=reference_id).first()
            if contact is None:
                raise
    contact_update(contact=contact, data={**data, "reference_id": reference_id}, actor=actor, source=source)
    return contact, False


@transaction.atomic
def contact_delete(*, contact: Contact, actor, source: AuditSource | str = AuditSource.SERVICE) -> None:
    """Delete a contact without sites (its sites, devices and their history are kept: delete those first)."""
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if locked.sites.exists():
        raise Conflict(f"Contact {locked.reference_id} has sites; delete its sites (and their devices) first.")
    data = events.contact_data(locked)
    audit_record(actor=actor, action=AuditAction.OBJECT_DELETED, target=locked, source=source)
    outbox.event_emit(
        workspace_id=locked.workspace_id,
        type=FleetEventType.CUSTOMER_DELETED,
        key=f"customer.deleted:{locked.pk}",
        data=data,
    )
    locked.delete()


@transaction.atomic
def site_delete(*, site: Site, actor, source: AuditSource | str = AuditSource.SERVICE) -> None:
    """Delete a site without devices."""
    locked = Site.objects.select_for_update().get(pk=site.pk)
    if locked.devices.exists():
        raise Conflict(f"Site {locked.pk} has devices; delete or move them first.")
    data = events.site_data(locked)
    audit_record(actor=actor, action=AuditAction.OBJECT_DELETED, target=locked, source=source)
    outbox.event_emit(
        workspace_id=locked.workspace_id, type=FleetEventType.SITE_DELETED, key=f"site.deleted:{locked.pk}", data=data
    )
    locked.delete()


@transaction.atomic
def device_create(
    *,
    workspace,
    site: Site,
    manufacturer,
    system_identifier: str,
    device_type: str,
    program,
    actor,
    name: str = "",
    tags: Iterable[str] = (),
    source: AuditSource | str = AuditSource.SERVICE,
) -> Device:
    """A device added as the bulk import adds one: a Registered System, enrolled in `program` (submitted, and
    approved at once when the program approves automatically), audited, with the enrollment's events."""
    device = device_register(
        workspace=workspace,
        site=site,
        manufacturer=manufacturer,
        system_identifier=system_identifier,
        device_type=device_type,
        name=name,
        tags=tags,
        actor=actor,
        source=source,
    )
    enrollment_submit(device=device, program=program, actor=actor, source=source)
    return device


@transaction.atomic
def device_delete(*, device: Device, actor, source: AuditSource | str = AuditSource.SERVICE) -> None:
    """Delete a Registered System (never bound to an OEM: no telemetry, commands or dispatch history of its
    own); its enrollments go with it. A device that was ever on the workspace keeps its history: 409."""
    locked = Device.objects.select_for_update().get(pk=device.pk)
    if locked.state != DeviceState.REGISTERED:
        raise Conflict(
            f"Device {locked.pk} is {locked.get_state_display()}; only a Registered System (never bound to its "
            "OEM) can be deleted."
        )
    audit_record(actor=actor, action=AuditAction.OBJECT_DELETED, target=locked, source=source)
    locked.delete()


def device_tags_get_or_create(*, workspace, names: Iterable[str]) -> list[DeviceTag]:
    """The workspace's tags of these names, creating the missing ones (two queries whatever the count)."""
    wanted = sorted({name.strip() for name in names if name and name.strip()})
    if not wanted:
        return []
    existing = {tag.name: tag for tag in DeviceTag.objects.filter(workspace=workspace, name__in=wanted)}
    missing = [DeviceTag(workspace=workspace, name=name) for name in wanted if name not in existing]
    if missing:
        DeviceTag.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {tag.name: tag for tag in DeviceTag.objects.filter(workspace=workspace, name__in=wanted)}
    return [existing[name] for name in wanted]


@transaction.atomic
def device_register(
    *,
    workspace,
    site: Site,
    manufacturer,
    system_identifier: str,
    device_type: str,
    actor,
    name: str = "",
    tags: Iterable[str] = (),
    source: AuditSource | str = AuditSource.SERVICE,
) -> Device:
    """Add a device as a Registered System (imported, not yet bound to an OEM account).

    Its contact is the site's contact. Audited, with the first state-history row. Raises ValidationError on
    a duplicate serial for that manufacturer in the workspace.
    """
    require_same_workspace(workspace.pk, site)
    now = timezone.now()
    device = Device(
        workspace=workspace,
        site=site,
        contact_id=site.contact_id,
        manufacturer=manufacturer,
        system_identifier=system_identifier.strip(),
        device_type=device_type,
        name=name,
        state=DeviceState.REGISTERED,
        state_changed_at=now,
        state_reason="Registered",
    )
    device.full_clean()
    device.save()
    if tags:
        device.tags.set(device_tags_get_or_create(workspace=workspace, names=tags))
    DeviceStateChange.objects.create(
        workspace=workspace,
        device=device,
        from_state="",
        to_state=DeviceState.REGISTERED,
        changed_at=now,
        reason="Registered",
        actor=actor if getattr(actor, "pk", None) else None,
        source=source,
    )
    audit_record(actor=actor, action=AuditAction.DEVICE_REGISTERED, target=device, source=source)
    return device


@transaction.atomic
def device_update(
    *,
    device: Device,
    data: dict,
    actor,
    tags: Iterable[str] | None = None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> dict:
    """Change a device's site, name, type or tags. State is not changed here (see `device_change_state`)."""
    if "site" in data:
        require_same_workspace(device.workspace_id, data["site"])
        data = {**data, "contact": data["site"].contact_id}
    changes = model_update(instance=device, fields=DEVICE_FIELDS, data=data)
    if tags is not None:
        before = sorted(device.tags.values_list("name", flat=True))
        new_tags = device_tags_get_or_create(workspace=device.workspace, names=tags)
        after = sorted(tag.name for tag in new_tags)
        if before != after:
            device.tags.set(new_tags)
            changes["tags"] = [before, after]
    if changes:
        entry = audit_record(
            actor=actor, action=AuditAction.DEVICE_UPDATED, target=device, source=source, changes=changes
        )
        outbox.event_emit(
            workspace_id=device.workspace_id,
            type=FleetEventType.DEVICE_UPDATED,
            key=f"device.updated:{device.pk}:{entry.pk}",
            data=events.device_updated_data(device),
        )
    return changes


@transaction.atomic
def device_change_state(
    *,
    device: Device,
    to_state: DeviceState | str,
    reason: str,
    actor,
    source: AuditSource | str = AuditSource.SERVICE,
    at=None,
) -> DeviceStateChange:
    """Move a device along Registered System → Device on Workspace ↔ Offline.

    Locks the row, checks the transition (raises InvalidTransition), records the history row and the audit
    row. `reason` is required: staff must be able to read why a device is where it is.
    """
    if not reason.strip():
        raise ApplicationError("A device state change needs a reason.")
    locked = Device.objects.select_for_update().get(pk=device.pk)
    DEVICE_STATE_TRANSITIONS.check(locked.state, to_state)
    at = at or timezone.now()
    change = DeviceStateChange.objects.create(
        workspace_id=locked.workspace_id,
        device=locked,
        from_state=locked.state,
        to_state=to_state,
        changed_at=at,
        reason=reason[:300],
        actor=actor if getattr(actor, "pk", None) else None,
        source=source,
    )
    from_state = locked.state
    locked.state = to_state
    locked.state_changed_at = at
    locked.state_reason = reason[:300]
    locked.save(update_fields=["state", "state_changed_at", "state_reason", "last_updated"])
    device.state, device.state_changed_at, device.state_reason = locked.state, at, locked.state_reason
    audit_record(
        actor=actor,
        action=AuditAction.DEVICE_STATE_CHANGED,
        target=locked,
        source=source,
        changes={"state": [from_state, str(to_state)]},
        reason=reason,
    )
    event_type = events.STATE_EVENT.get((from_state, str(to_state)), FleetEventType.DEVICE_UPDATED)
    builder = events.device_updated_data if event_type == FleetEventType.DEVICE_UPDATED else events.device_data
    outbox.event_emit(
        workspace_id=locked.workspace_id,
        type=event_type,
        key=f"{event_type}:{locked.pk}:{change.pk}",
        data=builder(locked),
        timestamp=at,
    )
    _device_offline_alert(device=locked, from_state=from_state, to_state=str(to_state), reason=reason, at=at)
    return change


def device_offline_cause(device_id: int) -> str:
    return f"fleet:device_offline:device:{device_id}"


def _device_offline_alert(*, device: Device, from_state: str, to_state: str, reason: str, at) -> None:
    """The offline rule: a device that goes offline raises an alert; leaving offline (reporting again, or
    unbound at its OEM) resolves it."""
    if to_state == DeviceState.OFFLINE:
        alert_raise(
            workspace_id=device.workspace_id,
            alert=AlertRaise(
                cause=device_offline_cause(device.pk),
                type=AlertType.COMMUNICATIONS,
                subtype=AlertSubtype.DEVICE_OFFLINE,
                severity=AlertSeverity.WARNING,
                title=f"Device offline: {device.system_identifier}",
                description=reason,
                device_id=device.pk,
            ),
            at=at,
        )
    elif from_state == DeviceState.OFFLINE:
        alerts_resolve(workspace_id=device.workspace_id, causes=[device_offline_cause(device.pk)], reason=reason, at=at)


def device_mark_on_workspace(*, device: Device, reason: str, actor=None, source=AuditSource.TASK, at=None):
    return device_change_state(
        device=device, to_state=DeviceState.ON_WORKSPACE, reason=reason, actor=actor, source=source, at=at
    )


def device_mark_offline(*, device: Device, reason: str, actor=None, source=AuditSource.TASK, at=None):
    return device_change_state(
        device=device, to_state=DeviceState.OFFLINE, reason=reason, actor=actor, source=source, at=at
    )


def device_mark_registered(*, device: Device, reason: str, actor=None, source=AuditSource.SERVICE, at=None):
    return device_change_state(
        device=device, to_state=DeviceState.REGISTERED, reason=reason, actor=actor, source=source, at=at
    )


# -- discovery and telemetry (written by integration jobs) ------------------------------------------------
@transaction.atomic
def device_mark_discovered(
    *,
    device: Device,
    oem_device_id: str,
    oem_data: dict,
    reason: str,
    grid_services_status: str | None = None,
    source=AuditSource.TASK,
    at=None,
) -> Device:
    """Bind a Registered System to what its OEM calls it, and move it to Device on Workspace
    (`device.discovered`). The OEM ids are stored before the state change so the event carries them, with the
    grid-services status when the OEM's listing shows one (None: left as it is).

    Safe under overlapping discovery runs (beat + "discover now", a redelivered task): the row is locked
    first, and a device another run already moved on is returned untouched (no error, no second event)."""
    locked = Device.objects.select_for_update().get(pk=device.pk)
    if locked.state != DeviceState.REGISTERED:
        device.state, device.state_changed_at, device.state_reason = (
            locked.state,
            locked.state_changed_at,
            locked.state_reason,
        )
        return device
    now = timezone.now()
    values = {"oem_device_id": oem_device_id[:200], "oem_data": oem_data}
    if grid_services_status is not None:
        values |= {"grid_services_status": grid_services_status, "grid_services_checked_at": now}
    Device.objects.filter(pk=device.pk).update(**values, last_updated=now)
    for name, value in values.items():
        setattr(device, name, value)
    device_change_state(
        device=device, to_state=DeviceState.ON_WORKSPACE, reason=reason, actor=None, source=source, at=at
    )
    return device


def devices_note_reason(*, device_ids: Iterable[int], reason: str) -> int:
    """Say why devices stay where they are (not found at the OEM, integration not enabled) without a state
    change: no history row, no event, just the readable reason staff see on the device."""
    return (
        Device.objects.filter(pk__in=list(device_ids))
        .exclude(state_reason=reason[:300])
        .update(state_reason=reason[:300], last_updated=timezone.now())
    )


@dataclass(frozen=True)
class TelemetryIngestResult:
    readings_written: int
    devices_updated: int
    devices_recovered: list[int]


def telemetry_ingest(*, workspace_id: int, readings: list[tuple[int, object]]) -> TelemetryIngestResult:
    """Write normalized readings in bulk and move each device's latest snapshot forward.

    `readings` is [(device_id, TelemetrySnapshot)]. Idempotent on (device, measured_at): a re-sent reading
    (a retried batch, a dropped connection mid-sync) is neither lost nor duplicated. A device only moves
    forward: an older reading never replaces a newer latest snapshot. Each device that moved gets a
    `device.updated` event; offline devices that report again go back to Device on Workspace
    (`device.connected`). A device moved forward also takes the grid-services status its newest reading
    carries (`TelemetrySnapshot.grid_services_status`, read at the same time; None leaves it as it is), with
    `grid_services_checked_at` = now. A constant number of statements per call, plus one state change per
    recovered device. On PostgreSQL, one statement does it all (readings, devices, events): no per-row round
    trips and no ORM objects per reading.
    """
    if not readings:
        return TelemetryIngestResult(0, 0, [])
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # the device.updated events are written by the same statement
            written, moved, recovered = _ingest_postgresql(workspace_id=workspace_id, readings=readings)
        else:
            written, changed, received = _ingest_portable(workspace_id=workspace_id, readings=readings)
            # the payload from what is in memory (the devices loaded to move them, the snapshots): no query
            outbox.events_emit_many(
                workspace_id=workspace_id,
                type=FleetEventType.DEVICE_UPDATED,
                items=[
                    (
                        f"device.updated:{device.pk}:{iso(device.last_seen_at)}",
                        events.device_updated_data(
                            device, snapshot, reading_id=device.latest_telemetry_id, received_at=received
                        ),
                    )
                    for device, snapshot in changed
                ],
            )
            moved = len(changed)
            recovered = [device.pk for device, _ in changed if device.state == DeviceState.OFFLINE]
        for device in Device.objects.filter(pk__in=recovered):
            device_change_state(
                device=device,
                to_state=DeviceState.ON_WORKSPACE,
                reason=f"Reporting again (reading of {iso(device.last_seen_at)}).",
                actor=None,
                source=AuditSource.TASK,
            )
    return TelemetryIngestResult(written, moved, sorted(recovered))


READING_COLUMNS = [
    ("charge_percentage", "float8"),
    ("charge_rate_w", "float8"),
    ("grid_power_w", "float8"),
    ("solar_power_w", "float8"),
    ("backup_reserve_percent", "float8"),
    ("charging_state", "text"),
    ("grid_status", "text"),
    ("strategy", "text"),
    ("is_storm_mode_enabled", "bool"),
    ("is_storm_mode_active", "bool"),
    ("is_plugged_in", "bool"),
    ("charger_wattage_w", "float8"),
    ("charge_limit_percent", "float8"),
    ("range_km", "float8"),
]


def _grid_services_statuses(readings) -> dict[int, str]:
    """{device id: the grid-services status of its newest reading in the batch that carries one}."""
    statuses: dict[int, tuple] = {}
    for device_id, snapshot in readings:
        status = getattr(snapshot, "grid_services_status", None)
        if status is not None and (device_id not in statuses or snapshot.measured_at > statuses[device_id][0]):
            statuses[device_id] = (snapshot.measured_at, status)
    return {device_id: status for device_id, (_, status) in statuses.items()}


def _newest_per_device(rows) -> dict[int, tuple]:
    newest: dict[int, tuple] = {}
    for reading_id, device_id, measured_at in rows:
        if device_id not in newest or measured_at > newest[device_id][0]:
            newest[device_id] = (measured_at, reading_id)
    return newest


def _reading_arrays(readings) -> tuple[str, list]:
    """The readings as rows for `INSERT … SELECT r.*` (device, measured_at, then READING_COLUMNS): one JSON
    document read by `json_to_recordset`, serialized by orjson in C, instead of 16 arrays that psycopg would
    adapt value by value (half the ingest's time went there)."""
    columns = ", ".join(
        [
            "device_id bigint",
            "measured_at timestamptz",
            *(f"{name} {kind}" for name, kind in READING_COLUMNS),
        ]
    )
    # a snapshot's __dict__ holds exactly its fields; json_to_recordset ignores any key it is not asked for
    document = orjson.dumps([{"device_id": device_id, **vars(snap)} for device_id, snap in readings]).decode()
    return f"json_to_recordset(%s::json) AS r({columns})", [document]


_READINGS_INSERT = """
    INSERT INTO fleet_telemetryreading (workspace_id, received_at, device_id, measured_at, {columns})
    SELECT %s, %s, r.* FROM {unnest}
      JOIN fleet_device AS owner ON owner.id = r.device_id AND owner.workspace_id = %s
    ON CONFLICT (device_id, measured_at) DO NOTHING
    RETURNING id, device_id, measured_at{returning}
"""


def readings_insert_postgresql(cursor, *, workspace_id, readings) -> list[tuple]:
    """The readings alone: one INSERT … SELECT FROM json_to_recordset(…) ON CONFLICT DO NOTHING, for the
    workspace's own devices only; returns (id, device_id, measured_at) of the rows that were new. (What
    `telemetry_ingest` starts with; the benchmark's floor.)"""
    unnest, arrays = _reading_arrays(readings)
    columns = ", ".join(name for name, _ in READING_COLUMNS)
    cursor.execute(
        _READINGS_INSERT.format(columns=columns, unnest=unnest, returning=""),
        [workspace_id, timezone.now(), *arrays, workspace_id],
    )
    return cursor.fetchall()


# iso() in SQL: ISO 8601 in UTC with a Z, microseconds only when there are some
_ISO_SQL = (
    "to_char({ts} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN mod(extract(microseconds FROM {ts})::bigint, 1000000) = 0 THEN ''"
    " ELSE to_char({ts} AT TIME ZONE 'UTC', '.US') END || 'Z'"
)


def _ingest_postgresql(*, workspace_id, readings):
    """One statement (no round trip, no value crossing the wire twice): the readings inserted, each device
    moved forward to its newest new reading, and a device.updated event for each device that moved, built in
    the database. Returns (readings written, devices moved, ids of the moved devices that were offline)."""
    unnest, arrays = _reading_arrays(readings)
    now = timezone.now()
    statuses = orjson.dumps(
        [{"device_id": device_id, "status": status} for device_id, status in _grid_services_statuses(readings).items()]
    ).decode()
    iso = _ISO_SQL.format(ts="m.last_seen_at")
    reading_columns = [name for name, _ in READING_COLUMNS]
    insert = _READINGS_INSERT.format(
        columns=", ".join(reading_columns),
        unnest=unnest,
        returning="".join(f", {name}" for name in ["received_at", *reading_columns]),
    )
    # device.updated's `data` (fleet.events.device_updated_data) built in SQL: the device, its state, and its
    # newest reading as `latestTelemetry`, from the rows this statement wrote (no query per device)
    telemetry = ", ".join(f"'{events.TELEMETRY_KEYS[name]}', n.{name}" for name in reading_columns)
    measured, received = _ISO_SQL.format(ts="n.measured_at"), _ISO_SQL.format(ts="n.received_at")
    sql = f"""
        WITH inserted AS ({insert}),
        newest AS (
            SELECT DISTINCT ON (device_id) *
              FROM inserted ORDER BY device_id, measured_at DESC
        ),
        moved AS (
            UPDATE fleet_device AS d
               SET last_seen_at = n.measured_at, latest_telemetry_id = n.id,
                   grid_services_status = coalesce(g.status, d.grid_services_status),
                   grid_services_checked_at = CASE WHEN g.status IS NULL THEN d.grid_services_checked_at
                                                   ELSE %s END
              FROM newest AS n
              LEFT JOIN json_to_recordset(%s::json) AS g(device_id bigint, status text) ON g.device_id = n.device_id
             WHERE d.id = n.device_id AND d.workspace_id = %s
               AND (d.last_seen_at IS NULL OR d.last_seen_at < n.measured_at)
            RETURNING d.id, d.state, d.last_seen_at, d.latest_telemetry_id, d.system_identifier, d.manufacturer_id,
                      d.device_type, d.state_reason, d.contact_id, d.site_id, d.oem_device_id
        ),
        announced AS (
            INSERT INTO integrations_platformevent (workspace_id, type, version, key, timestamp, data)
            SELECT %s, %s, 1, 'device.updated:' || m.id || ':' || {iso}, %s,
                   jsonb_build_object('id', m.id, 'workspaceId', %s, 'systemIdentifier', m.system_identifier,
                                      'manufacturerSlug', mf.slug, 'deviceType', m.device_type, 'state', m.state,
                                      'stateReason', m.state_reason, 'contactId', m.contact_id,
                                      'siteId', m.site_id, 'manufacturerDeviceId', m.oem_device_id,
                                      'lastSeenAt', {iso}, 'telemetryId', m.latest_telemetry_id)
                   || jsonb_build_object('latestTelemetry', jsonb_build_object(
                          'measuredAt', {measured}, 'receivedAt', {received}, {telemetry}))
              FROM moved AS m
              JOIN newest AS n ON n.id = m.latest_telemetry_id
              JOIN {Manufacturer._meta.db_table} AS mf ON mf.id = m.manufacturer_id
            ON CONFLICT (workspace_id, key) DO NOTHING
        )
        SELECT (SELECT count(*) FROM inserted), count(*),
               coalesce(array_agg(id) FILTER (WHERE state = %s), '{{}}')
          FROM moved
    """  # noqa: S608 - column names, casts and the ISO expression are constants of this module
    params = [workspace_id, now, *arrays, workspace_id, now, statuses, workspace_id]
    params += [workspace_id, str(FleetEventType.DEVICE_UPDATED), now, workspace_id, str(DeviceState.OFFLINE)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written, moved, recovered = cursor.fetchone()
    if moved:
        outbox.event_batch_written(workspace_id, now)
    return written, moved, recovered


def _ingest_portable(*, workspace_id, readings):
    received = timezone.now()
    own = set(
        Device.objects.filter(workspace_id=workspace_id, pk__in={device_id for device_id, _ in readings}).values_list(
            "pk", flat=True
        )
    )
    readings = [(device_id, snapshot) for device_id, snapshot in readings if device_id in own]
    if not readings:
        return 0, [], received
    rows = [
        TelemetryReading(
            workspace_id=workspace_id,
            device_id=device_id,
            measured_at=snapshot.measured_at,
            received_at=received,
            **snapshot.reading_fields(),
        )
        for device_id, snapshot in readings
    ]
    device_ids = sorted({device_id for device_id, _ in readings})
    oldest = min(snapshot.measured_at for _, snapshot in readings)
    before = set(
        TelemetryReading.objects.filter(device_id__in=device_ids, measured_at__gte=oldest).values_list(
            "device_id", "measured_at"
        )
    )
    TelemetryReading.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    stored = list(
        TelemetryReading.objects.filter(device_id__in=device_ids, measured_at__gte=oldest).values_list(
            "pk", "device_id", "measured_at"
        )
    )
    offered = {(device_id, snapshot.measured_at) for device_id, snapshot in readings}
    inserted = [row for row in stored if (row[1], row[2]) in offered and (row[1], row[2]) not in before]
    newest = _newest_per_device(inserted)
    devices = list(
        Device.objects.filter(pk__in=list(newest), workspace_id=workspace_id)
        .select_related("manufacturer")
        .only(
            "pk",
            "workspace_id",
            "state",
            "state_reason",
            "last_seen_at",
            "grid_services_status",
            "grid_services_checked_at",
            "system_identifier",
            "device_type",
            "contact_id",
            "site_id",
            "oem_device_id",
            "manufacturer__slug",
        )
    )
    snapshots = {(device_id, snapshot.measured_at): snapshot for device_id, snapshot in readings}
    statuses = _grid_services_statuses(readings)
    changed = []
    for device in devices:
        seen, reading_id = newest[device.pk]
        if device.last_seen_at is not None and device.last_seen_at >= seen:
            continue
        device.last_seen_at, device.latest_telemetry_id = seen, reading_id
        if device.pk in statuses:
            device.grid_services_status, device.grid_services_checked_at = statuses[device.pk], received
        changed.append(device)
    fields = ["last_seen_at", "latest_telemetry_id", "grid_services_status", "grid_services_checked_at"]
    Device.objects.bulk_update(changed, fields, batch_size=500)
    return len(inserted), [(d, snapshots[(d.pk, d.last_seen_at)]) for d in changed], received


@transaction.atomic
def device_mark_stale_offline(*, device: Device, stale_since, reason: str) -> bool:
    """Offline, if the device is still on the workspace and still has not reported since `stale_since`
    (re-checked under the row lock, so a reading that just arrived wins)."""
    locked = Device.objects.select_for_update().get(pk=device.pk)
    if locked.state != DeviceState.ON_WORKSPACE:
        return False
    if locked.last_seen_at is not None and locked.last_seen_at >= stale_since:
        return False
    if locked.last_seen_at is None and locked.state_changed_at >= stale_since:
        return False
    device_change_state(device=locked, to_state=DeviceState.OFFLINE, reason=reason, actor=None, source=AuditSource.TASK)
    return True


def devices_record_discovery_miss(*, device_ids: Iterable[int], at) -> None:
    """Remember that discovery looked these serials up and did not find them (when, and how many times in a
    row), so that OEMs whose look-ups cost quota back off. Keyed by the serial: an edited serial is new."""
    devices = list(Device.objects.filter(pk__in=list(device_ids)).only("pk", "system_identifier", "oem_data"))
    for device in devices:
        previous = (device.oem_data or {}).get("discoveryMiss") or {}
        misses = previous.get("misses", 0) + 1 if previous.get("serial") == device.system_identifier else 1
        device.oem_data = {
            **(device.oem_data or {}),
            "discoveryMiss": {"serial": device.system_identifier, "at": iso(at), "misses": misses},
        }
    Device.objects.bulk_update(devices, ["oem_data"], batch_size=1000)


def devices_record_sync_error(*, errors: dict[int, str]) -> None:
    """Keep each device's last OEM answer (offline, not found, timeout) so the offline reason can quote it."""
    at = iso(timezone.now())
    devices = list(Device.objects.filter(pk__in=list(errors)).only("pk", "oem_data"))
    for device in devices:
        device.oem_data = {**device.oem_data, "lastSyncError": {"message": errors[device.pk][:300], "at": at}}
    Device.objects.bulk_update(devices, ["oem_data"], batch_size=1000)


def devices_clear_sync_error(*, device_ids: Iterable[int]) -> int:
    """Forget the last OEM error of devices that were just read: one UPDATE, of only the devices that have
    one, removing the key in the database (the rest of `oem_data` is left as it is)."""
    from texture_portal.expressions import JSONRemoveKey

    device_ids = list(device_ids)
    if not device_ids:
        return 0
    return Device.objects.filter(pk__in=device_ids, oem_data__has_key="lastSyncError").update(
        oem_data=JSONRemoveKey("oem_data", "lastSyncError")
    )


# -- telemetry rollups -------------------------------------------------------------------------------------

ROLLUP_MINUTES = 15
ROLLUP_COLUMNS = ["charge_rate_w", "grid_power_w", "solar_power_w", "charger_wattage_w", "charge_percentage"]
_ROLLUP_LOCK = 0x7E1E_0011  # a PostgreSQL advisory lock: one refresh at a time (a second one steps aside)


def rollup_interval_start(at):
    """The 15-minute interval (UTC-aligned) a moment falls in."""
    return at.replace(minute=at.minute - at.minute % ROLLUP_MINUTES, second=0, microsecond=0)


def telemetry_rollups_refresh(
    *, since, until=None, device_ids: Iterable[int] | None = None, overwrite: bool = True
) -> int:
    """(Re)compute the 15-minute rollups of every interval from the one `since` falls in up to `until` (now by
    default), from the raw readings, in one `INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`: an interval
    is recomputed whole, so late readings (an OEM's history, a catch-up sync) are folded in by running it again
    over their range, and two runs write the same rows. On PostgreSQL a run that finds another under way steps
    aside (returns -1) instead of upserting the same rows twice. `overwrite=False` only adds the intervals that
    have no rollup yet (the raw readings of older ones may be gone already). Returns the intervals written."""
    start = rollup_interval_start(since)
    end = until or timezone.now()
    ops = connection.ops
    if connection.vendor == "postgresql":
        bucket = f"to_timestamp(floor(extract(epoch FROM measured_at) / {ROLLUP_MINUTES * 60}) * {ROLLUP_MINUTES * 60})"
    else:  # SQLite keeps datetimes as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        bucket = (
            "strftime('%%Y-%%m-%%d %%H:', measured_at) || "
            f"printf('%%02d', (CAST(strftime('%%M', measured_at) AS INTEGER) / {ROLLUP_MINUTES}) * {ROLLUP_MINUTES})"
            " || ':00'"
        )
    columns = ", ".join(ROLLUP_COLUMNS)
    means = ", ".join(f"avg({c})" for c in ROLLUP_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ["samples", *ROLLUP_COLUMNS])
    on_conflict = f"DO UPDATE SET {updates}" if overwrite else "DO NOTHING"
    params = [ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)]
    only = ""
    if device_ids is not None:
        ids = sorted(set(device_ids))
        if not ids:
            return 0
        only = f" AND device_id IN ({', '.join(['%s'] * len(ids))})"
        params += ids
    sql = f"""
        INSERT INTO fleet_telemetryrollup (workspace_id, device_id, interval_start, samples, {columns})
        SELECT workspace_id, device_id, {bucket} AS bucket, count(*), {means}
        FROM fleet_telemetryreading
        WHERE measured_at >= %s AND measured_at < %s{only}
        GROUP BY workspace_id, device_id, bucket
        ON CONFLICT (device_id, interval_start) {on_conflict}
    """  # noqa: S608 - the interpolated parts are this module's constants; values go as parameters
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_ROLLUP_LOCK])
            if not cursor.fetchone()[0]:
                return -1
        cursor.execute(sql, params)
        return cursor.rowcount


def telemetry_readings_prune(*, now=None, batch: int = 20_000) -> int:
    """Delete the raw readings older than TELEMETRY_RAW_RETENTION_DAYS; their 15-minute rollups stay, what
    reports and baselines read. Intervals never rolled up (readings from before rollups, a job that did not
    run) get their rollup first, and an existing rollup is never recomputed from a partly pruned interval. A
    device's latest reading is kept whatever its age (its page and the engine read it). In batches, oldest
    first, each its own transaction: a run that dies half-way leaves whole readings and their rollups, and the
    next one goes on. Returns the readings deleted."""
    from datetime import timedelta

    from django.conf import settings

    now = now or timezone.now()
    cutoff = rollup_interval_start(now - timedelta(days=settings.TELEMETRY_RAW_RETENTION_DAYS))
    kept = Device.objects.filter(latest_telemetry__isnull=False).values("latest_telemetry_id")
    oldest = (
        TelemetryReading.objects.filter(measured_at__lt=cutoff)
        .exclude(pk__in=kept)
        .order_by("measured_at")
        .values_list("measured_at", flat=True)
        .first()
    )
    if oldest is None:
        return 0
    if telemetry_rollups_refresh(since=oldest, until=cutoff, overwrite=False) == -1:
        return 0  # a refresh is under way: the next run prunes
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            # a reading that became some device's latest meanwhile is protected by the foreign key: the batch
            # fails whole rather than leave the device pointing nowhere
            cursor.execute(
                """
                DELETE FROM fleet_telemetryreading WHERE id IN (
                    SELECT r.id FROM fleet_telemetryreading r
                    WHERE r.measured_at < %s
                      AND NOT EXISTS (SELECT 1 FROM fleet_device d WHERE d.latest_telemetry_id = r.id)
                    ORDER BY r.measured_at
                    LIMIT %s
                )
                """,
                [connection.ops.adapt_datetimefield_value(cutoff), batch],
            )
            count = cursor.rowcount
        deleted += count
        if count < batch:
            return deleted


# -- alerts --------------------------------------------------------------------------------------------------
#
# Rules raise alerts through `alerts_raise` (one statement whatever their number, concurrency-safe: the
# database's one-live-alert-per-cause constraint decides) and clear them through `alerts_resolve` when their
# cause clears; staff acknowledge, ignore, resolve and snooze them through `alert_change_status` and
# `alert_snooze`. Each new alert and each change of status or snooze is audited and announced (`alert.created`,
# `alert.updated`); new alerts, and alerts whose snooze ran out, are mailed after commit.

ALERT_SYSTEM = "system"  # who resolved an alert whose cause cleared
ALERT_MAX_SNOOZE = timedelta(days=30)


@dataclass(frozen=True)
class AlertRaise:
    """One alert a rule raises, or counts on again when its cause already has a live one. `device_id`: the
    alert's device (its site and snapshot come with it); `site_id`: a site without a device."""

    cause: str
    type: str
    subtype: str
    severity: str
    title: str
    description: str = ""
    device_id: int | None = None
    site_id: int | None = None
    subject_label: str = ""
    subject_ref: str = ""
    source_system: str = "fleet"
    external_id: str = ""


_ALERT_INSERT_COLUMNS = [
    "workspace_id", "cause", "type", "subtype", "severity", "status", "title", "description", "site_id",
    "device_id", "subject_label", "subject_ref", "source_system", "external_id", "manufacturer_device_id",
    "device_name", "device_type", "device_model", "device_serial_number", "manufacturer", "last_seen_at",
    "raise_count", "acknowledged_by_label", "ignored_by_label", "resolved_by_label", "created", "last_updated",
]  # fmt: skip
_ALERT_BATCH = 500  # rows per INSERT (SQLite takes at most 32,766 parameters a statement, PostgreSQL 65,535)


def _alert_row(workspace_id: int, spec: AlertRaise, device: Device | None, at) -> list:
    if device is not None:
        require_same_workspace(workspace_id, device)
    snapshot = (
        [
            device.oem_device_id[:200],
            device.name[:200],
            device.device_type,
            str((device.oem_data or {}).get("model") or "")[:200],
            device.system_identifier[:100],
            device.manufacturer.name[:120],
        ]
        if device is not None
        else [""] * 6
    )
    stamp = connection.ops.adapt_datetimefield_value(at)
    return [
        workspace_id, spec.cause[:200], spec.type, spec.subtype[:60], spec.severity, AlertStatus.OPEN,
        spec.title[:200], spec.description, device.site_id if device is not None else spec.site_id,
        device.pk if device is not None else None, spec.subject_label[:200], spec.subject_ref[:100],
        spec.source_system[:60], spec.external_id[:200], *snapshot, stamp, 1, "", "", "", stamp, stamp,
    ]  # fmt: skip


def alerts_raise(*, workspace_id: int, alerts: Iterable[AlertRaise], at=None) -> list[int]:
    """Raise alerts in one workspace: a cause with no live (unresolved) alert gets a new OPEN one; a cause
    that has one counts on it (`raise_count` + 1, `last_seen_at`, the latest description and subject) and nothing else
    happens: no new row, no event, no e-mail. One INSERT … ON CONFLICT per 500 alerts, so two workers
    raising the same cause at once make one row. New alerts are audited, announced (`alert.created`) and
    mailed after commit. Returns the ids of the new alerts."""
    by_cause = {spec.cause: spec for spec in alerts}  # one row per cause per statement (the last one wins)
    if not by_cause:
        return []
    at = at or timezone.now()
    device_ids = {spec.device_id for spec in by_cause.values() if spec.device_id}
    devices = Device.objects.select_related("manufacturer").in_bulk(device_ids) if device_ids else {}
    site_ids = {spec.site_id for spec in by_cause.values() if spec.site_id and not spec.device_id}
    if site_ids and Site.objects.filter(pk__in=site_ids).exclude(workspace_id=workspace_id).exists():
        raise WorkspaceMismatch("An alert names a site of another workspace.")
    rows = [_alert_row(workspace_id, spec, devices.get(spec.device_id), at) for spec in by_cause.values()]
    active = ", ".join(f"'{status}'" for status in ALERT_ACTIVE)  # our constants: the index's own predicate
    created = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            for start in range(0, len(rows), _ALERT_BATCH):
                batch = rows[start : start + _ALERT_BATCH]
                values = ", ".join(["(" + ", ".join(["%s"] * len(_ALERT_INSERT_COLUMNS)) + ")"] * len(batch))
                cursor.execute(
                    f"""
                    INSERT INTO fleet_alert ({", ".join(_ALERT_INSERT_COLUMNS)}) VALUES {values}
                    ON CONFLICT (workspace_id, cause) WHERE status IN ({active}) DO UPDATE SET
                        raise_count = fleet_alert.raise_count + 1,
                        last_seen_at = CASE WHEN excluded.last_seen_at > fleet_alert.last_seen_at
                                            THEN excluded.last_seen_at ELSE fleet_alert.last_seen_at END,
                        description = excluded.description,
                        subject_label = excluded.subject_label,
                        subject_ref = excluded.subject_ref,
                        last_updated = excluded.last_updated
                    RETURNING id, raise_count
                    """,  # noqa: S608 - column names and statuses are this module's constants
                    [value for row in batch for value in row],
                )
                created += [pk for pk, count in cursor.fetchall() if count == 1]
        if created:
            new = list(Alert.objects.filter(pk__in=created).order_by("pk"))
            audit_record_many(
                actor=None,
                action=AuditAction.ALERT_RAISED,
                targets=new,
                source=AuditSource.TASK,
                reason_by_pk={alert.pk: alert.description[:500] for alert in new},
            )
            outbox.events_emit_many(
                workspace_id=workspace_id,
                type=FleetEventType.ALERT_CREATED,
                items=[(f"alert.created:{alert.pk}", events.alert_data(alert)) for alert in new],
                timestamp=at,
            )
            transaction.on_commit(partial(alerts_mail_queue, alert_ids=sorted(created)))
    return sorted(created)


def alert_raise(*, workspace_id: int, alert: AlertRaise, at=None) -> bool:
    """`alerts_raise` for one alert: True when it is new."""
    return bool(alerts_raise(workspace_id=workspace_id, alerts=[alert], at=at))


def alerts_resolve(
    *,
    workspace_id: int,
    reason: str,
    causes: Iterable[str] = (),
    cause_prefix: str = "",
    at=None,
) -> list[int]:
    """The causes cleared: their live alerts (open, acknowledged or ignored) are resolved by the system, with
    the reason; audited and announced (`alert.updated`). `cause_prefix`: every cause that starts with it (an
    event's devices). One locking read when there is nothing to resolve. Returns the ids resolved."""
    causes = sorted(set(causes))
    if not causes and not cause_prefix:
        return []
    at = at or timezone.now()
    with transaction.atomic():
        live = Alert.objects.select_for_update().filter(workspace_id=workspace_id, status__in=ALERT_ACTIVE)
        live = live.filter(cause__startswith=cause_prefix) if cause_prefix else live.filter(cause__in=causes)
        alerts = list(live.order_by("pk"))
        if not alerts:
            return []
        before = {alert.pk: alert.status for alert in alerts}
        for alert in alerts:
            ALERT_STATUS_TRANSITIONS.check(alert.status, AlertStatus.RESOLVED)
            alert.status, alert.resolved_at, alert.resolved_by, alert.resolved_by_label = (
                AlertStatus.RESOLVED,
                at,
                None,
                ALERT_SYSTEM,
            )
            alert.snoozed_until, alert.last_updated = None, at
        update_objects(
            alerts, ["status", "resolved_at", "resolved_by", "resolved_by_label", "snoozed_until", "last_updated"]
        )
        audit_record_many(
            actor=None,
            action=AuditAction.ALERT_STATUS_CHANGED,
            targets=alerts,
            source=AuditSource.TASK,
            changes_by_pk={alert.pk: {"status": [before[alert.pk], AlertStatus.RESOLVED]} for alert in alerts},
            reason=reason,
        )
        outbox.events_emit_many(
            workspace_id=workspace_id,
            type=FleetEventType.ALERT_UPDATED,
            items=[
                (
                    f"alert.updated:{alert.pk}:{AlertStatus.RESOLVED}:{iso(at)}",
                    events.alert_data(alert, {"status": [before[alert.pk], AlertStatus.RESOLVED]}),
                )
                for alert in alerts
            ],
            timestamp=at,
        )
    return [alert.pk for alert in alerts]


_STATUS_STAMPS = {
    AlertStatus.ACKNOWLEDGED: ("acknowledged_at", "acknowledged_by", "acknowledged_by_label"),
    AlertStatus.IGNORED: ("ignored_at", "ignored_by", "ignored_by_label"),
    AlertStatus.RESOLVED: ("resolved_at", "resolved_by", "resolved_by_label"),
}


@transaction.atomic
def alert_change_status(
    *,
    alert: Alert,
    status: AlertStatus | str,
    actor,
    reason: str = "",
    source: AuditSource | str = AuditSource.SERVICE,
) -> Alert:
    """Staff or an integrator acknowledge, ignore, resolve or reopen an alert (Texture's `changeAlertStatus`):
    the transition table decides (raises InvalidTransition), and who and when are recorded on the alert, in
    the audit log and in the `alert.updated` event. Ignoring or resolving ends any snooze; reopening an
    ignored alert clears who ignored it (the audit log keeps it)."""
    locked = Alert.objects.select_for_update().get(pk=alert.pk)
    ALERT_STATUS_TRANSITIONS.check(locked.status, status)
    before, now = locked.status, timezone.now()
    fields = ["status", "last_updated"]
    locked.status = status
    if status in _STATUS_STAMPS:
        at_field, by_field, label_field = _STATUS_STAMPS[status]
        setattr(locked, at_field, now)
        setattr(locked, by_field, actor if getattr(actor, "pk", None) else None)
        setattr(locked, label_field, audit_actor_label(actor)[:200] or ALERT_SYSTEM)
        fields += [at_field, by_field, label_field]
    if status == AlertStatus.OPEN:  # reopened
        locked.ignored_at, locked.ignored_by, locked.ignored_by_label = None, None, ""
        fields += ["ignored_at", "ignored_by", "ignored_by_label"]
    if status not in ALERT_SNOOZABLE and locked.snoozed_until is not None:
        locked.snoozed_until = None
        fields.append("snoozed_until")
    locked.save(update_fields=fields)
    changes = {"status": [before, str(status)]}
    entry = audit_record(
        actor=actor, action=AuditAction.ALERT_STATUS_CHANGED, target=locked, source=source, changes=changes,
        reason=reason,
    )  # fmt: skip
    outbox.event_emit(
        workspace_id=locked.workspace_id,
        type=FleetEventType.ALERT_UPDATED,
        key=f"alert.updated:{locked.pk}:{entry.pk}",
        data=events.alert_data(locked, changes),
        timestamp=now,
    )
    alert.refresh_from_db()
    return alert


@transaction.atomic
def alert_snooze(*, alert: Alert, until, actor, source: AuditSource | str = AuditSource.SERVICE) -> Alert:
    """Snooze an open or acknowledged alert until a time (at most ALERT_MAX_SNOOZE ahead), or end its snooze
    (`until=None`). A snoozed alert is not listed as needing attention and not mailed; when the snooze runs
    out while it is still open or acknowledged, `alert_snoozes_expire` mails it again."""
    locked = Alert.objects.select_for_update().get(pk=alert.pk)
    now = timezone.now()
    if until is not None:
        if locked.status not in ALERT_SNOOZABLE:
            raise ApplicationError(f"Only an open or acknowledged alert can be snoozed; this one is {locked.status}.")
        if until <= now:
            raise ApplicationError("A snooze must end in the future.")
        if until > now + ALERT_MAX_SNOOZE:
            raise ApplicationError(f"A snooze may last at most {ALERT_MAX_SNOOZE.days} days.")
    before = locked.snoozed_until
    if before == until:
        return alert
    locked.snoozed_until = until
    locked.save(update_fields=["snoozed_until", "last_updated"])
    entry = audit_record(
        actor=actor,
        action=AuditAction.ALERT_SNOOZED,
        target=locked,
        source=source,
        changes={"snoozed_until": [before, until]},
        reason=f"Snoozed until {iso(until)}" if until else "Snooze ended",
    )
    outbox.event_emit(
        workspace_id=locked.workspace_id,
        type=FleetEventType.ALERT_UPDATED,
        key=f"alert.updated:{locked.pk}:{entry.pk}",
        data=events.alert_data(locked, {"snoozedUntil": [iso(before), iso(until)]}),
        timestamp=now,
    )
    alert.refresh_from_db()
    return alert


def alert_snoozes_expire(*, now=None) -> int:
    """Alerts whose snooze has run out while still open or acknowledged wake up: the snooze is cleared
    (audited, `alert.updated`) and they are mailed again after commit. Safe to run twice at once (the rows
    are claimed with SKIP LOCKED, and a woken alert has no snooze left). Returns how many woke."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(snoozed_until__isnull=False, snoozed_until__lte=now, status__in=ALERT_SNOOZABLE)
            .order_by("pk")
        )
        if not due:
            return 0
        ended = {alert.pk: alert.snoozed_until for alert in due}
        for alert in due:
            alert.snoozed_until, alert.notified_at, alert.last_updated = None, None, now
        update_objects(due, ["snoozed_until", "notified_at", "last_updated"])
        audit_record_many(
            actor=None,
            action=AuditAction.ALERT_SNOOZED,
            targets=due,
            source=AuditSource.TASK,
            changes_by_pk={alert.pk: {"snoozed_until": [ended[alert.pk], None]} for alert in due},
            reason="Snooze over",
        )
        by_workspace = defaultdict(list)
        for alert in due:
            by_workspace[alert.workspace_id].append(
                (
                    f"alert.updated:{alert.pk}:woke:{iso(now)}",
                    events.alert_data(alert, {"snoozedUntil": [iso(ended[alert.pk]), None]}),
                )
            )
        for workspace_id, items in by_workspace.items():
            outbox.events_emit_many(
                workspace_id=workspace_id, type=FleetEventType.ALERT_UPDATED, items=items, timestamp=now
            )
        transaction.on_commit(partial(alerts_mail_queue, alert_ids=[alert.pk for alert in due]))
    return len(due)


def alerts_mail_queue(*, alert_ids: list[int]) -> None:
    """After commit: hand the alerts to the e-mail task (a broker outage must not fail the change)."""
    from fleet.tasks import alerts_mail_task

    try:
        alerts_mail_task.delay(alert_ids)
    except Exception:
        logger.exception("Could not queue the e-mail of alerts %s", alert_ids)


def alerts_mail(*, alert_ids: Iterable[int], now=None) -> int:
    """E-mail each workspace's address the given alerts it wants (its setting's types and severities) that
    still need attention: open or acknowledged, not snoozed, not mailed since they were raised or woke. One
    message per workspace. The alerts are claimed (`notified_at`) before sending, so a task run twice mails
    once; a failed send gives the claim back and raises, for the task to retry. Returns the alerts mailed."""
    from django.core.mail import EmailMessage, get_connection

    now = now or timezone.now()
    with transaction.atomic():
        candidates = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(alert_ids), notified_at__isnull=True, status__in=ALERT_SNOOZABLE)
            .filter(Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now))
            .order_by("pk")
        )
        wanted = {
            setting.workspace_id: setting
            for setting in AlertNotificationSetting.objects.filter(
                workspace_id__in={alert.workspace_id for alert in candidates}, is_active=True
            ).select_related("workspace__organization")
        }
        chosen = [a for a in candidates if a.workspace_id in wanted and wanted[a.workspace_id].wants(a)]
        if not chosen:
            return 0
        Alert.objects.filter(pk__in=[alert.pk for alert in chosen]).update(notified_at=now)
    by_workspace = defaultdict(list)
    for alert in chosen:
        by_workspace[alert.workspace_id].append(alert)
    messages = [
        EmailMessage(
            subject=_alert_mail_subject(wanted[workspace_id].workspace, alerts),
            body=_alert_mail_body(wanted[workspace_id].workspace, alerts),
            to=[wanted[workspace_id].email],
        )
        for workspace_id, alerts in by_workspace.items()
    ]
    try:
        get_connection().send_messages(messages)
    except Exception:
        Alert.objects.filter(pk__in=[alert.pk for alert in chosen], notified_at=now).update(notified_at=None)
        raise
    return len(chosen)


def _alert_mail_subject(workspace, alerts: list[Alert]) -> str:
    if len(alerts) == 1:
        return f"[Texture Portal] {alerts[0].severity}: {alerts[0].title}"[:200]
    worst = min(alerts, key=lambda a: AlertSeverity.values.index(a.severity)).severity
    return f"[Texture Portal] {len(alerts)} alerts in {workspace} (worst: {worst})"


def _alert_mail_body(workspace, alerts: list[Alert]) -> str:
    from django.conf import settings

    lines = [f"Alerts in {workspace}:", ""]
    for alert in alerts:
        about = alert.device_serial_number and f"{alert.manufacturer} {alert.device_type} {alert.device_serial_number}"
        lines += [
            f"{alert.severity} · {alert.type} / {alert.subtype or '—'} · raised {iso(alert.created)}",
            alert.title,
            *([alert.description] if alert.description else []),
            *([f"Device: {about}"] if about else []),
            *([f"About: {alert.subject_label}"] if alert.subject_label else []),
            f"{settings.PORTAL_BASE_URL}/admin/fleet/alert/{alert.pk}/change/",
            "",
        ]
    lines.append("You receive this because of the workspace's alert e-mail setting (Fleet → Alert e-mail settings).")
    return "\n".join(lines)


# -- the stuck-telemetry rule (periodic) --------------------------------------------------------------------

_STUCK_LOCK = 0x7E1E_0012  # a PostgreSQL advisory lock: one evaluation at a time (a second one steps aside)


def telemetry_stuck_cause(device_id: int) -> str:
    return f"fleet:telemetry_stuck:device:{device_id}"


def telemetry_stuck_alerts_evaluate(*, now=None) -> dict:
    """Raise an alert for each device whose telemetry stopped changing: every reading of the last
    ALERT_STUCK_TELEMETRY_HOURS (at least ALERT_STUCK_TELEMETRY_READINGS of them, covering the window) shows
    the same values (a device or an OEM repeating a cached reading). Resolve it once its readings change
    again. Set-based (two statements whatever the fleet's size, plus one per workspace with alerts to raise
    or resolve); on PostgreSQL a run that finds another under way steps aside (returns {"skipped": True})."""
    from django.conf import settings

    from fleet import selectors

    now = now or timezone.now()
    hours = settings.ALERT_STUCK_TELEMETRY_HOURS
    since = now - timedelta(hours=hours)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_STUCK_LOCK])
                if not cursor.fetchone()[0]:
                    return {"skipped": True}
        stuck = selectors.devices_with_stuck_telemetry(
            since=since,
            first_by=now - timedelta(hours=hours * 0.75),
            min_readings=settings.ALERT_STUCK_TELEMETRY_READINGS,
            device_types=settings.ALERT_STUCK_TELEMETRY_DEVICE_TYPES,
        )
        raised = defaultdict(list)
        for device_id, workspace_id, serial, readings in stuck:
            raised[workspace_id].append(
                AlertRaise(
                    cause=telemetry_stuck_cause(device_id),
                    type=AlertType.COMMUNICATIONS,
                    subtype=AlertSubtype.TELEMETRY_STUCK,
                    severity=AlertSeverity.WARNING,
                    title=f"Telemetry not changing: {serial}",
                    description=(
                        f"The {readings} readings of the last {hours:g} h all show the same state of charge, charge "
                        "rate, grid and solar power: the device or its OEM may be repeating a cached reading."
                    ),
                    device_id=device_id,
                )
            )
        new = sum(len(alerts_raise(workspace_id=ws, alerts=specs, at=now)) for ws, specs in raised.items())
        watched = set(
            Alert.objects.filter(
                status__in=ALERT_ACTIVE, cause__startswith="fleet:telemetry_stuck:", device__isnull=False
            ).values_list("device_id", flat=True)
        ) - {device_id for device_id, *_ in stuck}
        moving = defaultdict(list)
        for device_id, workspace_id, _serial, _readings in selectors.devices_with_changing_telemetry(
            since=since, device_ids=watched
        ):
            moving[workspace_id].append(telemetry_stuck_cause(device_id))
        resolved = sum(
            len(alerts_resolve(workspace_id=ws, causes=causes, reason="Its readings change again.", at=now))
            for ws, causes in moving.items()
        )
    return {"stuck": len(stuck), "new": new, "resolved": resolved}


@transaction.atomic
def alert_notification_setting_save(
    *,
    workspace,
    email: str,
    actor,
    alert_types: Iterable[str] = (),
    severities: Iterable[str] = (),
    is_active: bool = True,
    source: AuditSource | str = AuditSource.SERVICE,
) -> AlertNotificationSetting:
    """Where the workspace's alerts are mailed, and which (empty: all types, all severities); one per
    workspace, created or updated. Audited with what changed."""
    setting = AlertNotificationSetting.objects.select_for_update().filter(workspace=workspace).first()
    values = {
        "email": email,
        "alert_types": sorted(set(alert_types)),
        "severities": sorted(set(severities)),
        "is_active": is_active,
    }
    if setting is None:
        setting = AlertNotificationSetting(workspace=workspace, **values)
        setting.full_clean()
        setting.save()
        audit_record(actor=actor, action=AuditAction.OBJECT_CREATED, target=setting, source=source, changes=values)
        return setting
    changes = model_update(instance=setting, fields=list(values), data=values)
    if changes:
        audit_record(actor=actor, action=AuditAction.OBJECT_CHANGED, target=setting, source=source, changes=changes)
    return setting
