"""Dispatch's section of the fleet's customer page (fleet.customer): the customer's devices in recent events (took
part, confirmed, opted out, excluded and why) and the events coming up in the programs they are enrolled in.
Registered in DispatchConfig.ready: the fleet knows nothing of dispatch."""

from django.db.models import Prefetch
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dispatch.choices import DispatchEventStatus, ParticipationStatus
from dispatch.models import DispatchEvent, Participation
from fleet.customer import CustomerSection, customer_section_register
from fleet.models import DeviceTag
from texture_portal.timezones import local_label, local_window_label

RECENT_PARTICIPATIONS = 25
UPCOMING_EVENTS = 5


def customer_events_section(request, page) -> dict | None:
    """Three queries whatever the number of devices or events: the devices' latest participations (with their
    events and programs), and the upcoming events of their programs (with their target tags)."""
    if not page.devices:
        return None
    workspace_id = page.contact.workspace_id
    participations = list(
        Participation.objects.filter(workspace_id=workspace_id, device_id__in=page.device_ids)
        .select_related("event__program", "device", "opted_out_by")
        .order_by("-event__starts_at", "-event_id", "device_id")[:RECENT_PARTICIPATIONS]
    )
    rows = []
    for participation in participations:
        event = participation.event
        rows.append(
            {
                "participation": participation,
                "event": event,
                "window": local_window_label(event.starts_at, event.ends_at, page.zone),
                "opted_out_at": local_label(participation.opted_out_at, page.zone),
            }
        )
    program_ids = sorted({e.program_id for story in page.stories for e in story.enrollments if e.status == "approved"})
    upcoming = []
    if program_ids:
        events = (
            DispatchEvent.objects.filter(
                workspace_id=workspace_id,
                program_id__in=program_ids,
                status__in=[DispatchEventStatus.SCHEDULED, DispatchEventStatus.IN_PROGRESS],
                ends_at__gte=timezone.now(),
            )
            .select_related("program")
            .prefetch_related(Prefetch("target_tags", queryset=DeviceTag.objects.only("pk", "name")))
            .order_by("starts_at", "pk")[:UPCOMING_EVENTS]
        )
        upcoming = [
            {
                "event": event,
                "window": local_window_label(event.starts_at, event.ends_at, page.zone),
                "tags": [tag.name for tag in event.target_tags.all()],
            }
            for event in events
        ]
    return {
        "rows": rows,
        "upcoming": upcoming,
        "opted_out": sum(1 for r in rows if r["participation"].status == ParticipationStatus.OPTED_OUT),
        "limit": RECENT_PARTICIPATIONS,
    }


def register() -> None:
    customer_section_register(
        CustomerSection(
            key="dispatch-events",
            title=_("Events and opt-outs"),
            template="admin/dispatch/customer_events.html",
            context=customer_events_section,
            order=20,
            permission="dispatch.view_participation",
        )
    )
