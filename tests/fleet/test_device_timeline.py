"""A device's timeline: its state changes, commands, events and opt-outs, readings (one line per hour) and
whatever other apps register, merged newest first and paged by time — no entry lost or shown twice, even when
several share an instant — at a constant number of queries per page however long the device's history."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dispatch.engine import participation_opt_out
from dispatch.models import Command, Participation
from dispatch.services import command_create, command_set_status
from fleet import timeline
from fleet.models import DeviceStateChange, TelemetryReading
from fleet.services import device_mark_offline, device_mark_on_workspace
from fleet.timeline import DeviceTimelineSource, TimelineEntry, device_timeline_page, device_timeline_source_register
from tests.factories import DeviceFactory, WorkspaceFactory, make_program, staff_user
from tests.ops_scene import running_event
from texture_portal.choices import Role
from texture_portal.models import Workspace

pytestmark = pytest.mark.django_db


def add_readings(device, *, hours: int, every_minutes: int = 5, end=None):
    end = (end or timezone.now()).replace(second=0, microsecond=0)
    readings = [
        TelemetryReading(
            workspace_id=device.workspace_id,
            device=device,
            measured_at=end - timedelta(minutes=every_minutes * i),
            charge_percentage=80 - (i % 50),
            charge_rate_w=1500.0,
            grid_power_w=-900.0,
        )
        for i in range(hours * 60 // every_minutes)
    ]
    TelemetryReading.objects.bulk_create(readings, batch_size=2000)
    return readings


@pytest.fixture
def history():
    """A device with a day of readings, three state changes, a manual command that failed and one that
    succeeded, and an event it was commanded, confirmed in and then opted out of."""
    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace, system_identifier="TG-HISTORY-1")
    now = timezone.now()
    device_mark_on_workspace(device=device, reason="Found at Tesla", at=now - timedelta(hours=20))
    device_mark_offline(device=device, reason="No telemetry for 45 minutes", at=now - timedelta(hours=10))
    device_mark_on_workspace(device=device, reason="Reporting again", at=now - timedelta(hours=9))
    add_readings(device, hours=24)
    failed = command_create(
        device=device, slug="battery:set-reserve", input={"chargePercentage": 40}, idempotency_key="m1", actor=None
    )
    command_set_status(command=failed, status="sent")
    command_set_status(command=failed, status="failed", reason="OEM answered 503")
    ok = command_create(
        device=device, slug="battery:set-reserve", input={"chargePercentage": 30}, idempotency_key="m2", actor=None
    )
    command_set_status(command=ok, status="sent")
    command_set_status(command=ok, status="success", oem_reference="tsla-42")
    program = make_program(workspace)
    event = running_event(program, [device], now=now)  # the first of the cycle: commanded and confirmed
    lead = staff_user("lead", workspace, Role.PROGRAM_LEAD)
    participation_opt_out(
        participation=Participation.objects.get(event=event), reason="Customer asked by phone", actor=lead
    )
    return device, event, failed, ok


def all_entries(device, **kwargs) -> list[TimelineEntry]:
    return device_timeline_page(device=device, limit=200, **kwargs).entries


def test_the_timeline_merges_every_source_newest_first(history):
    device, event, failed, ok = history
    entries = all_entries(device)
    times = [e.at for e in entries]
    assert times == sorted(times, reverse=True)
    kinds = {e.kind for e in entries}
    assert kinds == {"state", "readings", "command", "event", "opt_out"}

    states = [e.title for e in entries if e.kind == "state"]
    assert states == [
        "Offline → Device on Workspace",
        "Device on Workspace → Offline",
        "Registered System → Device on Workspace",
    ]
    offline = next(e for e in entries if e.title == "Device on Workspace → Offline")
    assert "No telemetry for 45 minutes" in offline.detail and offline.tone == "bad"

    commands = {e.key: e for e in entries if e.kind == "command"}
    assert "OEM answered 503" in commands[f"command:{failed.pk}"].detail
    assert commands[f"command:{failed.pk}"].tone == "bad"
    assert "accepted" in commands[f"command:{ok.pk}"].detail and "tsla-42" in commands[f"command:{ok.pk}"].detail
    action = Command.objects.get(dispatch_event=event, purpose="action")
    assert event.name in commands[f"command:{action.pk}"].detail
    restore = Command.objects.get(dispatch_event=event, purpose="restore")  # the opt-out restores it alone
    assert f"command:{restore.pk}" in commands

    steps = [e.title for e in entries if e.kind in ("event", "opt_out")]
    assert f"Opted out of “{event.name}”" in steps
    assert f"Confirmed by its telemetry in “{event.name}”" in steps
    assert f"Included in “{event.name}”" in steps
    opt_out = next(e for e in entries if e.kind == "opt_out")
    assert "Customer asked by phone" in opt_out.detail and "lead" in opt_out.detail
    assert opt_out.link == reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk]) + f"?device={device.pk}"

    # readings: one line per hour, with how many and the SoC range
    hours = [e for e in entries if e.kind == "readings"]
    assert 24 <= len(hours) <= 25
    assert sum(int(e.title.split()[0]) for e in hours) == 24 * 12
    assert all("SoC" in e.detail and "kW" in e.detail for e in hours)


def test_paging_loses_nothing_and_repeats_nothing_even_at_one_instant(history):
    device, *_ = history
    # five things at exactly the same instant, from two sources
    instant = timezone.now() - timedelta(hours=5, seconds=7)
    for i in range(3):
        DeviceStateChange.objects.create(
            workspace_id=device.workspace_id,
            device=device,
            from_state="on_workspace",
            to_state="offline",
            changed_at=instant,
            reason=f"tie {i}",
            source="task",
        )
    for i in range(2):
        command = command_create(
            device=device,
            slug="battery:set-reserve",
            input={"chargePercentage": 50},
            idempotency_key=f"t{i}",
            actor=None,
        )
        Command.objects.filter(pk=command.pk).update(created=instant)
    everything = [e.key for e in all_entries(device)]
    assert len(everything) == len(set(everything))
    for per_page in (1, 2, 3, 7):
        seen, until, skip = [], None, 0
        while True:
            page = device_timeline_page(device=device, until=until, skip=skip, limit=per_page)
            seen += [e.key for e in page.entries]
            if page.next_until is None:
                break
            until, skip = page.next_until, page.next_skip
        assert seen == everything, per_page


def test_the_timeline_shows_only_the_chosen_sources(history):
    device, *_ = history
    assert {e.kind for e in all_entries(device, sources=["commands"])} == {"command"}
    assert {e.kind for e in all_entries(device, sources=["state", "events"])} == {"state", "event", "opt_out"}


def test_another_app_plugs_its_entries_in(history, monkeypatch):
    """The extension point alerts will use: a registered source's entries are merged by time."""
    device, *_ = history
    monkeypatch.setattr(timeline._registry, "sources", list(timeline._registry.sources))
    at = timezone.now() - timedelta(hours=3)

    def alerts(device_, since, until, limit):
        assert device_.pk == device.pk and limit >= 1
        entry = TimelineEntry(at=at, kind="alert", title="Device offline", tone="bad", key="alert:1")
        return [entry] if (until is None or at <= until) and (since is None or at >= since) else []

    device_timeline_source_register(DeviceTimelineSource(key="alerts", label="Alerts", entries=alerts, order=50))
    entries = all_entries(device)
    alert = next(e for e in entries if e.kind == "alert")
    assert alert.source == "alerts"
    position = entries.index(alert)
    assert entries[position - 1].at >= at >= entries[position + 1].at


