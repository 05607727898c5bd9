"""A fleet of any size for the Ops pages' tests, written with bulk_create (thousands of devices in a second):
devices across manufacturers and states, reporting at various ages, with states of charge in every band, and a
running event with participations at every step and failed commands.

Everything is deterministic: the i-th device's manufacturer, state, age of its last reading and SoC follow from
i, so a test can compute the expected figures independently of the code under test."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from dispatch.choices import (
    CommandPurpose,
    CommandSlug,
    CommandStatus,
    DispatchEventStatus,
    ExclusionReason,
    ParticipationStatus,
)
from dispatch.models import Command, DispatchAction, DispatchEvent, Participation
from dispatch.services import dispatch_event_create, dispatch_event_schedule, dispatch_event_set_status
from fleet.choices import DeviceState
from fleet.models import Contact, Device, Manufacturer, Site, TelemetryReading
from texture_portal.models import AuditLogEntry

MAKERS = [("tesla", "battery"), ("franklinwh", "battery"), ("enphase", "battery"), ("emporia", "charger")]
STATES = [DeviceState.ON_WORKSPACE] * 6 + [DeviceState.OFFLINE] * 3 + [DeviceState.REGISTERED]
# the age of the last reading (None: never reported)
AGES = [timedelta(minutes=5), timedelta(minutes=40), timedelta(hours=6), timedelta(days=3), None]
SOCS = [10.0, 35.0, 65.0, 90.0, None]


@dataclass
class BulkFleet:
    devices: list[Device]
    now: datetime


def bulk_fleet(workspace, n: int, *, now: datetime | None = None, prefix: str = "D") -> BulkFleet:
    """`n` devices of one contact and site in `workspace`. Device i: maker MAKERS[i % 4], state STATES[i % 10],
    last seen AGES[i % 5] ago (registered devices never), SoC SOCS[i % 5] in its latest reading (none for a
    device never seen), offline since (i % 7 + 1) hours before `now`."""
    now = now or timezone.now()
    makers = {slug: Manufacturer.objects.get(slug=slug) for slug, _kind in MAKERS}
    contact = Contact.objects.create(
        workspace=workspace, reference_id=f"BULK-{prefix}-{workspace.pk}", first_name="Bulk", last_name="Fleet"
    )
    site = Site.objects.create(
        workspace=workspace, contact=contact, street_one="1 Grid Way", city="Bend", state="OR", postal_code="97701"
    )
    devices = []
    for i in range(n):
        slug, kind = MAKERS[i % len(MAKERS)]
        state = STATES[i % len(STATES)]
        age = None if state == DeviceState.REGISTERED else AGES[i % len(AGES)]
        devices.append(
            Device(
                workspace=workspace,
                contact=contact,
                site=site,
                manufacturer=makers[slug],
                system_identifier=f"{prefix}{i:06d}",
                device_type=kind,
                state=state,
                state_changed_at=now - timedelta(hours=i % 7 + 1),
                state_reason="No telemetry within the cadence" if state == DeviceState.OFFLINE else "",
                last_seen_at=None if age is None else now - age,
            )
        )
    Device.objects.bulk_create(devices, batch_size=2000)
    readings = [
        TelemetryReading(
            workspace=workspace,
            device=device,
            measured_at=device.last_seen_at,
            charge_percentage=SOCS[i % len(SOCS)],
        )
        for i, device in enumerate(devices)
        if device.last_seen_at is not None
    ]
    TelemetryReading.objects.bulk_create(readings, batch_size=2000)
    for reading in readings:
        reading.device.latest_telemetry = reading
    Device.objects.bulk_update([r.device for r in readings], ["latest_telemetry"], batch_size=2000)
    return BulkFleet(devices=devices, now=now)


# the running event's participations: status, and which steps it reached (commanded, confirmed, restored)
PARTICIPATION_CYCLE = [
    (ParticipationStatus.CONFIRMED, True, True),
    (ParticipationStatus.CONFIRMED, True, True),
    (ParticipationStatus.COMMANDED, True, False),
    (ParticipationStatus.NOT_RESPONDING, True, False),
    (ParticipationStatus.FAILED, False, False),
    (ParticipationStatus.INCLUDED, False, False),
    (ParticipationStatus.EXCLUDED, False, False),
    (ParticipationStatus.OPTED_OUT, True, False),
]


REASONS = {
    ParticipationStatus.EXCLUDED: "No fresh telemetry: its last reading is 3 days old (fresh means within 30 min).",
    ParticipationStatus.NOT_RESPONDING: "Not responding — accepted by the OEM, still idle 10 minutes later.",
    ParticipationStatus.FAILED: "Command failed: OEM answered 503 three times",
    ParticipationStatus.OPTED_OUT: "Customer asked by phone",
}


def running_event(program, devices: list[Device], *, now: datetime, name: str = "Evening peak") -> DispatchEvent:
    """An event in progress for `program` (started 20 minutes before `now`, an hour long) whose participations
    cycle through PARTICIPATION_CYCLE, each commanded device with its action command (a failed participation's
    command failed)."""
    starts = now - timedelta(minutes=20)
    ahead = now + timedelta(days=1)  # created and scheduled for tomorrow, then moved to its real window
    event = dispatch_event_create(
        program=program,
        name=name,
        starts_at=ahead,
        ends_at=ahead + timedelta(hours=1),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": ahead, "ends_at": ahead + timedelta(hours=1)}],
    )
    dispatch_event_schedule(event=event, actor=None)
    DispatchEvent.objects.filter(pk=event.pk).update(starts_at=starts, ends_at=starts + timedelta(hours=1))
    DispatchAction.objects.filter(event=event).update(starts_at=starts, ends_at=starts + timedelta(hours=1))
    dispatch_event_set_status(event=event, status=DispatchEventStatus.IN_PROGRESS, reason="Started on time.")
    # the audit as it would read: created and scheduled the day before, started on time
    audit = AuditLogEntry.objects.filter(content_type__model="dispatchevent", object_id=str(event.pk))
    for at, entry in zip(
        (starts - timedelta(days=1), starts - timedelta(days=1, minutes=-2), starts + timedelta(seconds=5)),
        audit.order_by("event_time", "pk"),
        strict=True,
    ):
        AuditLogEntry.objects.filter(pk=entry.pk).update(event_time=at)
    event.refresh_from_db()
    action = DispatchAction.objects.get(event=event)
    DispatchAction.objects.filter(pk=action.pk).update(fanned_out_at=starts + timedelta(seconds=5))
    participations = []
    for i, device in enumerate(devices):
        status, commanded, confirmed = PARTICIPATION_CYCLE[i % len(PARTICIPATION_CYCLE)]
        included = status != ParticipationStatus.EXCLUDED
        participations.append(
            Participation(
                workspace_id=event.workspace_id,
                event=event,
                device=device,
                action=action,
                status=status,
                reason_code=ExclusionReason.STALE_TELEMETRY if status == ParticipationStatus.EXCLUDED else "",
                reason=REASONS.get(status, ""),
                included_at=starts + timedelta(seconds=5) if included else None,
                commanded_at=starts + timedelta(seconds=10 + i) if commanded else None,
                confirmed_at=starts + timedelta(minutes=5, seconds=i) if confirmed else None,
                opted_out_at=starts + timedelta(minutes=8) if status == ParticipationStatus.OPTED_OUT else None,
                created=starts + timedelta(seconds=5),
            )
        )
    Participation.objects.bulk_create(participations, batch_size=2000)
    # when each was last classified (bulk_create stamps them all with now)
    rows = Participation.objects.filter(event=event)
    rows.filter(status=ParticipationStatus.EXCLUDED).update(last_updated=starts + timedelta(seconds=5))
    rows.exclude(status=ParticipationStatus.EXCLUDED).update(last_updated=starts + timedelta(minutes=12))
    commands = []
    for i, p in enumerate(participations):
        if p.status in (ParticipationStatus.EXCLUDED,):
            continue
        failed = p.status == ParticipationStatus.FAILED
        pending = p.status == ParticipationStatus.INCLUDED
        sent = None if pending else starts + timedelta(seconds=8 + i)
        commands.append(
            Command(
                workspace_id=event.workspace_id,
                device_id=p.device_id,
                dispatch_event=event,
                action=action,
                participation=p,
                purpose=CommandPurpose.ACTION,
                slug=CommandSlug.BATTERY_SET_OPERATING_MODE,
                input={"operatingMode": "discharge", "minimumBatteryReserve": 20},
                status=CommandStatus.PENDING
                if pending
                else (CommandStatus.FAILED if failed else CommandStatus.SUCCESS),
                status_reason="OEM answered 503 three times" if failed else "",
                attempts=0 if pending else (3 if failed else 1),
                idempotency_key=f"scene:{event.pk}:{p.device_id}",
                not_before=starts + timedelta(minutes=30) if pending else starts,
                sent_at=sent,
                completed_at=None if pending else sent + timedelta(seconds=1),
                created=starts + timedelta(seconds=5),
            )
        )
    Command.objects.bulk_create(commands, batch_size=2000)
    return event
