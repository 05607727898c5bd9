"""Writes of the fleet: contacts, sites, devices and device state. Every one is atomic and audited."""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from fleet.choices import DEVICE_STATE_TRANSITIONS, DeviceState
from fleet.models import Contact, Device, DeviceStateChange, DeviceTag, Site
from integrations import events
from integrations.choices import PlatformEventType
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.model_update import model_update
from texture_portal.tenancy import require_same_workspace

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
    events.event_emit(
        workspace_id=contact.workspace_id,
        type=PlatformEventType.CUSTOMER_CREATED,
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
        events.event_emit(
            workspace_id=contact.workspace_id,
            type=PlatformEventType.CUSTOMER_UPDATED,
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
    events.event_emit(
        workspace_id=site.workspace_id,
        type=PlatformEventType.SITE_CREATED,
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
        events.event_emit(
            workspace_id=site.workspace_id,
            type=PlatformEventType.SITE_UPDATED,
            key=f"site.updated:{site.pk}:{entry.pk}",
            data=events.site_data(site),
        )
    return changes


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
        events.event_emit(
            workspace_id=device.workspace_id,
            type=PlatformEventType.DEVICE_UPDATED,
            key=f"device.updated:{device.pk}:{entry.pk}",
            data=events.device_data(device),
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
    event_type = events.STATE_EVENT.get((from_state, str(to_state)), PlatformEventType.DEVICE_UPDATED)
    events.event_emit(
        workspace_id=locked.workspace_id,
        type=event_type,
        key=f"{event_type}:{locked.pk}:{change.pk}",
        data=events.device_data(locked),
        timestamp=at,
    )
    return change


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
