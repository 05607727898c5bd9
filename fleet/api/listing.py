"""The device list's fast path: `GET /v1/devices` reads `.values()` rows and builds each body in one pass.

Why not the DeviceSerializer: at 100 rows a page, building model instances (device, manufacturer, contact,
latest reading), prefetching tags onto each, and DRF's per-field `get_attribute` / `to_representation` calls
cost about three times the page's SQL (bench/api_latency.py). The body is the serializer's, byte for byte —
tests/fleet/test_api_listing.py renders the same pages both ways and compares them, and fails when the
serializer gains a field this module does not build. One-object reads and writes keep the serializer.

On PostgreSQL the page query brings each device's tag names too (an ARRAY subquery), so a page is two
queries (the key, the page); elsewhere (SQLite in development and tests) the tags are a third query, as before.
"""

from functools import cache
from operator import itemgetter

from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import OuterRef
from django.db.models.query import ValuesIterable
from django.utils import timezone

from fleet.models import Device
from texture_portal.api.renderers import PlainJSON, plain_float

DEVICE_COLUMNS = (
    "id",
    "created",
    "last_updated",
    "system_identifier",
    "manufacturer__slug",
    "device_type",
    "name",
    "state",
    "state_changed_at",
    "state_reason",
    "contact_id",
    "contact__reference_id",
    "site_id",
    "oem_device_id",
    "last_seen_at",
    "grid_services_status",
    "grid_services_checked_at",
    "latest_telemetry_id",
)
TELEMETRY_COLUMNS = (
    "measured_at",
    "received_at",
    "charge_percentage",
    "charge_rate_w",
    "grid_power_w",
    "solar_power_w",
    "backup_reserve_percent",
    "charging_state",
    "grid_status",
    "strategy",
    "is_storm_mode_enabled",
    "is_storm_mode_active",
    "is_plugged_in",
    "charger_wattage_w",
    "charge_limit_percent",
    "range_km",
)
LIST_COLUMNS = DEVICE_COLUMNS + tuple(f"latest_telemetry__{column}" for column in TELEMETRY_COLUMNS)


# The body's fields from the row's columns, in the serializer's order (`tags` and `latestTelemetry` between and
# after them); the times and floats among them are named below.
_BEFORE_TAGS = (
    ("createdAt", "created"),
    ("updatedAt", "last_updated"),
    ("id", "id"),
    ("systemIdentifier", "system_identifier"),
    ("manufacturerSlug", "manufacturer__slug"),
    ("deviceType", "device_type"),
    ("name", "name"),
    ("state", "state"),
    ("stateChangedAt", "state_changed_at"),
    ("stateReason", "state_reason"),
    ("contactId", "contact_id"),
    ("referenceId", "contact__reference_id"),
    ("siteId", "site_id"),
)
_AFTER_TAGS = (
    ("manufacturerDeviceId", "oem_device_id"),
    ("lastSeenAt", "last_seen_at"),
    ("gridServicesStatus", "grid_services_status"),
    ("gridServicesCheckedAt", "grid_services_checked_at"),
)
_TELEMETRY = (
    ("measuredAt", "measured_at"),
    ("receivedAt", "received_at"),
    ("chargePercentage", "charge_percentage"),
    ("chargeRate", "charge_rate_w"),
    ("gridPower", "grid_power_w"),
    ("solarPower", "solar_power_w"),
    ("backupReserve", "backup_reserve_percent"),
    ("chargingState", "charging_state"),
    ("gridStatus", "grid_status"),
    ("strategy", "strategy"),
    ("isStormModeEnabled", "is_storm_mode_enabled"),
    ("isStormModeActive", "is_storm_mode_active"),
    ("isPluggedIn", "is_plugged_in"),
    ("chargerWattage", "charger_wattage_w"),
    ("chargeLimit", "charge_limit_percent"),
    ("range", "range_km"),
)
_DEVICE_TIMES = ("createdAt", "updatedAt", "stateChangedAt", "lastSeenAt", "gridServicesCheckedAt")
_TELEMETRY_TIMES = ("measuredAt", "receivedAt")
_TELEMETRY_FLOATS = ("chargePercentage", "chargeRate", "gridPower", "solarPower", "backupReserve")
_TELEMETRY_FLOATS += ("chargerWattage", "chargeLimit", "range")

_before_tags = itemgetter(*(column for _, column in _BEFORE_TAGS))
_before_tags_keys = tuple(key for key, _ in _BEFORE_TAGS)
_after_tags = itemgetter(*(column for _, column in _AFTER_TAGS))
_after_tags_keys = tuple(key for key, _ in _AFTER_TAGS)
_telemetry = itemgetter(*(f"latest_telemetry__{column}" for _, column in _TELEMETRY))
_telemetry_keys = tuple(key for key, _ in _TELEMETRY)


