"""Reads of the fleet used by telemetry jobs, the device page and the metrics API."""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from fleet.choices import DeviceState, LastSeen, SocBand
from fleet.models import Device, TelemetryReading
from texture_portal.timezones import zone_name


def device_telemetry_series(*, device: Device, since: datetime | None = None) -> QuerySet[TelemetryReading]:
    """The device's readings since `since` (default: the last day), oldest first, for the chart."""
    since = since or timezone.now() - timedelta(days=1)
    return (
        TelemetryReading.objects.filter(workspace_id=device.workspace_id, device=device, measured_at__gte=since)
        .order_by("measured_at")
        .only("measured_at", "charge_percentage", "charge_rate_w", "grid_power_w", "solar_power_w", "charger_wattage_w")
    )


def devices_stale(*, channel: str, stale_since: datetime) -> QuerySet[Device]:
    """Devices on the workspace, of one OEM channel, with no reading since `stale_since`."""
    from django.db.models import Q

    return Device.objects.filter(state=DeviceState.ON_WORKSPACE, manufacturer__integration_channel=channel).filter(
        Q(last_seen_at__lt=stale_since) | Q(last_seen_at__isnull=True, state_changed_at__lt=stale_since)
    )


# -- the fleet's health, as Ops reads it (fleet filters and the Ops home) -----------------------------------
#
# The filters and the home's figures are built from the same conditions (`soc_band_q`, `last_seen_q`), so a
# figure and the device list it links to count the same devices.

_SOC = "latest_telemetry__charge_percentage"
SOC_BANDS: dict[str, Q] = {
    SocBand.BELOW_20: Q(**{f"{_SOC}__lt": 20}),
    SocBand.FROM_20: Q(**{f"{_SOC}__gte": 20, f"{_SOC}__lt": 50}),
    SocBand.FROM_50: Q(**{f"{_SOC}__gte": 50, f"{_SOC}__lt": 80}),
    SocBand.FROM_80: Q(**{f"{_SOC}__gte": 80}),
    # no latest reading, or one without a state of charge (a charger, a thermostat)
    SocBand.UNKNOWN: Q(**{f"{_SOC}__isnull": True}),
}
LAST_SEEN_SPANS = {
    LastSeen.WITHIN_15_MINUTES: timedelta(minutes=15),
    LastSeen.WITHIN_HOUR: timedelta(hours=1),
    LastSeen.WITHIN_DAY: timedelta(hours=24),
}


def soc_band_q(band: str) -> Q:
    """Devices whose latest reading's state of charge is in the band (`fleet.choices.SocBand`)."""
    return SOC_BANDS[SocBand(band)]


def last_seen_q(band: str, *, now: datetime) -> Q:
    """Devices that last reported within a span before `now`, more than 24 hours before it, or never
    (`fleet.choices.LastSeen`)."""
    band = LastSeen(band)
    if band == LastSeen.NEVER:
        return Q(last_seen_at__isnull=True)
    if band == LastSeen.OLDER:
        return Q(last_seen_at__lt=now - LAST_SEEN_SPANS[LastSeen.WITHIN_DAY])
    return Q(last_seen_at__gte=now - LAST_SEEN_SPANS[band])


def fleet_state_grid(*, workspace_ids: Iterable[int]) -> dict:
    """The workspaces' devices by state × manufacturer, in one grouped query: {"states": [(value, label)],
    "manufacturers": [{"id", "slug", "name"}], "cells": {(state, manufacturer_id): n}, "by_state": {state: n},
    "by_manufacturer": {manufacturer_id: n}, "total": n}. Only manufacturers with a device are listed."""
    rows = (
        Device.objects.filter(workspace_id__in=list(workspace_ids))
        .values_list("state", "manufacturer_id", "manufacturer__slug", "manufacturer__name")
        .annotate(n=Count("pk"))
        .order_by()
    )
    cells, by_state, by_maker, makers = {}, dict.fromkeys(DeviceState.values, 0), {}, {}
    for state, maker_id, slug, name, n in rows:
        cells[(state, maker_id)] = n
        by_state[state] = by_state.get(state, 0) + n
        by_maker[maker_id] = by_maker.get(maker_id, 0) + n
        makers[maker_id] = {"id": maker_id, "slug": slug, "name": name}
    return {
        "states": list(DeviceState.choices),
        "manufacturers": sorted(makers.values(), key=lambda m: m["name"].lower()),
        "cells": cells,
        "by_state": by_state,
        "by_manufacturer": by_maker,
        "total": sum(by_state.values()),
    }


