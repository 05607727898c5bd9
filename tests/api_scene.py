"""One workspace's worth of every API-visible object, built through the services."""

from dataclasses import dataclass
from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from dispatch.services import command_create, dispatch_event_create
from fleet.services import device_tags_get_or_create
from programs.models import Enrollment
from programs.services import enrollment_submit, event_strategy_create_version
from tests.factories import DeviceFactory, TelemetryReadingFactory, make_program
from texture_portal.events.models import PlatformEvent
from texture_portal.events.services import destination_create


@dataclass
class Scene:
    workspace: object
    contact: object
    site: object
    device: object
    program: object
    strategy: object
    enrollment: object
    dispatch_event: object
    command: object
    destination: object
    event: object
    reading: object


def build_scene(workspace, *, tag="feeder:1", serial_prefix="SN") -> Scene:
    device = DeviceFactory(site__contact__workspace=workspace, system_identifier=f"{serial_prefix}-0001")
    device.tags.set(device_tags_get_or_create(workspace=workspace, names=[tag]))
    program = make_program(workspace, slug=f"{serial_prefix.lower()}-vpp")
    strategy = event_strategy_create_version(
        program=program,
        actor=None,
        data={"allowed_event_types": ["charge", "discharge"], "max_event_duration_minutes": 240},
    )
    enrollment = enrollment_submit(device=device, program=program, actor=None)
    start = timezone.now() + timedelta(days=1)
    dispatch_event = dispatch_event_create(
        program=program,
        name="Peak shave",
        starts_at=start,
        ends_at=start + timedelta(hours=2),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)}],
    )
    command = command_create(
        device=device,
        slug="battery:set-reserve",
        input={"chargePercentage": 30},
        idempotency_key=f"scene-{serial_prefix}",
        actor=None,
    )
    with override_settings(ALLOW_PRIVATE_WEBHOOK_URLS=True):  # never resolved: nothing commits in these tests
        destination = destination_create(workspace=workspace, label="Hook", url="http://127.0.0.1:9/hook", actor=None)
    reading = TelemetryReadingFactory(device=device)
    return Scene(
        workspace=workspace,
        contact=device.contact,
        site=device.site,
        device=device,
        program=program,
        strategy=strategy,
        enrollment=Enrollment.objects.get(pk=enrollment.pk),
        dispatch_event=dispatch_event,
        command=command,
        destination=destination,
        event=PlatformEvent.objects.filter(workspace=workspace).order_by("-id").first(),
        reading=reading,
    )
