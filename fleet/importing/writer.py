"""Applying a plan: one transaction, bulk statements per model (never a query per row), the devices'
first state-history rows, audit rows for every updated record and one for the import, and the platform
events integrators receive."""

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.importing.planner import CHUNK, FleetImportPlan, chunked
from fleet.models import Contact, Device, DeviceStateChange, DeviceTag, Site
from integrations import events
from integrations.choices import PlatformEventType
from integrations.models import PlatformEvent
from programs.choices import EnrollmentApproval, EnrollmentStatus
from programs.models import Enrollment, Program
from texture_portal.audit import audit_record_many
from texture_portal.choices import AuditAction, AuditSource

BATCH = 2000


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
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    steps = [len(plan.contacts_new), len(plan.sites_new), len(plan.devices_new), len(plan.enrollments_new)]
    total, done = max(sum(steps), 1), 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(min(done, total), total)

    with transaction.atomic():
        new_events: list[PlatformEvent] = []

        # contacts
        contacts = [Contact(workspace_id=workspace.pk, created=now, **fields) for fields in plan.contacts_new.values()]
        for batch in chunked(contacts, BATCH):
            Contact.objects.bulk_create(batch)
            advance(len(batch))
        contact_ids = plan.contact_ids | {c.reference_id: c.pk for c in contacts}
        _bulk_update(Contact, plan.contacts_changed, now)

        # sites
        sites = []
        for key, fields in plan.sites_new.items():
            fields = dict(fields)
            ref = fields.pop("contact_ref")
            sites.append((key, Site(workspace_id=workspace.pk, contact_id=contact_ids[ref], created=now, **fields)))
        for batch in chunked(sites, BATCH):
            Site.objects.bulk_create([site for _, site in batch])
            advance(len(batch))
        site_ids = plan.site_ids | {key: site.pk for key, site in sites}
        _bulk_update(Site, plan.sites_changed, now)

        # devices, with their first state-history row
        devices = []
        for key, spec in plan.devices_new.items():
            devices.append(
                (
                    key,
                    Device(
                        workspace_id=workspace.pk,
                        contact_id=contact_ids[spec["contact_ref"]],
                        site_id=site_ids[spec["site_key"]],
                        manufacturer_id=key[0],
                        system_identifier=key[1],
                        device_type=spec["device_type"],
                        state=DeviceState.REGISTERED,
                        state_changed_at=now,
                        state_reason=label,
                        created=now,
                    ),
                )
            )
        for batch in chunked(devices, BATCH):
            Device.objects.bulk_create([device for _, device in batch])
            DeviceStateChange.objects.bulk_create(
                [
                    DeviceStateChange(
                        workspace_id=workspace.pk,
                        device_id=device.pk,
                        from_state="",
                        to_state=DeviceState.REGISTERED,
                        changed_at=now,
                        reason=label,
                        actor_id=actor_id,
                        source=source,
                    )
                    for _, device in batch
                ]
            )
            advance(len(batch))
        device_ids = plan.device_ids | {key: device.pk for key, device in devices}
        # A device never changes owner here (the planner refuses that), so a move is only a new site.
        device_changes = {}
        for device_id, diff in plan.devices_changed.items():
            resolved = dict(diff)
            if "site" in resolved:
                old, new = resolved.pop("site")
                resolved["site_id"] = (old, new if isinstance(new, int) else site_ids[new])
            device_changes[device_id] = resolved
        _bulk_update(Device, device_changes, now)

        # tags: the exact set the file gives, for new devices and those whose tags changed
        if plan.tags:
            names = sorted({name for tags in plan.tags.values() for name in tags})
            DeviceTag.objects.bulk_create(
                [DeviceTag(workspace_id=workspace.pk, name=name, created=now) for name in names],
                ignore_conflicts=True,
                batch_size=BATCH,
            )
            tag_ids = {}
            for chunk in chunked(names):
                tag_ids |= dict(DeviceTag.objects.filter(workspace=workspace, name__in=chunk).values_list("name", "pk"))
            through = Device.tags.through
            retagged = [device_ids[key] for key in plan.tags if key in plan.device_ids]
            for chunk in chunked(retagged, CHUNK):
                through.objects.filter(device_id__in=chunk).delete()
            links = [
                through(device_id=device_ids[key], devicetag_id=tag_ids[name])
                for key, tags in plan.tags.items()
                for name in tags
            ]
            through.objects.bulk_create(links, batch_size=BATCH)

        # enrollments: approved at once when the program approves automatically
        programs = {p.pk: p for p in Program.objects.filter(pk__in={pid for _, pid in plan.enrollments_new})}
        enrollments = []
        for device_key, program_id in plan.enrollments_new:
            automatic = programs[program_id].enrollment_approval == EnrollmentApproval.AUTOMATIC
            enrollment = Enrollment(
                workspace_id=workspace.pk,
                device_id=device_ids[device_key],
                program_id=program_id,
                status=EnrollmentStatus.APPROVED if automatic else EnrollmentStatus.SUBMITTED,
                submitted_at=now,
                decided_at=now if automatic else None,
                reason="Automatic approval" if automatic else "",
                source=source,
                created=now,
            )
            enrollment.program = programs[program_id]
            enrollments.append(enrollment)
        for batch in chunked(enrollments, BATCH):
            Enrollment.objects.bulk_create(batch)
            advance(len(batch))

        # audit: every updated record with its changes (creations are summed up on the import's own row)
        for model, changes, action in (
            (Contact, plan.contacts_changed, AuditAction.CONTACT_UPDATED),
            (Site, plan.sites_changed, AuditAction.SITE_UPDATED),
        ):
            if changes:
                targets = list(model.objects.filter(pk__in=list(changes)))
                audit_record_many(
                    actor=actor,
                    action=action,
                    targets=targets,
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
            targets = list(Device.objects.filter(pk__in=list(device_audit)).select_related("manufacturer"))
            audit_record_many(
                actor=actor,
                action=AuditAction.DEVICE_UPDATED,
                targets=targets,
                source=source,
                changes_by_pk=device_audit,
                reason=label,
            )

        # platform events (the outbox)
        stamp = f"{now.timestamp():.6f}"
        for contact in contacts:
            new_events.append(
                _event(
                    workspace,
                    PlatformEventType.CUSTOMER_CREATED,
                    f"customer.created:{contact.pk}",
                    events.contact_data(contact),
                    now,
                )
            )
        for _, site in sites:
            new_events.append(
                _event(
                    workspace, PlatformEventType.SITE_CREATED, f"site.created:{site.pk}", events.site_data(site), now
                )
            )
        for enrollment in enrollments:
            data = events.enrollment_data(enrollment)
            new_events.append(
                _event(
                    workspace,
                    PlatformEventType.ENROLLMENT_SUBMITTED,
                    f"enrollment.submitted:{enrollment.pk}",
                    data,
                    now,
                )
            )
            if enrollment.status == EnrollmentStatus.APPROVED:
                new_events.append(
                    _event(
                        workspace,
                        PlatformEventType.ENROLLMENT_APPROVED,
                        f"enrollment.approved:{enrollment.pk}",
                        data,
                        now,
                    )
                )
        if plan.contacts_changed:
            for contact in Contact.objects.filter(pk__in=list(plan.contacts_changed)):
                new_events.append(
                    _event(
                        workspace,
                        PlatformEventType.CUSTOMER_UPDATED,
                        f"customer.updated:{contact.pk}:import-{stamp}",
                        events.contact_data(contact),
                        now,
                    )
                )
        if plan.sites_changed:
            for site in Site.objects.filter(pk__in=list(plan.sites_changed)):
                new_events.append(
                    _event(
                        workspace,
                        PlatformEventType.SITE_UPDATED,
                        f"site.updated:{site.pk}:import-{stamp}",
                        events.site_data(site),
                        now,
                    )
                )
        if device_audit:
            for device in Device.objects.filter(pk__in=list(device_audit)).select_related("manufacturer"):
                new_events.append(
                    _event(
                        workspace,
                        PlatformEventType.DEVICE_UPDATED,
                        f"device.updated:{device.pk}:import-{stamp}",
                        events.device_data(device),
                        now,
                    )
                )
        events.event_emit_many(events=new_events)

    counts = plan.counts()
    if progress:
        progress(total, total)
    return counts


def _event(workspace, type_, key, data, now) -> PlatformEvent:
    return PlatformEvent(workspace_id=workspace.pk, type=type_, key=key, data=data, timestamp=now)
