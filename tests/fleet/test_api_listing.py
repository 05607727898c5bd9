"""The device list's fast path (fleet/api/listing.py) answers byte for byte what the DeviceSerializer answered:
each page of a representative fleet (every device type, null and set fields, tags or none, a dangling latest
reading, unicode) is rendered both ways and compared, on SQLite and (marked) on PostgreSQL."""

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework import mixins
from rest_framework.test import APIRequestFactory

from fleet.api.listing import device_list_rows
from fleet.api.serializers import DeviceSerializer
from fleet.api.views import DeviceViewSet
from fleet.choices import DeviceState, DeviceType, GridServicesStatus
from fleet.models import Device, Manufacturer
from tests.api_support import api_client_for, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, DeviceTagFactory, SiteFactory, TelemetryReadingFactory, WorkspaceFactory
from texture_portal.api.renderers import PlainJSON

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]

AT = datetime(2026, 7, 15, 16, 30, 12, 345678, tzinfo=UTC)


class SerializerDeviceViewSet(DeviceViewSet):
    """The list as it was: DRF's ListModelMixin over the model queryset and the DeviceSerializer."""

    list = mixins.ListModelMixin.list

    def workspace_queryset(self):
        return Device.objects.select_related("manufacturer", "contact", "latest_telemetry").prefetch_related("tags")


def representative_fleet():
    workspace = WorkspaceFactory()
    makers = {m.slug: m for m in Manufacturer.objects.all()}
    maker_slugs = sorted(makers)
    tags = [
        DeviceTagFactory(workspace=workspace, name=name) for name in ("zone:b", "Zone:A", "feeder:12", "ünïcode,tag")
    ]
    devices = []
    for index, device_type in enumerate(DeviceType.values * 2):
        site = SiteFactory(workspace=workspace, contact__workspace=workspace)
        device = DeviceFactory(
            site=site,
            manufacturer=makers[maker_slugs[index % len(maker_slugs)]],
            device_type=device_type,
            name=["", "Garage “Powerwall” ⚡", "line\u2028separator", "plain"][index % 4],
            state=[DeviceState.REGISTERED, DeviceState.ON_WORKSPACE, DeviceState.OFFLINE][index % 3],
            state_reason="" if index % 2 else "OEM said so",
            oem_device_id="" if index % 3 else f"oem-{index}",
            last_seen_at=None if index % 2 else AT - timedelta(minutes=index),
            grid_services_status=GridServicesStatus.values[index % len(GridServicesStatus.values)],
            grid_services_checked_at=None if index % 3 == 1 else AT + timedelta(microseconds=index),
        )
        device.tags.set(tags[: index % (len(tags) + 1)])
        devices.append(device)
    # latest readings: all fields set, most fields null, small and large floats, and none at all
    full = TelemetryReadingFactory(
        device=devices[0],
        measured_at=AT,
        charge_percentage=1e-05,
        charge_rate_w=-1500.5,
        grid_power_w=1e22,
        solar_power_w=0.0,
        is_plugged_in=True,
        charger_wattage_w=7200.0,
        charge_limit_percent=80.0,
        range_km=312.25,
        strategy="self_consumption",
    )
    sparse = TelemetryReadingFactory(
        device=devices[1],
        measured_at=AT.replace(microsecond=0),
        charge_percentage=None,
        charge_rate_w=None,
        grid_power_w=None,
        solar_power_w=None,
        backup_reserve_percent=None,
        is_storm_mode_enabled=None,
        is_storm_mode_active=None,
        charging_state="unknown",
        grid_status="unknown",
    )
    for device, reading in ((devices[0], full), (devices[1], sparse)):
        Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
    for device in devices[2:7]:  # one reading each, of the other device types
        reading = TelemetryReadingFactory(device=device, measured_at=AT - timedelta(hours=1))
        Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
    Device.objects.filter(pk=devices[7].pk).update(latest_telemetry_id=10**9)  # a reading since deleted
    return workspace, devices


def _render_both(raw_key: str, url: str):
    factory = APIRequestFactory()
    responses = []
    for view_class in (DeviceViewSet, SerializerDeviceViewSet):
        response = view_class.as_view({"get": "list"})(factory.get(url, HTTP_TEXTURE_API_KEY=raw_key))
        assert response.status_code == 200, response.data
        responses.append(response.render())
    return responses


