"""An event's timeline: a real test event run by the engine against the OEM simulator (scheduled → started →
each device's command roundtrip → restored → completed) reads in time order with its times, errors and
confirmations; it filters by outcome and device; and a page costs the same queries for 60 participants or
10,000."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dispatch import engine
from dispatch.choices import DispatchEventStatus, ParticipationStatus
from dispatch.models import DispatchEvent, Participation
from dispatch.services import dispatch_event_create, dispatch_event_schedule
from dispatch.timeline import event_timeline_page
from programs.services import enrollment_submit
from tests.dispatch.test_engine_run import mixed_fleet, sync  # noqa: F401 - fixture
from tests.factories import DeviceFactory, WorkspaceFactory, make_program, staff_user
from tests.integrations.conftest import sim  # noqa: F401 - fixture
from tests.integrations.test_services import make_device
from tests.ops_scene import PARTICIPATION_CYCLE, bulk_fleet, running_event
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


def item_times(page) -> list:
    return [obj.at for _kind, obj in page.items]


@pytest.fixture
def finished_event(sim, mixed_fleet, settings, django_capture_on_commit_callbacks):  # noqa: F811
    """The mixed fleet's test event run start to finish, with a fourth device whose OEM fails its command and a
    fifth that is not on the workspace (excluded)."""
    program, fleet, integrations = mixed_fleet
    workspace = program.workspace
    settings.DISPATCH_COMMAND_MAX_ATTEMPTS = 1  # the failing battery fails at its first 503
    sim.state.add_device("tesla", "TG100000000888", kind="battery", soc=70.0, reserve=30.0, solar_peak_w=0.0)
    failing = make_device(workspace, "tesla", "TG100000000888")
    never_found = DeviceFactory(site__contact__workspace=workspace, system_identifier="TG-NOT-FOUND-1")
    for device in (failing, never_found):
        enrollment_submit(device=device, program=program, actor=None)
    from integrations import services

    services.discovery_run(integration=integrations[0])
    sync(integrations)
    soon = timezone.now() + timedelta(minutes=2)
    event = dispatch_event_create(
        program=program,
        name="Evening peak test",
        starts_at=soon,
        ends_at=soon + timedelta(hours=1),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": soon, "ends_at": soon + timedelta(hours=1)}],
    )
    dispatch_event_schedule(event=event, actor=None)
    # the start comes
    start = timezone.now() - timedelta(seconds=30)
    DispatchEvent.objects.filter(pk=event.pk).update(starts_at=start, ends_at=start + timedelta(hours=1))
    event.actions.update(starts_at=start, ends_at=start + timedelta(hours=1))
    sim.state.inject("tesla", "TG100000000888", "server_error", status=503, times=5)
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    # five minutes on, for the OEM clouds (their clock is frozen) and the portal alike: one clock, so the order
    # the timeline shows is the order things happened in
    with time_machine.travel(sim.state.advance(300) + timedelta(seconds=5), tick=True):
        sync(integrations)
        with django_capture_on_commit_callbacks(execute=True):
            engine.dispatch_tick()  # their telemetry confirms them
    with time_machine.travel(sim.state.advance(600) + timedelta(seconds=5), tick=True):
        now = timezone.now()
        DispatchEvent.objects.filter(pk=event.pk).update(ends_at=now)
        event.actions.update(ends_at=now)
        for _ in range(2):  # the restores go out, then the event completes
            with django_capture_on_commit_callbacks(execute=True):
                engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == DispatchEventStatus.COMPLETED, event.status_reason
    return event, fleet, failing, never_found


def test_a_real_event_reads_in_time_order_from_scheduled_to_completed(client, finished_event):
    event, fleet, failing, never_found = finished_event
    client.force_login(staff_user("ops", event.workspace, Role.OPS))
    response = client.get(reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk]))
    assert response.status_code == 200
    page = response.context["page"]
    times = item_times(page)
    assert times == sorted(times)  # in time order

    titles = [obj.title for kind, obj in page.items if kind == "milestone" and obj.kind != "plan"]
    steps = ["Created", "Scheduled", "Started", "devices selected and commanded", "ended: restoring", "Completed"]
    positions = [next(i for i, t in enumerate(titles) if step in t) for step in steps]
    assert positions == sorted(positions), titles
    completed = next(obj for kind, obj in page.items if kind == "milestone" and obj.title == "Completed")
    assert "3 confirmed" in completed.detail and "3 restored" in completed.detail and "1 failed" in completed.detail

    # every device's roundtrip sits between the commanding and the restore (the action's own milestones)
    kinds = [(kind, getattr(obj, "kind", None)) for kind, obj in page.items]
    commanded_at = kinds.index(("milestone", "action"))
    restoring_at = kinds.index(("milestone", "restore"))
    devices = {obj.participation.device_id: (i, obj) for i, (kind, obj) in enumerate(page.items) if kind == "device"}
    assert set(devices) == {*(d.pk for d in fleet.values()), failing.pk, never_found.pk}
    for device in fleet.values():
        position, roundtrip = devices[device.pk]
        assert commanded_at < position < restoring_at
        assert roundtrip.participation.status == ParticipationStatus.RESTORED
        text = " | ".join(step for _at, step, _tone in roundtrip.steps)
        # included, the discharge command sent and accepted (with the OEM's reference), confirmed, its restore
        # sent and accepted, restored: in that order
        order = ["included", "discharge —", "sent", "accepted", "confirmed by its telemetry", "restore —", "restored"]
        found = [text.index(word) for word in order]
        assert found == sorted(found), text
        assert [at for at, _s, _t in roundtrip.steps] == sorted(at for at, _s, _t in roundtrip.steps)

    _position, failed = devices[failing.pk]
    assert failed.participation.status == ParticipationStatus.FAILED
    assert any("failed" in step and "503" in step for _at, step, tone in failed.steps if tone == "bad"), failed.steps
    _position, excluded = devices[never_found.pk]
    assert excluded.participation.status == ParticipationStatus.EXCLUDED
    assert any("not on the workspace" in step for _at, step, _tone in excluded.steps), excluded.steps

    html = response.content.decode()
    assert 'id="progress-chart"' in html and "chart.umd.min.js" in html
    assert response.context["chart_data"]["series"]["restored"][-1] == 3
    assert response.context["counts"]["confirmed"] == 3
    # linked from the event's page and to each device's own timeline
    change = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    assert reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk]) in change
    assert reverse("admin:fleet_device_timeline", args=[failing.pk]) in html


def test_the_timeline_filters_by_outcome_and_device(client, finished_event):
    event, fleet, failing, never_found = finished_event
    client.force_login(staff_user("ops", event.workspace, Role.OPS))
    url = reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk])

    def devices(params):
        response = client.get(url, params)
        assert response.status_code == 200
        return [obj.participation.device_id for kind, obj in response.context["page"].items if kind == "device"]

    assert devices({"outcome": "failed"}) == [failing.pk]
    assert devices({"outcome": "excluded"}) == [never_found.pk]
    assert sorted(devices({"outcome": "confirmed"})) == sorted(d.pk for d in fleet.values())
    assert devices({"device": failing.pk}) == [failing.pk]
    assert devices({"q": "TG-NOT"}) == [never_found.pk]
    assert devices({"outcome": "opted_out"}) == []


def test_a_bad_filter_is_a_400_that_says_what_is_wrong(client, finished_event):
    event, *_ = finished_event
    client.force_login(staff_user("ops", event.workspace, Role.OPS))
    url = reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk])
    response = client.get(url, {"outcome": "exploded", "page": "zero"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="timeline-errors"' in html and "outcome" in html and "page" in html


def test_another_workspaces_event_timeline_is_not_found(client):
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    fleet = bulk_fleet(workspace, 8)
    event = running_event(program, fleet.devices, now=timezone.now())
    client.force_login(staff_user("ops-elsewhere", WorkspaceFactory(), Role.OPS))
    assert client.get(reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk])).status_code == 404
    assert client.get(f"/admin/dispatch/dispatchevent/{2**70}/timeline/").status_code == 404


def test_a_page_costs_the_same_queries_for_60_participants_or_10000(client):
    counts, pages = [], []
    for size, prefix in ((60, "S"), (10_000, "L")):
        workspace = WorkspaceFactory()
        program = make_program(workspace, slug=f"vpp-{prefix.lower()}")
        fleet = bulk_fleet(workspace, size, prefix=prefix)
        event = running_event(program, fleet.devices, now=timezone.now())
        client.force_login(staff_user(f"ops-{prefix}", workspace, Role.OPS))
        url = reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk])
        client.get(url)  # warm
        for params in ({}, {"page": 2}, {"outcome": "confirmed", "page": 1}):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url, params)
            assert response.status_code == 200
            counts.append((params.get("page", 1), params.get("outcome"), len(queries)))
        pages.append(response.context["page"])
        last = client.get(url, {"page": 10_000 // 50})
        assert last.status_code == 200 and last.context["page"].number == min(200, -(-size // 50))
    small, large = counts[:3], counts[3:]
    assert [n for *_k, n in small] == [n for *_k, n in large], counts
    assert pages[1].count == 10_000 * 2 // len(PARTICIPATION_CYCLE)  # confirmed: 2 of every 8


def test_milestones_are_spread_over_the_pages_by_time(client):
    """Each milestone is on the page whose devices began around it, and no milestone is shown twice or lost."""
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    fleet = bulk_fleet(workspace, 130)
    event = running_event(program, fleet.devices, now=timezone.now())
    seen, previous_last = [], None
    for number in (1, 2, 3):
        page = event_timeline_page(event=event, page=number, per_page=50)
        times = item_times(page)
        assert times == sorted(times)
        if previous_last is not None:
            assert times[0] >= previous_last  # the pages continue each other in time
        previous_last = times[-1]
        seen += [obj for kind, obj in page.items if kind == "milestone"]
    kinds = sorted(m.kind for m in seen)
    assert kinds == sorted(["plan", "plan", "created", "status", "status", "action"]), kinds
    assert Participation.objects.filter(event=event).count() == 130


def test_the_event_pages_participation_figures_are_the_counts_of_the_lists_they_link_to(client):
    import re
    from html import unescape
    from urllib.parse import urlsplit

    from django.http import QueryDict

    workspace = WorkspaceFactory()
    program = make_program(workspace)
    fleet = bulk_fleet(workspace, 48)
    event = running_event(program, fleet.devices, now=timezone.now())
    client.force_login(staff_user("ops", workspace, Role.OPS))
    html = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    figures = re.findall(r'<a class="participation-figure" href="([^"]+)">([^<:]+): (\d+)</a>', html)
    assert len(figures) >= 9
    for href, label, shown in figures:
        url = urlsplit(unescape(href))
        response = client.get(url.path, dict(QueryDict(url.query).lists()))
        assert response.status_code == 200
        assert response.context["cl"].result_count == int(shown), (label, href)
    assert reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk]) in html


def test_an_event_not_started_yet_shows_its_plan_and_no_devices(client):
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    starts = timezone.now() + timedelta(hours=3)
    event = dispatch_event_create(
        program=program,
        name="Tomorrow's peak",
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": starts, "ends_at": starts + timedelta(hours=1)}],
    )
    dispatch_event_schedule(event=event, actor=None)
    client.force_login(staff_user("lead", workspace, Role.PROGRAM_LEAD))
    response = client.get(reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="no-participation"' in html and 'id="progress-chart"' not in html
    titles = [obj.title for kind, obj in response.context["page"].items]
    assert titles == ["Created", "Scheduled", "Window opens", "Window closes"]
