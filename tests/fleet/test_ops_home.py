"""The Ops home's fleet health: every figure links to the rows behind it (the linked list counts the same),
the page costs the same queries for a small fleet and a large one (counts are aggregates, devices are never
loaded), and one workspace's Ops sees nothing of another's."""

import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.choices import DeviceState
from programs.services import enrollment_submit
from tests.factories import DeviceFactory, WorkspaceFactory, make_program, staff_user
from tests.ops_scene import AGES, MAKERS, STATES, bulk_fleet, running_event
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db

HOME = "/admin/?role=ops"


class FigureLinks(HTMLParser):
    """Every figure of the Ops panels: (panel, figure name, number shown, link)."""

    def __init__(self):
        super().__init__()
        self.panel = None
        self.open: dict | None = None
        self.figures: list[tuple[str, str, int, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and (attrs.get("id") or "").startswith("panel-"):
            self.panel = attrs["id"].removeprefix("panel-")
        classes = (attrs.get("class") or "").split()
        if tag == "a" and ({"ops-count", "home-figure"} & set(classes)):
            name = (
                attrs.get("data-figure") or attrs.get("data-state") or attrs.get("data-band") or attrs.get("id") or ""
            )
            self.open = {"name": name, "href": attrs["href"], "text": ""}

    def handle_data(self, data):
        if self.open is not None:
            self.open["text"] += data

    def handle_endtag(self, tag):
        if tag == "a" and self.open is not None:
            number = re.search(r"\d+", self.open["text"])
            assert number, f"a figure link without a number: {self.open}"
            self.figures.append((self.panel, self.open["name"], int(number.group()), self.open["href"]))
            self.open = None


def figures_of(html: str) -> list[tuple[str, str, int, str]]:
    parser = FigureLinks()
    parser.feed(html)
    return parser.figures


def listed_count(client, href: str) -> int:
    """How many rows the changelist a figure links to lists (its own count, whatever the page size)."""
    url = urlsplit(href)
    response = client.get(url.path, dict(_query(url.query)), follow=False)
    assert response.status_code == 200, (href, response.status_code)
    messages = [str(m) for m in response.context["messages"]]
    assert not any("Invalid filter" in m for m in messages), (href, messages)
    return response.context["cl"].result_count


def _query(query: str):
    from django.http import QueryDict

    return QueryDict(query).lists()


@pytest.fixture
def ops_scene(client):
    workspace = WorkspaceFactory()
    program = make_program(workspace)
    fleet = bulk_fleet(workspace, 120)
    running_event(program, fleet.devices[:40], now=fleet.now)
    user = staff_user("ops", workspace, Role.OPS)
    client.force_login(user)
    return workspace, program, fleet


def test_every_figure_of_the_ops_home_is_the_count_of_the_list_it_links_to(client, ops_scene):
    workspace, program, fleet = ops_scene
    response = client.get(HOME)
    assert response.status_code == 200
    html = response.content.decode()
    for panel in ("fleet-states", "telemetry-freshness", "offline", "events-in-progress", "failed-commands"):
        assert f'id="panel-{panel}"' in html, panel

    figures = figures_of(html)
    panels = Counter(panel for panel, *_ in figures)
    # the grid: 4 makers × (3 states + all) + the totals row; freshness: live + 5 bands; offline: 1;
    # the running event: 5 figures; failed commands: 1; open alerts: needing attention + 3 severities
    assert panels == {
        "open-alerts": 4,
        "fleet-states": 5 * 4,
        "telemetry-freshness": 6,
        "offline": 1,
        "events-in-progress": 5,
        "failed-commands": 1,
    }
    for panel, name, shown, href in figures:
        assert listed_count(client, href) == shown, (panel, name, href)


def test_the_figures_are_the_fleets_own(client, ops_scene):
    """The expected numbers, computed from the scene's recipe, not from the code under test."""
    workspace, program, fleet = ops_scene
    n = len(fleet.devices)
    found = figures_of(client.get(HOME).content.decode())
    figures = {(panel, name): shown for panel, name, shown, _href in found}  # (a grid column: its total)
    states = Counter(STATES[i % len(STATES)] for i in range(n))
    assert figures[("fleet-states", "all")] == n
    for state in DeviceState.values:
        column = [shown for panel, name, shown, _href in found if panel == "fleet-states" and name == state]
        assert column[-1] == states[state]  # the totals row
        assert sum(column[:-1]) == states[state]  # the manufacturers' cells
        makers = Counter(MAKERS[i % len(MAKERS)][0] for i in range(n) if STATES[i % len(STATES)] == state)
        assert sorted(column[:-1]) == sorted(makers[slug] for slug, _kind in MAKERS)
    assert figures[("offline", "offline-count")] == states[DeviceState.OFFLINE]

    live = [i for i in range(n) if STATES[i % len(STATES)] == DeviceState.ON_WORKSPACE]
    ages = Counter(AGES[i % len(AGES)] for i in live)
    fresh, forty, six, three, never = AGES
    assert figures[("telemetry-freshness", "freshness-live")] == len(live)
    assert figures[("telemetry-freshness", "15m")] == ages[fresh]
    assert figures[("telemetry-freshness", "1h")] == ages[fresh] + ages[forty]
    assert figures[("telemetry-freshness", "24h")] == ages[fresh] + ages[forty] + ages[six]
    assert figures[("telemetry-freshness", "older")] == ages[three]
    assert figures[("telemetry-freshness", "never")] == ages[never]

    # 40 participations cycling through 8 kinds: 5 of each
    assert figures[("events-in-progress", "targeted")] == 40
    assert figures[("events-in-progress", "commanded")] == 5 * 5  # confirmed ×2, commanded, not responding, opted out
    assert figures[("events-in-progress", "confirmed")] == 10
    assert figures[("events-in-progress", "failed")] == 5
    assert figures[("events-in-progress", "not_responding")] == 5
    assert figures[("failed-commands", "failed-commands-count")] == 5


def test_the_offline_panel_lists_the_ten_offline_longest_with_since_when(client, ops_scene):
    workspace, program, fleet = ops_scene
    html = client.get(HOME).content.decode()
    listed = re.findall(r'<tr data-device="(\d+)">', html.split('id="offline-longest"')[1])
    assert len(listed) == 10
    offline = sorted(
        (d for d in fleet.devices if d.state == DeviceState.OFFLINE), key=lambda d: (d.state_changed_at, d.pk)
    )
    assert [int(pk) for pk in listed] == [d.pk for d in offline[:10]]
    assert "7\xa0hours ago" in html  # the longest: offline since 7 hours before


def test_the_home_costs_the_same_queries_for_120_devices_or_5000(client):
    counts = []
    for size, prefix in ((120, "S"), (5000, "L")):
        workspace = WorkspaceFactory()
        program = make_program(workspace, slug=f"vpp-{prefix.lower()}")
        fleet = bulk_fleet(workspace, size, prefix=prefix)
        running_event(program, fleet.devices[: size // 3], now=fleet.now, name=f"Peak {prefix}")
        running_event(program, fleet.devices[size // 3 : size // 2], now=fleet.now, name=f"Second {prefix}")
        client.force_login(staff_user(f"ops-{prefix}", workspace, Role.OPS))
        client.get(HOME)  # warm: content types, sessions
        with CaptureQueriesContext(connection) as queries:
            response = client.get(HOME)
        assert response.status_code == 200
        assert f"Peak {prefix}" in response.content.decode()
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 30, counts  # a small, constant number: the panels' aggregates, not the devices


def test_an_ops_user_sees_only_the_workspaces_where_they_are_ops(client):
    a, b = WorkspaceFactory(), WorkspaceFactory()
    bulk_fleet(a, 30, prefix="A")
    fleet_b = bulk_fleet(b, 50, prefix="B")
    program_b = make_program(b, slug="beta-vpp")
    running_event(program_b, fleet_b.devices[:8], now=fleet_b.now, name="Beta peak")
    user = staff_user("ops-a", a, Role.OPS)
    client.force_login(user)
    html = client.get(HOME).content.decode()
    figures = {(panel, name): shown for panel, name, shown, _href in figures_of(html)}
    assert figures[("fleet-states", "all")] == 30
    assert "B000" not in html and "Beta peak" not in html
    assert 'id="no-events-in-progress"' in html
    assert figures[("failed-commands", "failed-commands-count")] == 0

    # Support in B as well: B's devices show in the device list, not in the Ops figures, and the figures'
    # links stay on A's rows
    from texture_portal.services import membership_grant

    membership_grant(user=user, workspace=b, role=Role.CUSTOMER_SUPPORT)
    html = client.get(HOME).content.decode()
    for panel, name, shown, href in figures_of(html):
        assert listed_count(client, href) == shown, (panel, name, href)
    assert {(p, n): s for p, n, s, _h in figures_of(html)}[("fleet-states", "all")] == 30


def test_an_empty_workspace_says_so_and_every_figure_is_zero(client):
    workspace = WorkspaceFactory()
    client.force_login(staff_user("ops-empty", workspace, Role.OPS))
    html = client.get(HOME).content.decode()
    assert "No device in your workspaces yet" in html
    assert "No event in progress." in html
    figures = figures_of(html)
    assert figures and all(shown == 0 for _p, _n, shown, _h in figures)


def test_a_device_gone_offline_shows_in_the_offline_panel_with_its_reason(client):
    from fleet.services import device_mark_offline, device_mark_on_workspace

    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace, system_identifier="TG-GONE-1")
    device_mark_on_workspace(device=device, reason="Found at Tesla")
    device_mark_offline(device=device, reason="No telemetry for 45 minutes")
    program = make_program(workspace)
    enrollment_submit(device=device, program=program, actor=None)
    client.force_login(staff_user("ops-one", workspace, Role.OPS))
    html = client.get(HOME).content.decode()
    offline = html.split('id="panel-offline"')[1].split("</section>")[0]
    assert "TG-GONE-1" in offline and "No telemetry for 45 minutes" in offline
    assert f"/admin/fleet/device/{device.pk}/timeline/" in offline
    assert {(p, n): s for p, n, s, _h in figures_of(html)}[("offline", "offline-count")] == 1
    assert timezone.now()  # the panel's times are relative to the page's own clock