def devices_offline(*, workspace_ids: Iterable[int], limit: int = 10) -> tuple[int, list[Device]]:
    """How many devices are offline, and the `limit` offline the longest (since their state changed to offline),
    longest first: two queries."""
    offline = Device.objects.filter(workspace_id__in=list(workspace_ids), state=DeviceState.OFFLINE)
    return offline.count(), list(
        offline.select_related("manufacturer", "contact")
        .only(
            "pk",
            "workspace_id",
            "system_identifier",
            "state",
            "state_changed_at",
            "state_reason",
            "last_seen_at",
            "manufacturer__slug",
            "manufacturer__name",
            "contact__reference_id",
        )
        .order_by("state_changed_at", "pk")[:limit]
    )


def fleet_telemetry_freshness(*, workspace_ids: Iterable[int], now: datetime) -> dict:
    """How fresh the live devices' (Device on Workspace) latest readings are, in one aggregate query: the
    devices last seen within 15 minutes, 1 hour and 24 hours (cumulative), more than 24 hours ago, never, and
    the devices offline (not live), each a count: {"live", "offline", "seen_15m", "seen_1h", "seen_24h",
    "seen_older", "seen_never"}."""
    live = Q(state=DeviceState.ON_WORKSPACE)
    return Device.objects.filter(workspace_id__in=list(workspace_ids)).aggregate(
        live=Count("pk", filter=live),
        offline=Count("pk", filter=Q(state=DeviceState.OFFLINE)),
        **{f"seen_{band}": Count("pk", filter=live & last_seen_q(band, now=now)) for band in LastSeen.values},
    )


# -- metrics: energy time series in Texture's shape (`/v1/metrics`) -----------------------------------------
#
# One SQL statement per request whatever the device count: the scoped devices, their 15-minute intervals (the
# rollups, and the raw readings of the two newest intervals, which the rollup job may not have caught up with),
# each interval's value, and the buckets (GROUP BY in the database). See docs/integrators.md, "Metrics".

