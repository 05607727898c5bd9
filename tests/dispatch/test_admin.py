"""Dispatch admin: an event's live counts and links, the participation list and its opt-out action (Ops, with
a reason), and a device's events and commands on its page."""

import pytest
from django.urls import reverse

from dispatch import engine
from dispatch.models import Command, Participation
from integrations.models import WorkspaceIntegration
from tests.dispatch.test_engine import live_device, running_event
from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(client):
    workspace = WorkspaceFactory()
    staff_user("ops", workspace, Role.OPS)
    staff_user("support", workspace, Role.CUSTOMER_SUPPORT)
    program = make_program(workspace)
    WorkspaceIntegration.objects.create(workspace=workspace, channel="tesla", enabled=True, credentials={})
    devices = [live_device(program) for _ in range(2)]
    stormy = live_device(program, is_storm_mode_active=True)
    event = running_event(program)
    engine.dispatch_tick()
    return event, devices, stormy


def test_the_event_page_shows_live_counts_with_links_to_who_and_why(client, scene):
    event, devices, stormy = scene
    assert client.login(username="ops", password=PASSWORD)
    page = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Targeted: 3</a>" in html and "Excluded: 1</a>" in html and "— Storm Guard active: 1</a>" in html
    assert f"event__id__exact={event.pk}&amp;reason_code__exact=storm_guard" in html
    listing = client.get(
        reverse("admin:dispatch_participation_changelist"), {"event__id__exact": event.pk, "status__exact": "excluded"}
    )
    assert listing.status_code == 200
    assert stormy.system_identifier in listing.content.decode()
    assert devices[0].system_identifier not in listing.content.decode()


def test_ops_opt_a_device_out_with_a_reason_and_support_cannot(client, scene):
    event, devices, _ = scene
    url = reverse("admin:dispatch_participation_changelist")
    row = Participation.objects.get(event=event, device=devices[0])
    assert client.login(username="support", password=PASSWORD)
    client.post(url, {"action": "opt_out", "_selected_action": [row.pk], "reason": "Customer called"})
    row.refresh_from_db()
    assert row.status == "included"  # Customer Support only reads
    client.logout()
    assert client.login(username="ops", password=PASSWORD)
    refused = client.post(url, {"action": "opt_out", "_selected_action": [row.pk], "reason": ""}, follow=True)
    assert any("Give a reason" in str(m) for m in refused.context["messages"])
    client.post(url, {"action": "opt_out", "_selected_action": [row.pk], "reason": "Customer called"})
    row.refresh_from_db()
    assert row.status == "opted_out" and row.reason == "Customer called" and row.opted_out_by.username == "ops"
    # nothing of a participation is edited by hand
    change = client.post(reverse("admin:dispatch_participation_change", args=[row.pk]), {"status": "confirmed"})
    row.refresh_from_db()
    assert row.status == "opted_out" and change.status_code in (200, 302)


def test_a_device_page_lists_its_events_and_commands(client, scene):
    event, devices, _ = scene
    assert client.login(username="ops", password=PASSWORD)
    page = client.get(reverse("admin:fleet_device_change", args=[devices[0].pk]))
    assert page.status_code == 200
    html = page.content.decode()
    command = Command.objects.get(device=devices[0])
    assert event.name in html and "Included" in html
    assert command.slug in html and "Event action" in html


def test_schedule_shows_who_the_event_would_take_before_confirming_and_cancel_asks_why(client):
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.services import dispatch_event_create

    workspace = WorkspaceFactory()
    staff_user("ops", workspace, Role.OPS)
    staff_user("support", workspace, Role.CUSTOMER_SUPPORT)
    program = make_program(workspace)
    WorkspaceIntegration.objects.create(workspace=workspace, channel="tesla", enabled=True, credentials={})
    live_device(program), live_device(program), live_device(program, charge_percentage=10.0)
    start = timezone.now() + timedelta(hours=2)
    event = dispatch_event_create(
        program=program,
        name="Tomorrow's peak",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)}],
    )
    url = reverse("admin:dispatch_dispatchevent_schedule", args=[event.pk])
    assert client.login(username="support", password=PASSWORD)
    assert client.get(url).status_code == 403
    client.logout()
    assert client.login(username="ops", password=PASSWORD)
    change = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    assert url in change  # the button
    preview = client.get(url).content.decode()
    assert "3 devices targeted" in preview and "<td>2</td>" in preview
    assert "State of charge outside the strategy&#x27;s range: 1" in preview
    event.refresh_from_db()
    assert event.status == "draft"  # looking changes nothing
    client.post(url)
    event.refresh_from_db()
    assert event.status == "scheduled"
    cancel = reverse("admin:dispatch_dispatchevent_cancel", args=[event.pk])
    assert 'name="reason"' in client.get(cancel).content.decode()
    client.post(cancel, {"reason": ""})
    event.refresh_from_db()
    assert event.status == "scheduled"  # a reason is needed
    client.post(cancel, {"reason": "Feeder work"})
    event.refresh_from_db()
    assert (event.status, event.status_reason) == ("cancelled", "Feeder work")
