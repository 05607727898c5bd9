"""The customer page answers the usual call: each device's state in plain words (why a Registered System is not
live yet, since when and why an offline one is offline, a live one's last reading), the sites as map data over
the bundled states outline, enrollments, the devices' events and opt-outs (dispatch's section); no other
workspace's customer; the same queries for a customer with two devices or forty."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dispatch.choices import DispatchEventStatus, ExclusionReason, ParticipationStatus
from dispatch.models import DispatchEvent, Participation
from fleet.choices import DeviceState
from fleet.customer import customer_page
from fleet.models import Device, Manufacturer, Site, TelemetryReading
from integrations.choices import IntegrationStatus
from integrations.models import WorkspaceIntegration
from programs.services import event_strategy_create_version
from tests.factories import PASSWORD, UserFactory, staff_user
from tests.fleet.customer_scene import customer_scene, device, reading
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db

STATES_GEOJSON = Path(settings.BASE_DIR) / "fleet" / "static" / "fleet" / "maps" / "us-states.geojson"


@pytest.fixture
def scene():
    return customer_scene()


@pytest.fixture
def support(scene, client):
    staff_user("support", scene.workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support", password=PASSWORD)
    return client


def page_url(contact, **query):
    url = reverse("admin:fleet_contact_customer", args=[contact.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def stories(scene):
    return {story.device.pk: story for story in customer_page(contact=scene.contact).stories}


def text(story) -> str:
    return " ".join([story.headline, *story.explanations])


# -- each device's state in plain words ----------------------------------------------------------------------


def test_a_registered_system_without_its_oem_integration_says_so(scene):
    story = stories(scene)[scene.not_enabled.pk]
    assert story.tone == "registered"
    assert story.headline == "Not live yet: the Tesla integration is not set up for this workspace"
    assert "has never looked serial TG100069695681 up at Tesla" in text(story)
    assert ("Last looked up", "never") in story.facts


def test_a_registered_system_of_a_disabled_integration_says_it_is_not_enabled(scene):
    WorkspaceIntegration.objects.create(workspace=scene.workspace, channel="tesla", enabled=False)
    story = stories(scene)[scene.not_enabled.pk]
    assert story.headline == "Not live yet: the Tesla Fleet API integration is not enabled"
    assert "Engineering enables it under Integrations" in text(story)


def test_a_registered_system_discovery_did_not_find_says_when_it_was_last_looked_up(scene):
    story = stories(scene)[scene.not_found.pk]
    assert story.headline == "Not live yet: serial not found at FranklinWH"
    assert "1005000060202768 was not among them" in text(story)
    assert story.last_lookup is not None and story.last_lookup.ago == "30\xa0minutes"
    label, value = next(f for f in story.facts if f[0] == "Last looked up")
    assert value.endswith("(30\xa0minutes ago)") and ("PST" in value or "PDT" in value)


def test_a_serial_looked_up_again_and_again_says_how_many_times(scene):
    story = stories(scene)[scene.missed.pk]
    assert story.headline == "Not live yet: serial not found at SolarEdge"
    assert "looked up 2 times in a row" in text(story)
    assert "Check the serial with the customer" in text(story)
    assert story.last_lookup.ago == "2\xa0hours"


def test_a_registered_system_whose_integration_fails_names_the_failure(scene):
    WorkspaceIntegration.objects.filter(workspace=scene.workspace, channel="franklinwh").update(
        status=IntegrationStatus.ERROR, last_error="401 Unauthorized: token expired"
    )
    story = stories(scene)[scene.not_found.pk]
    assert story.headline == "Not live yet: the FranklinWH connection is failing"
    assert "401 Unauthorized: token expired" in text(story)


def test_a_registered_system_not_yet_looked_up_says_discovery_will(scene):
    later = device(
        scene.cabin, "franklinwh", "1005000099999999", "battery", DeviceState.REGISTERED, created=timezone.now()
    )
    story = stories(scene)[later.pk]
    assert story.headline == "Not live yet: waiting for its first look-up at FranklinWH"
    assert "its next run will" in text(story)


def test_an_offline_device_says_since_when_its_last_reading_and_the_likely_cause(scene):
    story = stories(scene)[scene.offline.pk]
    assert story.tone == "offline"
    assert story.headline.startswith("Offline for 3\xa0hours, since ")
    assert story.headline.endswith(("PST", "PDT"))  # the customer's own time (the site's zone)
    assert story.last_reading.ago == "3\xa0hours, 20\xa0minutes"
    explained = text(story)
    # the Enphase battery at the same site still reports: the home's internet works
    assert "The other devices at this site still report" in explained
    assert "this device lost its own connection" in explained
    assert "Emporia's last answer about it: “device offline (not connected to Emporia cloud)”" in explained
    assert "Recorded reason: No telemetry since" in explained
    facts = dict(story.facts)
    assert facts["Last reading"].endswith("(3\xa0hours, 20\xa0minutes ago)")


def test_every_device_of_a_site_offline_points_at_the_home_power_or_internet(scene):
    Device.objects.filter(pk=scene.live.pk).update(state=DeviceState.OFFLINE)
    story = stories(scene)[scene.offline.pk]
    assert "Every device at this site stopped reporting: most likely the home lost power or its internet" in text(story)


def test_many_devices_of_one_oem_offline_at_once_points_at_the_oem(scene):
    emporia = Manufacturer.objects.get(slug="emporia")
    for i in range(3):
        other = Site.objects.create(
            workspace=scene.workspace,
            contact=scene.neighbour,
            street_one=f"{i} Elm",
            city="Bend",
            state="OR",
            postal_code="97701",
        )
        Device.objects.create(
            workspace=scene.workspace,
            contact=scene.neighbour,
            site=other,
            manufacturer=emporia,
            system_identifier=f"A23{i}",
            device_type="charger",
            state=DeviceState.OFFLINE,
            state_changed_at=scene.offline.state_changed_at + timedelta(minutes=10 * i),
        )
    # one more, offline a day earlier: another cause
    Device.objects.filter(system_identifier="A232").update(state_changed_at=timezone.now() - timedelta(days=1))
    story = stories(scene)[scene.offline.pk]
    assert "2 other Emporia devices in this workspace went offline within an hour of it" in text(story)


def test_a_failing_integration_is_named_as_the_offline_cause(scene):
    WorkspaceIntegration.objects.filter(workspace=scene.workspace, channel="emporia").update(
        status=IntegrationStatus.ERROR, last_error="invalid refresh token"
    )
    story = stories(scene)[scene.offline.pk]
    assert story.explanations[0].startswith("The Emporia connection is failing (“invalid refresh token”)")


def test_storm_guard_at_the_last_reading_is_mentioned(scene):
    reading(scene.offline, timezone.now() - timedelta(hours=3, minutes=5), storm=True)
    assert "Storm Guard was active at its last reading" in text(stories(scene)[scene.offline.pk])


def test_a_live_device_shows_its_last_reading_and_state_of_charge(scene):
    story = stories(scene)[scene.live.pk]
    assert story.tone == "live"
    assert story.headline == "Live: last reading 4\xa0minutes ago, 64 % charged"
    facts = dict(story.facts)
    assert facts["State of charge"] == "64 %"
    assert facts["Battery power"] == "1.5 kW charging"
    assert facts["Grid"] == "0.3 kW importing"


def test_enrollments_are_shown_per_device(scene):
    found = stories(scene)
    assert [e.program.slug for e in found[scene.live.pk].enrollments] == ["timber-ridge-2026-vpp"]
    assert found[scene.missed.pk].enrollments == []


# -- the page -------------------------------------------------------------------------------------------------


def map_data(response) -> dict:
    match = re.search(
        r'<script id="customer-map-data" type="application/json">(.*?)</script>', response.content.decode()
    )
    assert match, "the map's data is not on the page"
    return json.loads(match.group(1))


def test_the_page_shows_every_device_explained_and_the_map_data(support, scene):
    response = support.get(page_url(scene.contact))
    assert response.status_code == 200
    html = response.content.decode()
    for dev in (scene.live, scene.offline, scene.not_enabled, scene.not_found, scene.missed):
        assert f'id="device-{dev.pk}"' in html
    assert "Not live yet: serial not found at FranklinWH" in html
    assert "The other devices at this site still report" in html
    assert "(541) 555-1188" in html and "carmen.chen@example.com" in html
    assert "fleet/vendor/leaflet/leaflet.js" in html and "fleet/customer.js" in html
    data = map_data(response)
    assert data["statesUrl"].endswith("fleet/maps/us-states.geojson")
    assert data["tileUrl"] == ""  # offline unless a deployment sets MAP_TILE_URL
    features = {f["properties"]["siteId"]: f for f in data["sites"]["features"]}
    home = features[scene.home.pk]
    assert home["geometry"] == {"type": "Point", "coordinates": [-121.1739, 44.2726]}
    assert home["properties"]["approximate"] is False
    assert {d["serial"]: d["state"] for d in home["properties"]["devices"]} == {
        "EN0014160265": "on_workspace",
        "A230968745": "offline",
    }
    cabin = features[scene.cabin.pk]  # no coordinates: its ZIP code's centre, marked approximate
    assert cabin["properties"]["approximate"] is True
    lon, lat = cabin["geometry"]["coordinates"]
    assert 44 < lat < 45 and -122 < lon < -121


def test_the_bundled_states_outline_is_served_and_is_geojson():
    outline = json.loads(STATES_GEOJSON.read_text())
    assert outline["type"] == "FeatureCollection"
    names = {f["properties"]["name"] for f in outline["features"]}
    assert {"Oregon", "California", "Alaska", "Hawaii", "District of Columbia"} <= names
    assert len(names) >= 51
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in outline["features"])
    assert STATES_GEOJSON.stat().st_size < 250_000  # low resolution: light enough for every page view
    assert (STATES_GEOJSON.parent / "README.md").exists()


def test_a_serial_hit_opens_the_page_on_that_device(support, scene):
    response = support.get(page_url(scene.contact, device=scene.offline.pk))
    assert (
        f'class="device-story tone-offline is-highlighted" id="device-{scene.offline.pk}"' in response.content.decode()
    )
    assert map_data(response)["highlightDeviceId"] == scene.offline.pk


def test_another_workspaces_customer_is_not_found(client, scene):
    staff_user("support-b", scene.other_workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support-b", password=PASSWORD)
    assert client.get(page_url(scene.contact)).status_code == 404
    assert client.get(page_url(scene.stranger)).status_code == 200
    assert client.get(reverse("admin:fleet_contact_customer", args=[2**63])).status_code == 404


def test_a_user_without_a_role_in_the_workspace_gets_404_and_anonymous_goes_to_login(client, scene):
    UserFactory(username="nobody", is_staff=True)
    client.login(username="nobody", password=PASSWORD)
    assert client.get(page_url(scene.contact)).status_code == 404
    client.logout()
    response = client.get(page_url(scene.contact))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_contact_page_and_the_contacts_list_link_to_the_customer_page(support, scene):
    change = support.get(reverse("admin:fleet_contact_change", args=[scene.contact.pk])).content.decode()
    assert f'id="customer-page" href="{page_url(scene.contact)}"' in change
    listing = support.get(reverse("admin:fleet_contact_changelist")).content.decode()
    assert page_url(scene.contact) in listing


def test_a_device_page_links_to_its_owners_customer_page_on_that_device(support, scene):
    html = support.get(reverse("admin:fleet_device_change", args=[scene.offline.pk])).content.decode()
    assert f'href="{page_url(scene.contact)}?device={scene.offline.pk}#device-{scene.offline.pk}"' in html


def test_online_tiles_are_a_setting(support, scene, settings):
    settings.MAP_TILE_URL = "https://tiles.example.org/{z}/{x}/{y}.png"
    settings.MAP_TILE_ATTRIBUTION = "© the tile provider"
    data = map_data(support.get(page_url(scene.contact)))
    assert data["tileUrl"] == "https://tiles.example.org/{z}/{x}/{y}.png"
    assert data["tileAttribution"] == "© the tile provider"


def test_dispatch_shows_the_devices_events_participation_and_opt_outs(support, scene):
    event_strategy_create_version(
        program=scene.program, data={"allowed_event_types": ["charge", "discharge", "idle"]}, actor=None
    )
    strategy = scene.program.strategies.order_by("-version").first()
    now = timezone.now()
    past = DispatchEvent.objects.create(
        workspace=scene.workspace,
        program=scene.program,
        strategy=strategy,
        name="Evening peak",
        status=DispatchEventStatus.COMPLETED,
        starts_at=now - timedelta(days=1, hours=2),
        ends_at=now - timedelta(days=1),
    )
    Participation.objects.create(
        workspace=scene.workspace,
        event=past,
        device=scene.live,
        status=ParticipationStatus.OPTED_OUT,
        reason="Customer asked to keep the battery full for a trip",
        opted_out_at=now - timedelta(days=1, hours=1),
    )
    Participation.objects.create(
        workspace=scene.workspace,
        event=past,
        device=scene.offline,
        status=ParticipationStatus.EXCLUDED,
        reason_code=ExclusionReason.NOT_ON_WORKSPACE,
        reason="Offline",
    )
    DispatchEvent.objects.create(
        workspace=scene.workspace,
        program=scene.program,
        strategy=strategy,
        name="Tomorrow's test",
        status=DispatchEventStatus.SCHEDULED,
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=1),
    )
    html = support.get(page_url(scene.contact)).content.decode()
    assert 'id="customer-section-dispatch-events"' in html
    assert "Evening peak" in html and "Tomorrow&#x27;s test" in html
    assert "Opted out" in html and "Customer asked to keep the battery full for a trip" in html
    assert "1 opt-out among the latest participations." in html
    assert "Not on workspace: Offline" in html


def test_dispatchs_section_needs_the_right_to_view_participations(client, scene):
    """An Ops user can; a user whose role has no dispatch view would not see the section (none of the five
    roles lacks it, so the check is exercised by removing the permission from the role's group)."""
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.get(name=str(Role.CUSTOMER_SUPPORT.label))
    group.permissions.remove(Permission.objects.get(codename="view_participation"))
    staff_user("support", scene.workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support", password=PASSWORD)
    html = client.get(page_url(scene.contact)).content.decode()
    assert 'id="customer-device' in html
    assert 'id="customer-section-dispatch-events"' not in html


def grow(scene, n_devices: int, readings_each: int):
    """More devices for the customer (each state), with readings, and more customers around them."""
    tesla = Manufacturer.objects.get(slug="tesla")
    sites = [
        Site.objects.create(
            workspace=scene.workspace,
            contact=scene.contact,
            street_one=f"{i} Pine St",
            city="Bend",
            state="OR",
            postal_code="97701",
        )
        for i in range(3)
    ]
    states = [DeviceState.ON_WORKSPACE, DeviceState.OFFLINE, DeviceState.REGISTERED]
    devices = Device.objects.bulk_create(
        [
            Device(
                workspace=scene.workspace,
                contact=scene.contact,
                site=sites[i % 3],
                manufacturer=tesla,
                system_identifier=f"TG9{i:09d}",
                device_type="battery",
                state=states[i % 3],
            )
            for i in range(n_devices)
        ]
    )
    now = timezone.now()
    TelemetryReading.objects.bulk_create(
        [
            TelemetryReading(
                workspace_id=scene.workspace.pk,
                device=d,
                measured_at=now - timedelta(minutes=5 * k),
                charge_percentage=50,
            )
            for d in devices
            for k in range(readings_each)
        ]
    )


def queries_for_page(client, contact) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(page_url(contact))
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_page_takes_the_same_queries_for_five_devices_or_forty(support, scene):
    small = queries_for_page(support, scene.contact)
    grow(scene, n_devices=36, readings_each=5)
    large = queries_for_page(support, scene.contact)
    assert small == large
    assert large <= 25


# -- Customer Support's home ----------------------------------------------------------------------------------


def test_the_support_home_has_the_search_form_the_customers_opened_last_and_the_devices_gone_offline(support, scene):
    support.get(page_url(scene.contact))
    home = support.get(reverse("admin:index") + "?role=customer_support")
    html = home.content.decode()
    assert 'id="support-search"' in html and f'action="{reverse("admin:fleet_contact_search")}"' in html
    viewed = re.search(r'id="support-recently-viewed">(.*?)</ul>', html, re.S).group(1)
    assert "Carmen Chen" in viewed
    offline = re.search(r'id="support-recently-offline">(.*?)</ul>', html, re.S).group(1)
    assert f"?device={scene.offline.pk}#device-{scene.offline.pk}" in offline
    for name in ("Customer search", "Contacts", "Devices", "Sites"):
        assert name in html


def test_the_support_home_never_lists_another_workspaces_offline_devices(client, scene):
    staff_user("support-b", scene.other_workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support-b", password=PASSWORD)
    html = client.get(reverse("admin:index") + "?role=customer_support").content.decode()
    offline = re.search(r'id="support-recently-offline">(.*?)</ul>', html, re.S).group(1)
    assert page_url(scene.stranger) in offline and page_url(scene.contact) not in offline


def test_the_outline_builder_decodes_topojson_and_keeps_shared_borders_whole():
    """Two unit squares sharing the arc x=1 (quantized, delta-encoded as TopoJSON stores them): each state gets
    a closed ring through the shared border, simplification keeps the arcs' ends, and a straight line loses
    its middle points."""
    from fleet.management.commands.build_us_states_map import simplify, states_geojson

    topology = {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.5], "translate": [-100, 40]},
        "arcs": [
            [[2, 0], [0, 2]],  # the shared border: (1, 0) → (1, 1) after the transform
            [[2, 2], [-2, 0], [0, -2], [2, 0]],  # the west square's other sides
            [[2, 0], [2, 0], [0, 2], [-2, 0]],  # the east square's other sides
        ],
        "objects": {
            "states": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "Polygon", "arcs": [[0, 1]], "id": "01", "properties": {"name": "West"}},
                    {"type": "Polygon", "arcs": [[2, -1]], "id": "02", "properties": {"name": "East"}},
                ],
            }
        },
    }
    collection = states_geojson(topology, tolerance=0.01)
    west, east = collection["features"]
    assert west["properties"] == {"name": "West", "fips": "01"}
    assert west["geometry"]["coordinates"] == [
        [[[-99.0, 40.0], [-99.0, 41.0], [-100.0, 41.0], [-100.0, 40.0], [-99.0, 40.0]]]
    ]
    assert east["geometry"]["coordinates"] == [
        [[[-99.0, 40.0], [-98.0, 40.0], [-98.0, 41.0], [-99.0, 41.0], [-99.0, 40.0]]]
    ]
    assert simplify([(0, 0), (1, 0.001), (2, 0), (3, 0.002), (4, 0)], 0.01) == [(0, 0), (4, 0)]


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_support_home_takes_the_same_queries_whatever_the_fleets_size(support, scene):
    url = reverse("admin:index") + "?role=customer_support"
    support.get(page_url(scene.contact))  # one customer opened: the panel lists it
    small = queries_for(support, url)
    grow(scene, n_devices=60, readings_each=1)
    support.get(page_url(scene.neighbour))
    large = queries_for(support, url)
    assert small == large