METRIC_INTERVAL = timedelta(minutes=15)  # the rollups' interval (fleet.services.ROLLUP_MINUTES)
_INTERVAL_HOURS = 0.25
_RAW_COLUMNS = ["charge_rate_w", "grid_power_w", "solar_power_w", "charger_wattage_w", "charge_percentage"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric reads: `expression` turns one interval's mean powers (columns `{p}charge_rate_w`…) into
    watts (summed as Wh over the bucket) or, for `latest`, into the value itself (the newest in the bucket)."""

    name: str
    label: str
    unit: str
    display_unit: str
    aggregation: str  # "sum" (energy, Wh) | "latest"
    expression: str
    description: str


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec(
            "consumption",
            "energyConsumedWhr",
            "WATT_HOURS",
            "whr",
            "sum",
            # a battery's charging (charge rate below 0); a charger's charging power (no charge rate) otherwise
            "CASE WHEN {p}charge_rate_w < 0 THEN -{p}charge_rate_w"
            " WHEN {p}charge_rate_w IS NOT NULL THEN 0 ELSE {p}charger_wattage_w END",
            "Energy into the device: a battery's charging, or a charger's (Wh).",
        ),
        MetricSpec(
            "production",
            "energyProducedWhr",
            "WATT_HOURS",
            "whr",
            "sum",
            "CASE WHEN {p}charge_rate_w > 0 THEN {p}charge_rate_w WHEN {p}charge_rate_w IS NOT NULL THEN 0 END",
            "Energy out of a battery: its discharging (Wh).",
        ),
        MetricSpec(
            "generation",
            "energyGeneratedWhr",
            "WATT_HOURS",
            "whr",
            "sum",
            "CASE WHEN {p}solar_power_w > 0 THEN {p}solar_power_w WHEN {p}solar_power_w IS NOT NULL THEN 0 END",
            "Solar energy the device's site produced, as the device reports it (Wh).",
        ),
        MetricSpec(
            "grid-energy",
            "gridEnergyWhr",
            "WATT_HOURS",
            "whr",
            "sum",
            "{p}grid_power_w",
            "Net energy at the site's grid meter as the device reports it: + imported, − exported (Wh).",
        ),
        MetricSpec(
            "storage",
            "chargePercentage",
            "PERCENT",
            "%",
            "latest",
            "{p}charge_percentage",
            "State of charge (%) of the bucket's newest 15-minute interval (the portal does not hold capacities).",
        ),
    ]
}


@dataclass(frozen=True)
class MetricWindow:
    """A `windowSize`: `trunc` is PostgreSQL's date_trunc unit; `local` buckets follow the wall clock of the
    request's timezone (days, weeks from Monday, months, years), the others the UTC clock."""

    name: str
    nominal: timedelta  # the shortest such bucket (bounds how many a range holds)
    trunc: str
    local: bool
    rate_unit: str
    rate_display: str
    rate_scale: int


WINDOWS: dict[str, MetricWindow] = {
    w.name: w
    for w in [
        MetricWindow("FIFTEEN_MINUTES", timedelta(minutes=15), "", False, "MINUTE", "min", 15),
        MetricWindow("HOUR", timedelta(hours=1), "hour", False, "HOUR", "h", 1),
        MetricWindow("DAY", timedelta(days=1), "day", True, "DAY", "d", 1),
        MetricWindow("WEEK", timedelta(days=7), "week", True, "WEEK", "w", 1),
        MetricWindow("MONTH", timedelta(days=28), "month", True, "MONTH", "mo", 1),
        MetricWindow("YEAR", timedelta(days=365), "year", True, "YEAR", "y", 1),
    ]
}

_SQLITE_LOCAL_FORMATS = {
    "day": "strftime('%%Y-%%m-%%d 00:00:00', {local})",
    "week": "date({local}, '-6 days', 'weekday 1') || ' 00:00:00'",  # back to the week's Monday
    "month": "strftime('%%Y-%%m-01 00:00:00', {local})",
    "year": "strftime('%%Y-01-01 00:00:00', {local})",
}


@dataclass(frozen=True)
class MetricPoint:
    ts: datetime  # the bucket's start (aware, UTC)
    value: float
    device_id: int | None  # None when grouped by site
    site_id: int
    contact_id: int


def metric_interval_start(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def _utc_offset_changes(zone: tzinfo, start: datetime, end: datetime) -> tuple[int, list[tuple[datetime, int]]]:
    """The zone's UTC offset (seconds) at `start` and each change of it up to `end`, as (instant, new offset):
    what SQLite, which knows no time zones, needs to read a UTC time as local wall-clock time."""

    def offset(epoch: int) -> int:
        return int(datetime.fromtimestamp(epoch, UTC).astimezone(zone).utcoffset().total_seconds())

    low_end, high_end = math.floor(start.timestamp()), math.ceil(end.timestamp())
    first = offset(low_end)
    changes: list[tuple[datetime, int]] = []
    day, current = low_end, first
    while day < high_end:
        following = min(day + 86_400, high_end)
        if offset(following) != current:
            low, high = day, following  # the change lies in (low, high]: bisect to the second
            while high - low > 1:
                middle = (low + high) // 2
                if offset(middle) == current:
                    low = middle
                else:
                    high = middle
            current = offset(high)
            changes.append((datetime.fromtimestamp(high, UTC), current))
        day = following
    return first, changes


def _bucket_sql(window: MetricWindow, zone: tzinfo, after: datetime, before: datetime) -> tuple[str, list]:
    """SQL for the start of the bucket holding `t` (an interval start): a naive timestamp on the UTC clock
    (sub-day windows) or on the zone's wall clock (DAY and longer)."""
    if connection.vendor == "postgresql":
        if not window.trunc:
            return "(t AT TIME ZONE 'UTC')", []
        if not window.local:
            return f"date_trunc('{window.trunc}', t AT TIME ZONE 'UTC')", []
        return f"date_trunc('{window.trunc}', t AT TIME ZONE %s)", [zone_name(zone)]
    if not window.trunc:
        return "t", []
    if not window.local:
        return "strftime('%%Y-%%m-%%d %%H:00:00', t)", []
    first, changes = _utc_offset_changes(zone, after - timedelta(days=1), before + timedelta(days=1))
    cases, params = [], []
    for at, seconds in reversed(changes):
        cases.append("WHEN t >= %s THEN %s")
        params += [connection.ops.adapt_datetimefield_value(at.replace(tzinfo=None)), f"{seconds:+d} seconds"]
    modifier = f"CASE {' '.join(cases)} ELSE %s END" if cases else "%s"
    params.append(f"{first:+d} seconds")
    return _SQLITE_LOCAL_FORMATS[window.trunc].format(local=f"datetime(t, {modifier})"), params


def _naive(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _raw_interval_sql() -> str:
    """The 15-minute interval a raw reading falls in, as the rollup job computes it."""
    if connection.vendor == "postgresql":
        return "to_timestamp(floor(extract(epoch FROM measured_at) / 900) * 900)"
    return (
        "strftime('%%Y-%%m-%%d %%H:', measured_at) || "
        "printf('%%02d', (CAST(strftime('%%M', measured_at) AS INTEGER) / 15) * 15) || ':00'"
    )


def metric_series(
    *,
    workspace_id: int,
    metric: str,
    after: datetime,
    before: datetime,
    window: str = "FIFTEEN_MINUTES",
    zone: tzinfo = UTC,
    device_ids: Iterable[int] | None = None,
    site_ids: Iterable[int] | None = None,
    group_by_site: bool = False,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[MetricPoint]:
    """A metric of the workspace's devices (those of `device_ids` and of `site_ids`) per bucket, in one query.

    The intervals counted are the 15-minute ones that start in [`after` rounded down to the quarter hour,
    `before`). Intervals before the two newest come from the rollups; the two newest from the raw readings
    (the rollup job runs every few minutes and the current interval is unfinished). An interval's energy is
    its mean power × 15 minutes (× the part gone by, for the current one). Sums are per device per bucket, or
    per site with `group_by_site`; `latest` metrics take each device's newest interval in the bucket, averaged
    over the site's devices with `group_by_site`. Buckets without readings are left out (sparse). Ordered by
    series (device or site id), then time; at most `limit` points."""
    spec, size = METRICS[metric], WINDOWS[window]
    now = now or timezone.now()
    ops = connection.ops
    start = metric_interval_start(after.astimezone(UTC))
    current = metric_interval_start(now.astimezone(UTC))
    raw_from = current - METRIC_INTERVAL

    def at(value: datetime):
        return ops.adapt_datetimefield_value(value)

    scope, scope_params = "d.workspace_id = %s", [workspace_id]
    for column, ids in (("id", device_ids), ("site_id", site_ids)):
        if ids is not None:
            ids = sorted(set(ids))
            if not ids:
                return []
            scope += f" AND d.{column} IN ({', '.join(['%s'] * len(ids))})"
            scope_params += ids
    # The intervals' device filter. Ids as a list, not a sub-select: PostgreSQL then estimates the rows right and
    # reads the rollups' (device, interval_start) index (a sub-select made it scan the whole table, 20× slower,
    # bench/metrics_latency.py). Only sites need the sub-select. The join below checks the workspace again.
    if device_ids is not None:
        devices, devices_params = ", ".join(["%s"] * len(set(device_ids))), sorted(set(device_ids))
    else:
        devices = f"SELECT d.id FROM fleet_device d WHERE {scope}"  # noqa: S608 - placeholders only
        devices_params = scope_params

    branches, params = [], []
    if start < min(raw_from, before):
        branches.append(f"""
            SELECT r.device_id, r.interval_start AS t, {spec.expression.format(p="r.")} AS w,
                   CAST({_INTERVAL_HOURS} AS DOUBLE PRECISION) AS h
            FROM fleet_telemetryrollup r
            WHERE r.workspace_id = %s AND r.device_id IN ({devices})
              AND r.interval_start >= %s AND r.interval_start < %s
        """)  # noqa: S608 - the interpolated parts are this module's constants; values go as parameters
        params += [workspace_id, *devices_params, at(start), at(min(raw_from, before))]
    tail_from = max(start, raw_from)
    if tail_from < before:
        elapsed = min(max((now - current).total_seconds(), 0.0) / 3600, _INTERVAL_HOURS)
        means = ", ".join(f"avg({c}) AS {c}" for c in _RAW_COLUMNS)
        branches.append(f"""
            SELECT x.device_id, x.t, {spec.expression.format(p="x.")} AS w,
                   CASE WHEN x.unfinished = 1 THEN CAST(%s AS DOUBLE PRECISION)
                        ELSE CAST({_INTERVAL_HOURS} AS DOUBLE PRECISION) END AS h
            FROM (
                SELECT device_id, {_raw_interval_sql()} AS t,
                       max(CASE WHEN measured_at >= %s THEN 1 ELSE 0 END) AS unfinished, {means}
                FROM fleet_telemetryreading
                WHERE workspace_id = %s AND device_id IN ({devices})
                  AND measured_at >= %s AND measured_at < %s
                GROUP BY device_id, t
            ) x
        """)  # noqa: S608
        params += [elapsed, at(current), workspace_id, *devices_params, at(tail_from), at(before)]
    if not branches:
        return []

    bucket, bucket_params = _bucket_sql(size, zone, start, before)
    located = f"""
        SELECT d.id AS device_id, d.site_id, d.contact_id, i.t, {bucket} AS b, i.w, i.h
        FROM ({" UNION ALL ".join(branches)}) i JOIN fleet_device d ON d.id = i.device_id
        WHERE {scope} AND i.w IS NOT NULL
    """  # noqa: S608
    params = [*bucket_params, *params, *scope_params]
    if spec.aggregation == "latest":  # each device's newest interval in the bucket
        rows = f"""
            SELECT device_id, site_id, contact_id, b, w AS v FROM (
                SELECT device_id, site_id, contact_id, b, w,
                       row_number() OVER (PARTITION BY device_id, b ORDER BY t DESC) AS n
                FROM ({located}) l
            ) z WHERE n = 1
        """  # noqa: S608
        site_value = "avg(v)"
    else:
        rows = f"SELECT device_id, site_id, contact_id, b, w * h AS v FROM ({located}) l"  # noqa: S608
        site_value = "sum(v)"
    if group_by_site:
        sql = f"""
            SELECT NULL AS device_id, site_id, contact_id, b, {site_value} AS v FROM ({rows}) p
            GROUP BY site_id, contact_id, b ORDER BY site_id, b
        """  # noqa: S608
    elif spec.aggregation == "latest":
        sql = f"SELECT device_id, site_id, contact_id, b, v FROM ({rows}) p ORDER BY device_id, b"  # noqa: S608
    else:
        sql = f"""
            SELECT device_id, site_id, contact_id, b, sum(v) AS v FROM ({rows}) p
            GROUP BY device_id, site_id, contact_id, b ORDER BY device_id, b
        """  # noqa: S608
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    bucket_zone = zone if size.local else UTC
    return [
        MetricPoint(
            ts=_naive(b).replace(tzinfo=bucket_zone).astimezone(UTC),
            value=round(float(v), 3),
            device_id=device_id,
            site_id=site_id,
            contact_id=contact_id,
        )
        for device_id, site_id, contact_id, b, v in found
    ]


# -- alerts ----------------------------------------------------------------------------------------------------

# What a stuck reading repeats: the values a live battery or inverter moves every few minutes (a home's load
# alone moves grid power). Vehicles and chargers sit unchanged for hours when parked or idle, so they are not
# checked (settings.ALERT_STUCK_TELEMETRY_DEVICE_TYPES).
STUCK_FIELDS = ("charge_percentage", "charge_rate_w", "grid_power_w", "solar_power_w")


def _telemetry_constancy_sql(*, filters: str, having: str) -> str:
    # per field: never reported, or reported by every reading with one value
    same = " AND ".join(
        f"(count(r.{f}) = 0 OR (count(r.{f}) = count(*) AND min(r.{f}) = max(r.{f})))" for f in STUCK_FIELDS
    )
    reported = " + ".join(f"count(r.{f})" for f in STUCK_FIELDS)
    return f"""
        SELECT r.device_id, d.workspace_id, d.system_identifier, count(*)
          FROM fleet_telemetryreading AS r JOIN fleet_device AS d ON d.id = r.device_id
         WHERE r.measured_at >= %s {filters}
         GROUP BY r.device_id, d.workspace_id, d.system_identifier
        HAVING {having.format(same=same, reported=reported)}
    """  # noqa: S608 - the column names are this module's constants; values go as parameters


def devices_with_stuck_telemetry(
    *, since: datetime, first_by: datetime, min_readings: int, device_types: Iterable[str]
) -> list[tuple[int, int, str, int]]:
    """Devices on the workspace, of these types, whose readings measured since `since` are at least
    `min_readings`, start by `first_by` (they cover the window) and all carry the same values of
    STUCK_FIELDS (at least one of them reported): (device id, workspace id, serial, readings). One
    statement; it reads the window's readings once (the BRIN index on `measured_at`)."""
    types = sorted(set(device_types))
    if not types:
        return []
    ops = connection.ops
    sql = _telemetry_constancy_sql(
        filters=f"AND d.state = %s AND d.device_type IN ({', '.join(['%s'] * len(types))})",
        having="count(*) >= %s AND min(r.measured_at) <= %s AND {same} AND ({reported}) > 0",
    )
    params = [ops.adapt_datetimefield_value(since), DeviceState.ON_WORKSPACE, *types, min_readings]
    params.append(ops.adapt_datetimefield_value(first_by))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def devices_with_changing_telemetry(*, since: datetime, device_ids: Iterable[int]) -> list[tuple[int, int, str, int]]:
    """Of these devices, those whose readings measured since `since` do not all carry the same values of
    STUCK_FIELDS: (device id, workspace id, serial, readings)."""
    ids = sorted(set(device_ids))
    if not ids:
        return []
    sql = _telemetry_constancy_sql(
        filters=f"AND r.device_id IN ({', '.join(['%s'] * len(ids))})", having="NOT ({same})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(since), *ids])
        return [tuple(row) for row in cursor.fetchall()]


def alerts_needing_attention_q(now: datetime | None = None):
    """Open and not snoozed (or its snooze is over): what staff have yet to look at."""
    from django.db.models import Q

    from fleet.choices import AlertStatus

    now = now or timezone.now()
    return Q(status=AlertStatus.OPEN) & (Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now))
