"""`/v1/metrics`: known powers in the 15-minute rollups give exact Wh per bucket for every metric and window
size, on SQLite and PostgreSQL alike; the workspace scope, filters, relative ranges, every validation error,
one query whatever the device count, and the raw readings of the two newest intervals."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.api import metrics as metrics_api
from fleet.models import Manufacturer, TelemetryRollup
from fleet.selectors import _utc_offset_changes, metric_interval_start, metric_series
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, SiteFactory, TelemetryReadingFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]

T0 = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # a Monday
Q = timedelta(minutes=15)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rollup(device, start, *, battery=None, grid=None, solar=None, charger=None, soc=None, samples=3):
    return TelemetryRollup.objects.create(
        workspace_id=device.workspace_id,
        device=device,
        interval_start=start,
        samples=samples,
        charge_rate_w=battery,
        grid_power_w=grid,
        solar_power_w=solar,
        charger_wattage_w=charger,
        charge_percentage=soc,
    )


@pytest.fixture
def fleet():
    """Battery A and battery B at one site, a charger at another, and a battery of another workspace, with
    rollups at known mean powers from T0 (00:00 UTC)."""
    workspace = WorkspaceFactory()
    home = SiteFactory(contact__workspace=workspace)
    garage = SiteFactory(contact__workspace=workspace)
    a = DeviceFactory(site=home)
    b = DeviceFactory(site=home)
    charger = DeviceFactory(site=garage, device_type="charger", manufacturer=Manufacturer.objects.get(slug="emporia"))
    # battery W (+ discharging), grid W (+ importing), solar W, SoC %
    for n, (battery, grid, soc) in enumerate([(-2000, 1000, 50), (-2000, -400, 55), (4000, 200, 60), (0, 0, 58)]):
        rollup(a, T0 + n * Q, battery=battery, grid=grid, solar=800, soc=soc)
    rollup(a, T0 + 4 * Q, battery=1000, grid=0, solar=800, soc=57)  # 01:00
    rollup(b, T0, battery=-4000, grid=2000, solar=0, soc=20)
    rollup(charger, T0, charger=7200)
    rollup(charger, T0 + Q, charger=7200)
    stranger = DeviceFactory()  # another workspace
    rollup(stranger, T0, battery=-9000, grid=9000, solar=9000, soc=99)
    return workspace, a, b, charger, stranger


def get(client, metric, **params):
    params = {"filterRangeAfter": iso(T0), "filterRangeBefore": iso(T0 + timedelta(hours=2)), **params}
    response = client.get("/v1/metrics", {"metric": metric, **params})
    assert response.status_code == 200, response.content
    return response.json()


def points(body) -> list[tuple]:
    return [(row["ts"], row["v"], row["deviceId"]) for row in body["data"]]


def test_fifteen_minute_buckets_are_mean_power_times_a_quarter_hour(fleet):
    workspace, a, b, charger, _ = fleet
    client = api_client_for(workspace)
    body = get(client, "consumption", filterDeviceId=a.pk)
    assert points(body) == [
        (iso(T0), 500.0, a.pk),
        (iso(T0 + Q), 500.0, a.pk),
        (iso(T0 + 2 * Q), 0.0, a.pk),
        (iso(T0 + 3 * Q), 0.0, a.pk),
        (iso(T0 + 4 * Q), 0.0, a.pk),
    ]
    row = body["data"][0]
    assert row["siteId"] == a.site_id and row["customerId"] == a.contact_id
    assert [v for _, v, _ in points(get(client, "production", filterDeviceId=a.pk))] == [0, 0, 1000, 0, 250]
    assert [v for _, v, _ in points(get(client, "grid-energy", filterDeviceId=a.pk))] == [250, -100, 50, 0, 0]
    assert [v for _, v, _ in points(get(client, "generation", filterDeviceId=a.pk))] == [200] * 5
    assert [v for _, v, _ in points(get(client, "storage", filterDeviceId=a.pk))] == [50, 55, 60, 58, 57]
    # a charger's consumption is its charging power; it has no battery, so no production at all
    assert [v for _, v, _ in points(get(client, "consumption", filterDeviceId=charger.pk))] == [1800, 1800]
    assert get(client, "production", filterDeviceId=charger.pk)["data"] == []


def test_hour_buckets_sum_energy_and_take_the_latest_state_of_charge(fleet):
    workspace, a, *_ = fleet
    client = api_client_for(workspace)
    hour = {"filterDeviceId": a.pk, "windowSize": "HOUR"}
    expected = {
        "consumption": [1000, 0],
        "production": [1000, 250],
        "grid-energy": [200, 0],
        "generation": [800, 200],
        "storage": [58, 57],  # the newest interval of each hour (00:45, 01:00)
    }
    for metric, values in expected.items():
        body = get(client, metric, **hour)
        assert points(body) == [(iso(T0), values[0], a.pk), (iso(T0 + timedelta(hours=1)), values[1], a.pk)], metric


def test_meta_describes_the_series_in_textures_shape(fleet):
    workspace, a, b, *_ = fleet
    client = api_client_for(workspace)
    meta = get(client, "consumption", filterDeviceId=f"{b.pk},{a.pk}", windowSize="HOUR")["meta"]
    assert meta["label"] == "energyConsumedWhr" and meta["unit"] == "WATT_HOURS" and meta["displayUnit"] == "whr"
    assert meta["series"] == sorted([a.pk, b.pk]) and meta["sparse"] is True
    assert meta["domainMeta"] == {
        "label": "time",
        "sparse": True,
        "rate": {"unit": "HOUR", "displayUnit": "h", "scaleFactor": 1},
    }
    assert meta["metric"] == "consumption" and meta["aggregation"] == "sum" and meta["windowSize"] == "HOUR"
    assert meta["filterRangeAfter"] == iso(T0) and meta["timezone"] == "UTC" and meta["groupBy"] is None
    storage = get(client, "storage", filterDeviceId=a.pk)["meta"]
    assert (storage["label"], storage["unit"], storage["displayUnit"], storage["aggregation"]) == (
        "chargePercentage",
        "PERCENT",
        "%",
        "latest",
    )
    assert get(client, "grid-energy", filterDeviceId=a.pk)["meta"]["domainMeta"]["rate"] == {
        "unit": "MINUTE",
        "displayUnit": "min",
        "scaleFactor": 15,
    }


def test_path_form_and_brackets_answer_the_same(fleet):
    workspace, a, b, *_ = fleet
    client = api_client_for(workspace)
    query = f"filterRangeAfter={iso(T0)}&filterRangeBefore={iso(T0 + timedelta(hours=2))}&windowSize=HOUR"
    by_query = client.get(f"/v1/metrics?metric=production&filterDeviceId={a.pk}&filterDeviceId={b.pk}&{query}")
    by_path = client.get(f"/v1/metrics/production?filterDeviceId[]={a.pk}&filterDeviceId[]={b.pk}&{query}")
    assert by_query.status_code == by_path.status_code == 200
    assert by_query.json() == by_path.json()
    assert {row["deviceId"] for row in by_path.json()["data"]} == {a.pk, b.pk}


def test_group_by_site_sums_the_sites_devices(fleet):
    workspace, a, b, charger, _ = fleet
    client = api_client_for(workspace)
    body = get(client, "consumption", filterSiteId=f"{a.site_id},{charger.site_id}", windowSize="HOUR", groupBy="SITE")
    home_hour0 = 1000 + 1000  # A charged 2 kW for 30 min, B 4 kW for 15 min
    assert sorted((r["siteId"], r["ts"], r["v"]) for r in body["data"]) == sorted(
        [
            (a.site_id, iso(T0), home_hour0),
            (a.site_id, iso(T0 + timedelta(hours=1)), 0),
            (charger.site_id, iso(T0), 3600),
        ]
    )
    assert {r["deviceId"] for r in body["data"]} == {None}
    assert {r["customerId"] for r in body["data"] if r["siteId"] == a.site_id} == {a.contact_id}
    assert body["meta"]["series"] == sorted([a.site_id, charger.site_id]) and body["meta"]["groupBy"] == "SITE"
    grid = get(client, "grid-energy", filterSiteId=a.site_id, groupBy="SITE", windowSize="HOUR")
    assert [(r["ts"], r["v"]) for r in grid["data"]] == [(iso(T0), 200 + 500), (iso(T0 + timedelta(hours=1)), 0)]
    # storage per site: the mean of each device's latest state of charge in the bucket
    storage = get(client, "storage", filterSiteId=a.site_id, groupBy="SITE", windowSize="HOUR")
    assert [(r["ts"], r["v"]) for r in storage["data"]] == [
        (iso(T0), (58 + 20) / 2),
        (iso(T0 + timedelta(hours=1)), 57),
    ]


def test_filters_combine_and_another_workspaces_ids_are_simply_absent(fleet):
    workspace, a, b, charger, stranger = fleet
    client = api_client_for(workspace)
    both = get(client, "consumption", filterSiteId=a.site_id, filterDeviceId=f"{b.pk},{charger.pk}")
    assert {r["deviceId"] for r in both["data"]} == {b.pk}  # devices of the site among those ids
    assert get(client, "consumption", filterDeviceId=stranger.pk)["data"] == []
    assert get(client, "consumption", filterSiteId=stranger.site_id)["data"] == []
    mixed = get(client, "grid-energy", filterDeviceId=f"{a.pk},{stranger.pk}")
    assert {r["deviceId"] for r in mixed["data"]} == {a.pk}
    assert 9000 * 0.25 not in [r["v"] for r in mixed["data"]]
    # the stranger's own key sees its data
    assert points(get(api_client_for(stranger.workspace), "consumption", filterDeviceId=stranger.pk)) == [
        (iso(T0), 2250.0, stranger.pk)
    ]


def test_the_range_counts_intervals_starting_in_it(fleet):
    workspace, a, *_ = fleet
    client = api_client_for(workspace)
    # 00:20 rounds down to 00:15; 01:00 is exclusive
    body = get(
        client,
        "production",
        filterDeviceId=a.pk,
        filterRangeAfter=iso(T0 + timedelta(minutes=20)),
        filterRangeBefore=iso(T0 + timedelta(hours=1)),
    )
    assert points(body) == [(iso(T0 + Q), 0.0, a.pk), (iso(T0 + 2 * Q), 1000.0, a.pk), (iso(T0 + 3 * Q), 0.0, a.pk)]
    assert body["meta"]["filterRangeAfter"] == iso(T0 + timedelta(minutes=20))


def test_day_week_month_year_buckets_in_utc_and_in_a_timezone():
    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace)
    denver = ZoneInfo("America/Denver")
    # Monday 2025-12-01 06:45 UTC is Sunday 23:45 on Nov 30 in Denver (MST, UTC−7); 07:00 UTC is its midnight
    rollup(device, datetime(2025, 12, 1, 6, 45, tzinfo=UTC), grid=4000)  # 1000 Wh
    rollup(device, datetime(2025, 12, 1, 7, 0, tzinfo=UTC), grid=2000)  # 500 Wh
    rollup(device, datetime(2025, 12, 31, 23, 45, tzinfo=UTC), grid=400)  # 100 Wh; Dec 31 16:45 in Denver
    rollup(device, datetime(2026, 1, 1, 0, 0, tzinfo=UTC), grid=800)  # 200 Wh; Dec 31 17:00 in Denver
    client = api_client_for(workspace)
    span = {
        "filterDeviceId": device.pk,
        "filterRangeAfter": "2025-11-01T00:00:00Z",
        "filterRangeBefore": "2026-02-01T00:00:00Z",
    }

    def series(window, zone=None):
        params = {**span, "windowSize": window, **({"timezone": zone} if zone else {})}
        return [(r["ts"], r["v"]) for r in get(client, "grid-energy", **params)["data"]]

    def local(*day):
        return iso(datetime(*day, tzinfo=denver))

    assert series("DAY") == [
        ("2025-12-01T00:00:00Z", 1500),
        ("2025-12-31T00:00:00Z", 100),
        ("2026-01-01T00:00:00Z", 200),
    ]
    assert series("DAY", "America/Denver") == [
        (local(2025, 11, 30), 1000),
        (local(2025, 12, 1), 500),
        (local(2025, 12, 31), 300),
    ]
    # weeks start on Monday: Sunday Nov 30 (Denver) is in the week of Monday Nov 24
    assert series("WEEK") == [("2025-12-01T00:00:00Z", 1500), ("2025-12-29T00:00:00Z", 300)]
    assert series("WEEK", "America/Denver") == [
        (local(2025, 11, 24), 1000),
        (local(2025, 12, 1), 500),
        (local(2025, 12, 29), 300),
    ]
    assert series("MONTH") == [("2025-12-01T00:00:00Z", 1600), ("2026-01-01T00:00:00Z", 200)]
    assert series("MONTH", "America/Denver") == [(local(2025, 11, 1), 1000), (local(2025, 12, 1), 800)]
    assert series("YEAR") == [("2025-01-01T00:00:00Z", 1600), ("2026-01-01T00:00:00Z", 200)]
    assert series("YEAR", "America/Denver") == [(local(2025, 1, 1), 1800)]
    assert local(2025, 12, 1) == "2025-12-01T07:00:00Z"


def test_local_days_follow_the_clock_change():
    """Denver leaves daylight time on 2026-11-01 at 02:00 local: that day has 25 hours and the next midnight
    is 07:00 UTC, not 06:00."""
    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace)
    denver = ZoneInfo("America/Denver")
    for day, hour, minute in [(1, 6, 30), (2, 6, 30), (2, 7, 0)]:
        rollup(device, datetime(2026, 11, day, hour, minute, tzinfo=UTC), solar=4000)  # 1000 Wh each
    body = get(
        api_client_for(workspace),
        "generation",
        filterDeviceId=device.pk,
        filterRangeAfter="2026-10-31T00:00:00Z",
        filterRangeBefore="2026-11-04T00:00:00Z",
        windowSize="DAY",
        timezone="America/Denver",
    )
    # 06:30 UTC on Nov 1 is 00:30 MDT (Nov 1); 06:30 UTC on Nov 2 is 23:30 MST (still Nov 1); 07:00 is Nov 2
    assert [(r["ts"], r["v"]) for r in body["data"]] == [
        ("2026-11-01T06:00:00Z", 2000),
        ("2026-11-02T07:00:00Z", 1000),
    ]
    assert iso(datetime(2026, 11, 1, tzinfo=denver)) == "2026-11-01T06:00:00Z"
    assert body["meta"]["timezone"] == "America/Denver"


def test_an_interval_starting_at_the_clock_change_takes_the_new_offset():
    """Santiago leaves daylight time at local midnight: 2026-04-05 03:00 UTC is 23:00 on Apr 4 (−04), not
    00:00 on Apr 5 (−03), so that interval belongs to Apr 4, which lasts 25 hours."""
    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace)
    for hour in (3, 4):
        rollup(device, datetime(2026, 4, 5, hour, 0, tzinfo=UTC), solar=4000)  # 1000 Wh each
    body = get(
        api_client_for(workspace),
        "generation",
        filterDeviceId=device.pk,
        filterRangeAfter="2026-04-03T00:00:00Z",
        filterRangeBefore="2026-04-07T00:00:00Z",
        windowSize="DAY",
        timezone="America/Santiago",
    )
    assert [(r["ts"], r["v"]) for r in body["data"]] == [
        ("2026-04-04T03:00:00Z", 1000),
        ("2026-04-05T04:00:00Z", 1000),
    ]


def test_sqlite_reads_local_time_with_the_zones_exact_offset_changes():
    first, changes = _utc_offset_changes(
        ZoneInfo("America/Denver"), datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    )
    assert first == -7 * 3600
    assert changes == [
        (datetime(2026, 3, 8, 9, 0, tzinfo=UTC), -6 * 3600),  # 02:00 MST → 03:00 MDT
        (datetime(2026, 11, 1, 8, 0, tzinfo=UTC), -7 * 3600),  # 02:00 MDT → 01:00 MST
    ]
    assert _utc_offset_changes(ZoneInfo("Asia/Kolkata"), T0, T0 + timedelta(days=400)) == (19800, [])


def test_relative_ranges_end_now():
    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace)
    now = timezone.now()
    recent = metric_interval_start(now - timedelta(hours=3))
    rollup(device, recent, battery=2000)  # 500 Wh
    rollup(device, metric_interval_start(now - timedelta(hours=13)), battery=4000)  # 1000 Wh
    rollup(device, metric_interval_start(now - timedelta(days=3)), battery=8000)  # 2000 Wh
    client = api_client_for(workspace)

    def total(**params):
        response = client.get("/v1/metrics", {"metric": "production", "filterDeviceId": device.pk, **params})
        assert response.status_code == 200, response.content
        return sum(r["v"] for r in response.json()["data"]), response.json()["meta"]

    assert total(filterRangeRelative="1h")[0] == 0
    assert total(filterRangeRelative="12h")[0] == 500
    value, meta = total()  # the default: 1d
    assert value == 1500
    span = datetime.fromisoformat(meta["filterRangeBefore"]) - datetime.fromisoformat(meta["filterRangeAfter"])
    assert span == timedelta(days=1)
    assert total(filterRangeRelative="7d", windowSize="DAY")[0] == 3500
    # filterRangeAfter alone runs to now
    assert total(filterRangeAfter=iso(now - timedelta(hours=4)))[0] == 500


def test_the_two_newest_intervals_come_from_raw_readings():
    """The rollup job may not have caught up with the newest intervals: they are read from the raw readings,
    the unfinished current one for the part of it gone by."""
    device = DeviceFactory()
    current = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    now = current + timedelta(minutes=6)  # 0.1 h into the current interval
    rollup(device, current - 2 * Q, battery=-2000)  # 09:30, from the rollup: 500 Wh
    rollup(device, current - Q, battery=-400)  # 09:45: a stale rollup, not read
    for minute, watts in [(1, -4000), (6, -4000), (11, -4000)]:  # 09:45–10:00, complete: 1000 Wh
        TelemetryReadingFactory(device=device, measured_at=current - Q + timedelta(minutes=minute), charge_rate_w=watts)
    for minute, watts in [(1, -3000), (4, -1000)]:  # 10:00, unfinished: mean 2 kW × 0.1 h = 200 Wh
        TelemetryReadingFactory(device=device, measured_at=current + timedelta(minutes=minute), charge_rate_w=watts)
    found = metric_series(
        workspace_id=device.workspace_id,
        metric="consumption",
        after=current - timedelta(hours=1),
        before=now,
        device_ids=[device.pk],
        now=now,
    )
    assert [(p.ts, p.value) for p in found] == [
        (current - 2 * Q, 500.0),
        (current - Q, 1000.0),
        (current, pytest.approx(200.0)),
    ]
    hourly = metric_series(
        workspace_id=device.workspace_id,
        metric="consumption",
        after=current - timedelta(hours=1),
        before=now,
        window="HOUR",
        device_ids=[device.pk],
        now=now,
    )
    assert [(p.ts, p.value) for p in hourly] == [
        (current - timedelta(hours=1), 1500.0),
        (current, pytest.approx(200.0)),
    ]
    latest = metric_series(
        workspace_id=device.workspace_id, metric="storage", after=current, before=now, device_ids=[device.pk], now=now
    )
    assert [(p.ts, p.value) for p in latest] == [(current, 64.0)]  # the factory's state of charge


def test_one_query_whatever_the_device_count(django_assert_num_queries):
    workspace = WorkspaceFactory()
    site = SiteFactory(contact__workspace=workspace)
    devices = [DeviceFactory(site=site) for _ in range(12)]
    for device in devices:
        for n in range(8):
            rollup(device, T0 + n * Q, battery=-1000, grid=500, soc=40)
    client = api_client_for(workspace)
    params = {"filterRangeAfter": iso(T0), "filterRangeBefore": iso(T0 + timedelta(hours=2)), "windowSize": "HOUR"}
    client.get("/v1/metrics", {"metric": "consumption", "filterDeviceId": devices[0].pk, **params})  # key's last use
    for ids, group_by in [(devices[:1], None), (devices, None), (devices, "SITE")]:
        for metric in ["consumption", "storage"]:
            query = {"metric": metric, "filterDeviceId": ",".join(str(d.pk) for d in ids), **params}
            if group_by:
                query["groupBy"] = group_by
            with django_assert_num_queries(2):  # the key, then the metric
                response = client.get("/v1/metrics", query)
            assert response.status_code == 200
            assert len(response.json()["data"]) == (2 if group_by else 2 * len(ids))
    with CaptureQueriesContext(connection) as captured:
        client.get("/v1/metrics", {"metric": "grid-energy", "filterSiteId": site.pk, **params})
    assert sum("fleet_telemetryrollup" in q["sql"] for q in captured.captured_queries) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"metric": "emissions"}, "metric"),
        ({}, "metric"),
        ({"metric": "consumption", "windowSize": "MINUTE"}, "windowSize"),
        ({"metric": "consumption", "groupBy": "DEVICE"}, "groupBy"),
        ({"metric": "consumption", "filterRangeRelative": "2d"}, "filterRangeRelative"),
        ({"metric": "consumption", "timezone": "Mountain Time"}, "timezone"),
        ({"metric": "consumption", "filterRangeAfter": "yesterday"}, "filterRangeAfter"),
        ({"metric": "consumption", "filterRangeAfter": "1900-01-01T00:00:00Z"}, "filterRangeAfter"),
        ({"metric": "consumption", "filterRangeBefore": "2026-12-01T00:00:00Z"}, "filterRangeAfter"),
        ({"metric": "consumption", "filterRangeAfter": "2099-01-01T00:00:00Z"}, "filterRangeAfter"),  # after now
        (
            {
                "metric": "consumption",
                "filterRangeAfter": "2026-12-02T00:00:00Z",
                "filterRangeBefore": "2026-12-01T00:00:00Z",
            },
            "filterRangeAfter",
        ),
        (
            {"metric": "consumption", "filterRangeRelative": "1d", "filterRangeAfter": "2026-12-01T00:00:00Z"},
            "filterRangeRelative",
        ),
        ({"metric": "consumption", "filterRangeRelative": "1y"}, "windowSize"),  # 35,040 quarter hours
        (
            {
                "metric": "consumption",
                "windowSize": "HOUR",
                "filterRangeAfter": "2025-01-01T00:00:00Z",
                "filterRangeBefore": "2026-06-01T00:00:00Z",
            },
            "windowSize",
        ),
        (
            {
                "metric": "consumption",
                "windowSize": "YEAR",
                "filterRangeAfter": "2000-01-01T00:00:00Z",
                "filterRangeBefore": "2026-01-01T00:00:00Z",
            },
            "filterRangeAfter",
        ),
    ],
)
def test_invalid_parameters_are_400_naming_the_parameter(fleet, query, field):
    workspace, a, *_ = fleet
    error = assert_error(
        api_client_for(workspace).get("/v1/metrics", {"filterDeviceId": a.pk, **query}), 400, "validation_error"
    )
    assert list(error["fields"]) == [field], error
    assert error["fields"][field][0]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/metrics/emissions?filterDeviceId=1", "metric"),
        ("/v1/metrics?metric=storage", "filterDeviceId"),
        ("/v1/metrics?metric=storage&filterDeviceId=abc", "filterDeviceId"),
        ("/v1/metrics?metric=storage&filterDeviceId=0", "filterDeviceId"),
        ("/v1/metrics?metric=storage&filterDeviceId=99999999999999999999", "filterDeviceId"),
        ("/v1/metrics?metric=storage&filterSiteId[]=1,x", "filterSiteId"),
        ("/v1/metrics?metric=storage&filterDeviceId=,", "filterDeviceId"),
        ("/v1/metrics?metric=storage&filterDeviceId=" + "9" * 5000, "filterDeviceId"),
        ("/v1/metrics?metric=storage&filterDeviceId=%C2%B2", "filterDeviceId"),
    ],
)
def test_invalid_ids_and_path_metric_are_400(fleet, path, field):
    error = assert_error(api_client_for(fleet[0]).get(path), 400, "validation_error")
    assert list(error["fields"]) == [field], error


def test_several_bad_parameters_are_named_together(fleet):
    error = assert_error(
        api_client_for(fleet[0]).get("/v1/metrics", {"metric": "x", "windowSize": "y", "filterDeviceId": "z"}), 400
    )
    assert set(error["fields"]) == {"metric", "windowSize", "filterDeviceId"}


def test_too_many_points_is_a_400(fleet, monkeypatch):
    workspace, a, *_ = fleet
    monkeypatch.setattr(metrics_api, "MAX_POINTS", 3)
    client = api_client_for(workspace)
    error = assert_error(
        client.get(
            "/v1/metrics",
            {
                "metric": "storage",
                "filterDeviceId": a.pk,
                "filterRangeAfter": iso(T0),
                "filterRangeBefore": iso(T0 + timedelta(hours=2)),
            },
        ),
        400,
    )
    assert list(error["fields"]) == ["windowSize"]
    assert len(get(client, "storage", filterDeviceId=a.pk, windowSize="HOUR")["data"]) == 2  # fits


def test_a_key_is_required(fleet):
    from rest_framework.test import APIClient

    assert_error(APIClient().get("/v1/metrics", {"metric": "storage", "filterDeviceId": fleet[1].pk}), 401)


@pytest.mark.postgres
def test_postgresql_reads_the_rollups_by_their_unique_index():
    """No new index: the (device, interval_start) unique constraint's index serves the scoped range read."""
    workspace = WorkspaceFactory()
    site = SiteFactory(contact__workspace=workspace)
    devices = [DeviceFactory(site=site) for _ in range(40)]
    TelemetryRollup.objects.bulk_create(
        TelemetryRollup(workspace_id=workspace.pk, device=d, interval_start=T0 + n * Q, samples=3, grid_power_w=100.0)
        for d in devices
        for n in range(96 * 7)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fleet_telemetryrollup")
    with CaptureQueriesContext(connection) as captured:
        found = metric_series(
            workspace_id=workspace.pk,
            metric="grid-energy",
            after=T0 + timedelta(days=2),
            before=T0 + timedelta(days=3),
            window="DAY",
            device_ids=[devices[0].pk, devices[1].pk],
        )
    assert [(p.device_id, p.value) for p in found] == [(devices[0].pk, 2400.0), (devices[1].pk, 2400.0)]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + captured.captured_queries[-1]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "telemetry_rollup_unique" in plan, plan


def test_more_parameters_than_django_reads_get_the_apis_error_body():
    """Django refuses a query of more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters before any view reads it:
    the answer is still the API's JSON error, not Django's HTML page."""
    from tests.api_support import api_client_for, assert_error
    from tests.factories import WorkspaceFactory

    api = api_client_for(WorkspaceFactory())
    query = "&".join(f"filterDeviceId={n}" for n in range(1, 1100))
    error = assert_error(api.get(f"/v1/metrics?metric=consumption&{query}"), 400, "request_too_large")
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in error["message"] or "parameters" in error["message"]
