"""Applying a plan: one transaction, rows streamed per table (`texture_portal.bulk.RowStream`: COPY on a
background thread on PostgreSQL), never a query per row. Writes the devices' first state-history rows, an
audit row for every updated record (creations are summed up on the import's own audit row) and the platform
events."""

from collections import defaultdict
from types import SimpleNamespace

from django.db import connection, transaction
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.events import FleetEventType, contact_data, device_updated_data, site_data
from fleet.importing.planner import CHUNK, FleetImportPlan, chunked
from fleet.models import Contact, Device, DeviceStateChange, DeviceTag, Site
from programs.choices import EnrollmentApproval, EnrollmentStatus
from programs.events import EnrollmentEventType, enrollment_data
from programs.models import Enrollment, Program
from texture_portal.audit import audit_record_many
from texture_portal.bulk import RowStream
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events.services import event_batch_written, event_emit_many

BATCH = 2000
# Rows per streamed COPY (and events per outbox flush): large enough to amortize a statement, small enough
# that the batches in flight stay a few MB.
STREAM_BATCH = 10000


class PlanNotApplicable(Exception):
    pass


def _bulk_update(model, changes: dict[int, dict], now) -> None:
    """Grouped by the set of changed fields, so each UPDATE batch writes only what changed."""
    groups: dict[tuple, list] = defaultdict(list)
    for pk, diff in changes.items():
        groups[tuple(sorted(diff))].append(model(pk=pk, last_updated=now, **{f: new for f, (_, new) in diff.items()}))
    for fields, objs in groups.items():
        model.objects.bulk_update(objs, [*fields, "last_updated"], batch_size=BATCH)


def apply_fleet_import(
    *, plan: FleetImportPlan, workspace, actor, source=AuditSource.IMPORT, label: str = "Imported", progress=None
) -> dict:
    """Write `plan` into `workspace`, all or nothing. Returns the counts. Raises PlanNotApplicable for a plan
    with errors (validate first)."""
    if not plan.ok:
        raise PlanNotApplicable(f"The plan has {len(plan.errors)} errors.")
    now = timezone.now()
    ws = workspace.pk
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    total = max(len(plan.contacts_new) + len(plan.sites_new) + len(plan.devices_new) + len(plan.enrollments_new), 1)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(min(done, total), total)

    counts = plan.counts()
    stamp = {"created": now, "last_updated": now, "workspace_id": ws}
    programs = {p.pk: p for p in Program.objects.filter(pk__in={pid for _, pid in plan.enrollments_new})}
    with transaction.atomic():
        with RowStream() as stream:
            if stream.streaming:
                # Foreign keys checked as each COPY ends, on the stream's thread while the next rows are
                # formatted, instead of all of them at commit with nothing else to do (rows go parents first).
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for model, count in (
                (Contact, len(plan.contacts_new)),
                (Site, len(plan.sites_new)),
                (Device, len(plan.devices_new)),
                (Enrollment, len(plan.enrollments_new)),
            ):
                stream.reserve(model, count)
            site_ids, device_ids = _insert_new(
                plan,
                stream,
                stamp=stamp,
                programs=programs,
                history={"actor_id": actor_id, "source": source, "reason": label},
                advance=advance,
            )
            stream.drain()
            if stream.streaming:
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default, for the rest of the job

        # updates of existing rows (after the new ones: a device may move to a new site)
        _bulk_update(Contact, plan.contacts_changed, now)
        _bulk_update(Site, plan.sites_changed, now)
        # A device never changes owner here (the planner refuses that), so a move is only a new site.
        device_changes = {}
        for device_id, diff in plan.devices_changed.items():
            resolved = dict(diff)
            if "site" in resolved:
                old, new = resolved.pop("site")
                resolved["site_id"] = (old, new if isinstance(new, int) else site_ids[new])
            device_changes[device_id] = resolved
        _bulk_update(Device, device_changes, now)

        # audit: every updated record with its changes
        for model, changes, action in (
            (Contact, plan.contacts_changed, AuditAction.CONTACT_UPDATED),
            (Site, plan.sites_changed, AuditAction.SITE_UPDATED),
        ):
            if changes:
                audit_record_many(
                    actor=actor,
                    action=action,
                    targets=list(model.objects.filter(pk__in=list(changes))),
                    source=source,
                    changes_by_pk={pk: {f: list(v) for f, v in diff.items()} for pk, diff in changes.items()},
                    reason=label,
                )
        device_audit = {pk: {f: list(v) for f, v in diff.items()} for pk, diff in device_changes.items()}
        for key, tags in plan.tags.items():
            if key in plan.device_ids:
                device_audit.setdefault(plan.device_ids[key], {})["tags"] = [
                    list(plan.tags_before.get(key, ())),
                    list(tags),
                ]
        if device_audit:
            audit_record_many(
                actor=actor,
                action=AuditAction.DEVICE_UPDATED,
                targets=list(Device.objects.filter(pk__in=list(device_audit)).select_related("manufacturer")),
                source=source,
                changes_by_pk=device_audit,
                reason=label,
            )

        # events of the updated records
        outbox = Outbox(now)
        tag = f"import-{now.timestamp():.6f}"
        updated = (
            (Contact, plan.contacts_changed, FleetEventType.CUSTOMER_UPDATED, contact_data),
            (Site, plan.sites_changed, FleetEventType.SITE_UPDATED, site_data),
            (Device, device_audit, FleetEventType.DEVICE_UPDATED, device_updated_data),
        )
        for model, changes, type_, builder in updated:
            if changes:
                queryset = model.objects.filter(pk__in=list(changes))
                if model is Device:
                    queryset = queryset.select_related("manufacturer", "latest_telemetry")
                for obj in queryset:
                    outbox.add(ws, type_, f"{type_}:{obj.pk}:{tag}", builder(obj))
        outbox.flush()

    if progress:
        progress(total, total)
    return counts


