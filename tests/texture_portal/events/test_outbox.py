"""Platform events are recorded with the change that caused them (outbox), once per key, never on rollback."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from dispatch.services import dispatch_event_cancel, dispatch_event_create
from fleet.services import contact_create, contact_update, device_mark_offline, device_mark_on_workspace
from programs.services import enrollment_submit
from tests.factories import DeviceFactory, WorkspaceFactory, make_program
from texture_portal.events.models import PlatformEvent
from texture_portal.events.services import event_emit

pytestmark = pytest.mark.django_db


def types(workspace):
    return list(PlatformEvent.objects.filter(workspace=workspace).order_by("id").values_list("type", flat=True))


def test_device_lifecycle_emits_discovered_disconnected_connected():
    device = DeviceFactory()
    device_mark_on_workspace(device=device, reason="found")
    device_mark_offline(device=device, reason="silent")
    device_mark_on_workspace(device=device, reason="back")
    # (with the offline rule's alert, raised and resolved: fleet/services.py)
    assert types(device.workspace) == [
        "device.discovered",
        "device.disconnected",
        "alert.created",
        "device.connected",
        "alert.updated",
    ]
    event = PlatformEvent.objects.filter(type="device.disconnected").get()
    envelope = event.envelope()
    assert set(envelope) == {"type", "version", "key", "timestamp", "data"}
    assert envelope["data"]["systemIdentifier"] == device.system_identifier
    assert envelope["data"]["state"] == "offline" and envelope["timestamp"].endswith("Z")


def test_customer_events_and_enrollment_events():
    workspace = WorkspaceFactory()
    contact = contact_create(workspace=workspace, actor=None, reference_id="R-1", first_name="A", last_name="B")
    contact_update(contact=contact, data={"email": "a@b.org"}, actor=None)
    device = DeviceFactory(site__contact=contact)
    enrollment_submit(device=device, program=make_program(workspace), actor=None)
    assert types(workspace) == ["customer.created", "customer.updated", "enrollment.submitted", "enrollment.approved"]
    updated = PlatformEvent.objects.get(type="customer.updated")
    assert updated.data["email"] == "a@b.org" and updated.data["referenceId"] == "R-1"


def test_program_event_cancellation_is_announced():
    program = make_program(WorkspaceFactory())
    start = timezone.now() + timedelta(hours=1)
    event = dispatch_event_create(
        program=program, name="Peak", starts_at=start, ends_at=start + timedelta(hours=1), actor=None
    )
    dispatch_event_cancel(event=event, actor=None, reason="weather")
    assert types(program.workspace) == ["program_event.cancelled"]


def test_a_rolled_back_change_announces_nothing():
    device = DeviceFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        device_mark_on_workspace(device=device, reason="found")
        raise RuntimeError("the surrounding work failed")
    assert types(device.workspace) == []


def test_the_same_key_is_recorded_once():
    workspace = WorkspaceFactory()
    for _ in range(3):
        event_emit(workspace_id=workspace.pk, type="device.updated", key="device.updated:1:abc", data={"n": 1})
    assert PlatformEvent.objects.filter(workspace=workspace).count() == 1
