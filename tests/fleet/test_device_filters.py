"""Fleet filters Ops uses on the device list, shared with the API (fleet.filtersets.DeviceFilterSet): program,
tag, state, manufacturer, state-of-charge band and last seen — the same devices from `/v1/devices` and from
the admin's device list, a bad value refused with what is wrong."""

from datetime import timedelta

import pytest

from fleet.choices import DeviceState, LastSeen, SocBand
from fleet.services import device_tags_get_or_create
from programs.services import enrollment_submit
from tests.api_support import api_client_for, clean_cache  # noqa: F401
from tests.factories import WorkspaceFactory, make_program, staff_user
from tests.ops_scene import AGES, SOCS, bulk_fleet
from texture_portal.choices import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]

URL = "/admin/fleet/device/"


@pytest.fixture
def scene(client):
    workspace = WorkspaceFactory()
    fleet = bulk_fleet(workspace, 40)
    other = bulk_fleet(WorkspaceFactory(), 10, prefix="X")  # another tenant's devices never show
    client.force_login(staff_user("ops", workspace, Role.OPS))
    return workspace, fleet, other


def admin_ids(client, params) -> set[int]:
    response = client.get(URL, params)
    assert response.status_code == 200
    assert not [m for m in response.context["messages"] if "Invalid filter" in str(m)], params
    return {device.pk for device in response.context["cl"].queryset}


def api_ids(workspace, params) -> set[int]:
    client = api_client_for(workspace)
    found, url = set(), "/v1/devices"
    query = {**params, "perPage": 100}
    while url:
        response = client.get(url, query)
        assert response.status_code == 200, response.content
        body = response.json()
        found |= {row["id"] for row in body["data"]}
        url, query = body.get("next") or body.get("links", {}).get("next"), None
    return found


def expected_soc(fleet, band) -> set[int]:
    bounds = {
        SocBand.BELOW_20: (0, 20),
        SocBand.FROM_20: (20, 50),
        SocBand.FROM_50: (50, 80),
        SocBand.FROM_80: (80, 101),
    }
    found = set()
    for i, device in enumerate(fleet.devices):
        soc = SOCS[i % len(SOCS)] if device.last_seen_at is not None else None
        if band == SocBand.UNKNOWN:
            if soc is None:
                found.add(device.pk)
        elif soc is not None and bounds[band][0] <= soc < bounds[band][1]:
            found.add(device.pk)
    return found


def expected_last_seen(fleet, band) -> set[int]:
    limits = {LastSeen.WITHIN_15_MINUTES: 15, LastSeen.WITHIN_HOUR: 60, LastSeen.WITHIN_DAY: 24 * 60}
    found = set()
    for device in fleet.devices:
        age = None if device.last_seen_at is None else fleet.now - device.last_seen_at
        if band == LastSeen.NEVER:
            hit = age is None
        elif band == LastSeen.OLDER:
            hit = age is not None and age > timedelta(hours=24)
        else:
            hit = age is not None and age <= timedelta(minutes=limits[band])
        if hit:
            found.add(device.pk)
    return found


@pytest.mark.parametrize("band", SocBand.values)
def test_soc_band_from_the_api_and_the_admin(client, scene, band):
    workspace, fleet, _other = scene
    expected = expected_soc(fleet, band)
    assert expected  # the scene has devices in every band
    assert api_ids(workspace, {"socBand": band}) == expected
    assert admin_ids(client, {"socBand": band}) == expected


@pytest.mark.parametrize("band", LastSeen.values)
def test_last_seen_from_the_api_and_the_admin(client, scene, band):
    workspace, fleet, _other = scene
    expected = expected_last_seen(fleet, band)
    assert expected
    assert api_ids(workspace, {"lastSeen": band}) == expected
    assert admin_ids(client, {"lastSeen": band}) == expected


def test_the_bands_cover_the_fleet_once(scene):
    workspace, fleet, _other = scene
    everyone = {d.pk for d in fleet.devices}
    soc = [expected_soc(fleet, band) for band in SocBand.values]
    assert set().union(*soc) == everyone and sum(map(len, soc)) == len(everyone)
    disjoint = [expected_last_seen(fleet, b) for b in (LastSeen.WITHIN_DAY, LastSeen.OLDER, LastSeen.NEVER)]
    assert set().union(*disjoint) == everyone and sum(map(len, disjoint)) == len(everyone)
    assert AGES[-1] is None


def test_program_tag_state_and_manufacturer_combine(client, scene):
    workspace, fleet, _other = scene
    program = make_program(workspace, slug="summer-vpp")
    enrolled = fleet.devices[:12]
    for device in enrolled:
        enrollment_submit(device=device, program=program, actor=None)
    (tag,) = device_tags_get_or_create(workspace=workspace, names=["feeder:7"])
    tagged = fleet.devices[6:20]
    for device in tagged:
        device.tags.add(tag)
    both = {d.pk for d in enrolled} & {d.pk for d in tagged}
    tesla_live = {d.pk for d in fleet.devices if d.manufacturer.slug == "tesla" and d.state == DeviceState.ON_WORKSPACE}

    assert api_ids(workspace, {"program": "summer-vpp", "tag": "feeder:7"}) == both
    assert admin_ids(client, {"program": program.pk, "tag": tag.pk}) == both
    assert api_ids(workspace, {"manufacturer": "tesla", "state": "on_workspace"}) == tesla_live
    assert (
        admin_ids(client, {"manufacturer__id__exact": fleet.devices[0].manufacturer_id, "state__exact": "on_workspace"})
        == tesla_live
    )
    # the API's names work on the admin's list too, and with its own sidebar filters
    low_live = expected_soc(fleet, SocBand.BELOW_20) & {d.pk for d in fleet.devices if d.state == "on_workspace"}
    assert admin_ids(client, {"socBand": "0-20", "state": "on_workspace"}) == low_live
    assert api_ids(workspace, {"socBand": "0-20", "state": "on_workspace"}) == low_live
    stale_offline = expected_last_seen(fleet, LastSeen.OLDER) & {d.pk for d in fleet.devices if d.state == "offline"}
    assert stale_offline
    assert admin_ids(client, {"lastSeen": "older", "state__exact": "offline"}) == stale_offline


def test_the_sidebar_offers_the_bands_and_marks_the_chosen_one(client, scene):
    html = client.get(URL, {"socBand": "20-50"}).content.decode()
    for band, label in SocBand.choices:
        assert f"socBand={band}" in html, band
        assert str(label) in html
    for band, label in LastSeen.choices:
        assert f"lastSeen={band}" in html, band
        assert str(label) in html


def test_a_bad_value_is_refused_with_what_is_wrong(client, scene):
    workspace, _fleet, _other = scene
    response = api_client_for(workspace).get("/v1/devices", {"socBand": "half", "lastSeen": "yesterday"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "socBand" in body and "lastSeen" in body
    response = client.get(URL, {"socBand": "half"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert any("socBand" in str(m) and "half" in str(m) for m in response.context["messages"])


def test_the_device_list_keeps_its_query_count_with_the_new_filters(client, scene):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for params in ({}, {"socBand": "50-80", "lastSeen": "1h"}, {"socBand": "unknown", "lastSeen": "never"}):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL, params).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] == counts[2], counts