def _walk_pages(raw_key: str, url: str, rendered_by_orjson: list | None = None) -> int:
    pages = 0
    while url:
        fast, serialized = _render_both(raw_key, url)
        assert fast.content == serialized.content
        if rendered_by_orjson is not None:
            rendered_by_orjson.append(type(fast.data) is PlainJSON)
        pages += 1
        url = fast.data["next"]
    return pages


def _assert_same_json_on_every_page():
    workspace, devices = representative_fleet()
    client = api_client_for(workspace)
    raw = client.raw_key
    by_orjson = []
    assert _walk_pages(raw, "http://testserver/v1/devices?perPage=3", by_orjson) == 4
    # the last page (newest first) holds devices[0]'s 1e-05, which only DRF's renderer spells as DRF does
    assert by_orjson == [True, True, True, False]
    assert _walk_pages(raw, "http://testserver/v1/devices?perPage=500") == 1
    for query in ("state=offline", "deviceType=vehicle", "tag=Zone:A&perPage=2", "lastSeen=never"):
        assert _walk_pages(raw, f"http://testserver/v1/devices?{query}") >= 1
    body = client.get("/v1/devices?perPage=500").json()["data"]
    assert {row["deviceType"] for row in body} == set(DeviceType.values)
    by_id = {row["id"]: row for row in body}
    assert by_id[devices[0].pk]["latestTelemetry"]["chargePercentage"] == 1e-05
    assert by_id[devices[1].pk]["latestTelemetry"]["chargeRate"] is None
    assert by_id[devices[7].pk]["latestTelemetry"] is None and by_id[devices[8].pk]["latestTelemetry"] is None
    assert by_id[devices[4].pk]["tags"] == ["Zone:A", "feeder:12", "zone:b", "ünïcode,tag"]  # code-point order


def test_the_fast_list_answers_exactly_what_the_serializer_did():
    _assert_same_json_on_every_page()


@pytest.mark.postgres
def test_the_fast_list_answers_exactly_what_the_serializer_did_on_postgresql():
    # PostgreSQL reads the tags in the page query (ARRAY subquery): the other code path
    _assert_same_json_on_every_page()


def test_in_another_current_zone_the_times_are_converted_and_drf_renders_them():
    workspace, _devices = representative_fleet()
    raw = api_client_for(workspace).raw_key
    by_orjson = []
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert _walk_pages(raw, "http://testserver/v1/devices?perPage=4", by_orjson) == 3
        fast, _ = _render_both(raw, "http://testserver/v1/devices?perPage=500")
    assert by_orjson == [False, False, False]
    # the July readings in daylight time, the rows created today in whatever offset today has; none in UTC
    assert b'.345678-04:00"' in fast.content and b'Z"' not in fast.content


def test_the_bodies_have_every_field_of_the_serializer():
    workspace, _devices = representative_fleet()
    bodies = list(device_list_rows().filter(workspace=workspace).order_by("-id"))
    assert all(list(body) == list(DeviceSerializer().fields) for body in bodies)


def test_a_page_costs_the_same_queries_whatever_its_size(django_assert_num_queries):
    workspace, _devices = representative_fleet()
    client = api_client_for(workspace)
    client.get("/v1/devices")  # the key's first use writes last_used_at
    for size in (1, 10):
        # the key and the page; elsewhere than on PostgreSQL the tags are a third query
        with django_assert_num_queries(2 if connection.vendor == "postgresql" else 3):
            assert client.get(f"/v1/devices?perPage={size}").status_code == 200


def test_a_number_the_database_gives_as_another_type_is_made_a_float_as_the_serializer_does():
    from fleet.api.listing import _floats_as_the_serializer

    reading = dict.fromkeys(("chargePercentage", "chargeRate", "gridPower", "solarPower", "backupReserve"))
    reading.update(chargerWattage=7200, chargeLimit=None, range=312.25, chargePercentage=50)
    bodies = [{"latestTelemetry": reading}, {"latestTelemetry": None}]
    _floats_as_the_serializer(bodies)
    assert reading["chargerWattage"] == 7200.0 and type(reading["chargerWattage"]) is float
    assert type(reading["chargePercentage"]) is float and reading["chargeLimit"] is None