def _insert_new(plan: FleetImportPlan, stream: RowStream, *, stamp: dict, programs: dict, history: dict, advance):
    """Stream the plan's new contacts, sites, devices (with their first state-history row), tags and
    enrollments, each announced by its events. Returns the site and device ids by natural key."""
    ws, now = stamp["workspace_id"], stamp["created"]
    # Events go out batch by batch with the rows they announce, so no batch is held longer than needed.
    outbox = Outbox(now, stream)

    contact_ids = dict(plan.contact_ids)
    for batch in chunked(plan.contacts_new.values(), STREAM_BATCH):
        rows = [{**stamp, **fields} for fields in batch]
        for row, pk in zip(rows, stream.insert(Contact, rows), strict=True):
            contact_ids[row["reference_id"]] = pk
            data = contact_data(SimpleNamespace(pk=pk, **row))
            outbox.add(ws, FleetEventType.CUSTOMER_CREATED, f"customer.created:{pk}", data)
        advance(len(rows))

    site_ids = dict(plan.site_ids)
    for batch in chunked(plan.sites_new.items(), STREAM_BATCH):
        rows = []
        for _, fields in batch:
            fields = dict(fields)
            rows.append({**stamp, "contact_id": contact_ids[fields.pop("contact_ref")], **fields})
        for (key, _), row, pk in zip(batch, rows, stream.insert(Site, rows), strict=True):
            site_ids[key] = pk
            data = site_data(SimpleNamespace(pk=pk, **{"latitude": None, "longitude": None, **row}))
            outbox.add(ws, FleetEventType.SITE_CREATED, f"site.created:{pk}", data)
        advance(len(rows))

    device_ids = dict(plan.device_ids)
    for batch in chunked(plan.devices_new.items(), STREAM_BATCH):
        rows = [
            {
                **stamp,
                "contact_id": contact_ids[spec["contact_ref"]],
                "site_id": site_ids[spec["site_key"]],
                "manufacturer_id": key[0],
                "system_identifier": key[1],
                "device_type": spec["device_type"],
                "state": DeviceState.REGISTERED,
                "state_changed_at": now,
                "state_reason": history["reason"],
            }
            for key, spec in batch
        ]
        pks = stream.insert(Device, rows)
        for (key, _), pk in zip(batch, pks, strict=True):
            device_ids[key] = pk
        stream.insert(
            DeviceStateChange,
            [
                {
                    **stamp,
                    **history,
                    "device_id": pk,
                    "from_state": "",
                    "to_state": DeviceState.REGISTERED,
                    "changed_at": now,
                }
                for pk in pks
            ],
            ids=False,
        )
        advance(len(batch))

    # tags: the exact set the file gives, for new devices and those whose tags changed
    if plan.tags:
        names = sorted({name for tags in plan.tags.values() for name in tags})
        DeviceTag.objects.bulk_create(
            [DeviceTag(workspace_id=ws, name=name, created=now) for name in names],
            ignore_conflicts=True,
            batch_size=BATCH,
        )
        tag_ids = {}
        for chunk in chunked(names):
            tag_ids |= dict(DeviceTag.objects.filter(workspace_id=ws, name__in=chunk).values_list("name", "pk"))
        through = Device.tags.through
        retagged = [device_ids[key] for key in plan.tags if key in plan.device_ids]
        for chunk in chunked(retagged, CHUNK):
            through.objects.filter(device_id__in=chunk).delete()  # before the new set is queued below
        for batch in chunked(plan.tags.items(), STREAM_BATCH):
            stream.insert(
                through,
                [{"device_id": device_ids[key], "devicetag_id": tag_ids[name]} for key, tags in batch for name in tags],
                ids=False,
            )

    # enrollments: approved at once when the program approves automatically
    for batch in chunked(plan.enrollments_new, STREAM_BATCH):
        rows = []
        for device_key, program_id in batch:
            automatic = programs[program_id].enrollment_approval == EnrollmentApproval.AUTOMATIC
            rows.append(
                {
                    **stamp,
                    "device_id": device_ids[device_key],
                    "program_id": program_id,
                    "status": EnrollmentStatus.APPROVED if automatic else EnrollmentStatus.SUBMITTED,
                    "submitted_at": now,
                    "decided_at": now if automatic else None,
                    "reason": "Automatic approval" if automatic else "",
                    "source": history["source"],
                }
            )
        for row, pk in zip(rows, stream.insert(Enrollment, rows), strict=True):
            data = enrollment_data(SimpleNamespace(pk=pk, program=programs[row["program_id"]], **row))
            outbox.add(ws, EnrollmentEventType.ENROLLMENT_SUBMITTED, f"enrollment.submitted:{pk}", data)
            if row["status"] == EnrollmentStatus.APPROVED:
                outbox.add(ws, EnrollmentEventType.ENROLLMENT_APPROVED, f"enrollment.approved:{pk}", data)
        advance(len(rows))
    outbox.flush()
    return site_ids, device_ids


class Outbox:
    """Platform events written in batches as they are made, so a 100k-row import never holds them all."""

    def __init__(self, now, stream: RowStream | None = None, batch: int = STREAM_BATCH):
        self.now, self.stream, self.batch, self.rows = now, stream, batch, []
        self.announced: set[tuple] = set()  # one fan-out per batch, not one per flush

    def add(self, workspace_id: int, type_: str, key: str, data: dict) -> None:
        self.rows.append(
            {"workspace_id": workspace_id, "type": type_, "version": 1, "key": key, "data": data, "timestamp": self.now}
        )
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            for workspace_id, timestamp in event_emit_many(events=self.rows, stream=self.stream, announce=False):
                if (workspace_id, timestamp) not in self.announced:
                    self.announced.add((workspace_id, timestamp))
                    event_batch_written(workspace_id, timestamp)
        self.rows = []