def test_the_page_costs_the_same_queries_for_a_short_history_or_a_long_one(client):
    workspace = WorkspaceFactory()
    client.force_login(staff_user("ops", workspace, Role.OPS))
    counts = []
    for hours, commands in ((48, 5), (24 * 30, 150)):
        device = DeviceFactory(site__contact__workspace=workspace)
        device_mark_on_workspace(device=device, reason="Found", at=timezone.now() - timedelta(hours=hours))
        add_readings(device, hours=hours)
        for i in range(commands):
            command_create(
                device=device,
                slug="battery:set-reserve",
                input={"chargePercentage": 40},
                idempotency_key=f"{hours}-{i}",
                actor=None,
            )
        url = reverse("admin:fleet_device_timeline", args=[device.pk])
        client.get(url)  # warm
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        assert len(response.context["entries"]) == 50
        older = response.context["older_url"]
        with CaptureQueriesContext(connection) as later:
            assert client.get(url + older).status_code == 200
        counts.append((len(queries), len(later)))
    assert counts[0] == counts[1], counts


def test_the_page_is_linked_from_the_device_and_reads_in_the_workspaces_time(client, history):
    device, event, *_ = history
    Workspace.objects.filter(pk=device.workspace_id).update(timezone="America/Los_Angeles")
    client.force_login(staff_user("ops", device.workspace, Role.OPS))
    url = reverse("admin:fleet_device_timeline", args=[device.pk])
    change = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert url in change
    response = client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert "America/Los_Angeles" in html and 'id="timeline"' in html
    assert " PST<" in html or " PDT<" in html  # each time labelled
    assert "No telemetry for 45 minutes" in html and "Customer asked by phone" in html
    # only commands, then older pages keep the choice
    response = client.get(url, {"source": "commands", "per_page": 2})
    assert {row["entry"].kind for row in response.context["entries"]} == {"command"}
    assert "source=commands" in response.context["older_url"]


def test_bad_input_and_other_workspaces(client, history):
    device, *_ = history
    client.force_login(staff_user("ops", device.workspace, Role.OPS))
    url = reverse("admin:fleet_device_timeline", args=[device.pk])
    response = client.get(url, {"until": "yesterday-ish", "skip": "-1", "source": "gossip"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="timeline-errors"' in html and "until" in html and "skip" in html and "source" in html
    client.force_login(staff_user("ops-b", WorkspaceFactory(), Role.OPS))
    assert client.get(url).status_code == 404
    assert client.get(f"/admin/fleet/device/{2**70}/timeline/").status_code == 404


def test_jumping_to_a_day_shows_that_day_and_before(client, history):
    device, *_ = history
    client.force_login(staff_user("ops", device.workspace, Role.OPS))
    yesterday = (timezone.now() - timedelta(days=1)).date()
    response = client.get(reverse("admin:fleet_device_timeline", args=[device.pk]), {"date": yesterday.isoformat()})
    assert response.status_code == 200
    entries = [row["entry"] for row in response.context["entries"]]
    assert entries and all(e.at.date() <= yesterday for e in entries)