@cache
def _timestamptz_loader():
    """psycopg's own loader of `timestamptz` text (in C with psycopg[binary]); None off PostgreSQL."""
    if connection.vendor != "postgresql":
        return None
    import psycopg
    from psycopg.postgres import types

    return psycopg.adapters.get_loader(types["timestamptz"].oid, psycopg.pq.Format.TEXT)


_converters: dict[tuple, dict] = {}


class PageRowsIterable(ValuesIterable):
    """`.values()` rows read with psycopg's `timestamptz` loader rather than Django's.

    Django loads every timestamptz through a Python subclass of psycopg's Python loader (to set `tzinfo` to
    its own UTC object): about 300 values a page, a fifth of the request's Python. psycopg's loader gives the
    same instants in the session's zone (UTC, which Django sets), and the bodies convert every time to the
    current zone anyway. Registered on this query's cursor only; Django's field converters still apply."""

    def __iter__(self):
        queryset = self.queryset
        query = queryset.query
        compiler = query.get_compiler(queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return
        names = (
            list(query.selected)
            if query.selected
            else [
                *query.extra_select,
                *query.values_select,
                *query.annotation_select,
            ]
        )
        key = (queryset.db, *names)  # the same columns from the same template: the same converters
        converters = _converters.get(key)
        if converters is None:
            converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
            _converters[key] = converters
        loader = _timestamptz_loader()
        with compiler.connection.cursor() as cursor:
            if loader is not None:
                cursor.cursor.adapters.register_loader("timestamptz", loader)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = compiler.apply_converters(rows, converters)
        for row in rows:
            yield dict(zip(names, row, strict=True))


@cache
def _device_rows_template():
    """Built once per process: preparing 35 columns over four joins costs more than the page's other Python."""
    queryset = Device.objects.all()
    if connection.vendor == "postgresql":
        tag_names = Device.tags.through.objects.filter(device_id=OuterRef("pk")).values("devicetag__name")
        queryset = queryset.annotate(tag_names=ArraySubquery(tag_names)).values(*LIST_COLUMNS, "tag_names")
    else:
        queryset = queryset.values(*LIST_COLUMNS)
    queryset._iterable_class = PageRowsIterable
    return queryset


def device_list_rows():
    """The devices as values() rows with what a body needs (a fresh queryset: scope and filter it)."""
    return _device_rows_template().all()


def _tags_by_device(rows: list[dict]) -> dict[int, list[str]]:
    if rows and "tag_names" in rows[0]:
        return {row["id"]: row["tag_names"] for row in rows}
    tags: dict[int, list[str]] = {}
    through = Device.tags.through
    for device_id, name in through.objects.filter(device_id__in=[row["id"] for row in rows]).values_list(
        "device_id", "devicetag__name"
    ):
        tags.setdefault(device_id, []).append(name)
    return tags


def device_list_bodies(rows: list[dict], unplain: list | None = None) -> list[dict]:
    """The API bodies of `rows` (from `device_list_rows`), in their order (tags sorted as the serializer does:
    by code point, not by the database's collation). Times are datetimes in the current zone, which both of
    the API's renderers write as DRF's DateTimeField does (ISO 8601, `Z` for UTC); floats that only DRF's
    renderer spells right are appended to `unplain`."""
    zone = timezone.get_current_timezone()
    # the rows' times are in the database session's zone: converted only when the current one differs
    convert = connection.timezone_name != timezone.get_current_timezone_name()
    tags = _tags_by_device(rows)
    unplain = [] if unplain is None else unplain
    bodies = []
    for row in rows:
        body = dict(zip(_before_tags_keys, _before_tags(row), strict=True))
        body["tags"] = sorted(tags.get(row["id"], ()))
        body.update(zip(_after_tags_keys, _after_tags(row), strict=True))
        if row["latest_telemetry_id"] is not None and row["latest_telemetry__measured_at"] is not None:
            telemetry = dict(zip(_telemetry_keys, _telemetry(row), strict=True))
            for key in _TELEMETRY_FLOATS:
                value = telemetry[key]
                if value is not None and (type(value) is not float or not plain_float(value)):
                    telemetry[key] = value = float(value)  # as the serializer's FloatField
                    if not plain_float(value):
                        unplain.append(value)
            if convert:
                for key in _TELEMETRY_TIMES:
                    if telemetry[key] is not None:
                        telemetry[key] = telemetry[key].astimezone(zone)
            body["latestTelemetry"] = telemetry
        else:
            body["latestTelemetry"] = None
        if convert:
            for key in _DEVICE_TIMES:
                if body[key] is not None:
                    body[key] = body[key].astimezone(zone)
        bodies.append(body)
    return bodies


def device_list_response(view, rows: list[dict]):
    """The paginated response of `rows` for `view` (a list with the API's cursor pagination), marked
    PlainJSON — orjson renders it — when everything in it is spelled by orjson as by DRF (in UTC, no odd
    floats)."""
    unplain = []
    response = view.get_paginated_response(device_list_bodies(rows, unplain))
    if not unplain and timezone.get_current_timezone_name() == "UTC":
        response.data = PlainJSON(response.data)
    return response
