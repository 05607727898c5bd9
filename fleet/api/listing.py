"""The device list's fast path: `GET /v1/devices` reads the page's rows and builds each body in one pass.

Why not the DeviceSerializer: at 100 rows a page, building model instances (device, manufacturer, contact,
latest reading), prefetching tags onto each, and DRF's per-field `get_attribute` / `to_representation` calls
cost about three times the page's SQL (bench/api_latency.py). The body is the serializer's, byte for byte —
tests/fleet/test_api_listing.py renders the same pages both ways and compares them, and fails when the
serializer gains a field this module does not build. One-object reads and writes keep the serializer.

On PostgreSQL the page query brings each device's tag names too (an ARRAY subquery), so a page is two
queries (the key, the page); elsewhere (SQLite in development and tests) the tags are a third query, as before.

The queryset the views filter and paginate (`device_list_rows`) yields the bodies themselves: DRF's cursor
pagination reads a row's position from its `id`, which a body has, and a page is built once, from tuples.
"""

from functools import cache
from operator import itemgetter

from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import CharField, OuterRef
from django.db.models.expressions import RawSQL
from django.db.models.query import BaseIterable
from django.utils import timezone

from fleet.models import Device
from texture_portal.api.renderers import PlainJSON, plain_floats

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


# The body's fields from the row's columns, in the serializer's order (`tags` between them,
# `latestTelemetry` last); the times and floats among them are named below.
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


class _Layout:
    """Where each body field sits in a row of the page query (its columns' order), as item getters."""

    def __init__(self, names: list[str]):
        index = {name: position for position, name in enumerate(names)}

        def getter(columns):
            return itemgetter(*(index[column] for column in columns))

        self.id = index["id"]
        self.tags = index.get("tag_names")  # None: the tags are a query of their own
        self.latest_telemetry_id = index["latest_telemetry_id"]
        self.measured_at = index["latest_telemetry__measured_at"]
        self.before_tags_keys = tuple(key for key, _ in _BEFORE_TAGS)
        self.before_tags = getter(column for _, column in _BEFORE_TAGS)
        self.after_tags_keys = tuple(key for key, _ in _AFTER_TAGS)
        self.after_tags = getter(column for _, column in _AFTER_TAGS)
        self.telemetry_keys = tuple(key for key, _ in _TELEMETRY)
        self.telemetry = getter(f"latest_telemetry__{column}" for _, column in _TELEMETRY)


@cache
def _timestamptz_loader():
    """psycopg's own loader of `timestamptz` text (in C with psycopg[binary]); None off PostgreSQL."""
    if connection.vendor != "postgresql":
        return None
    import psycopg
    from psycopg.postgres import types

    return psycopg.adapters.get_loader(types["timestamptz"].oid, psycopg.pq.Format.TEXT)


_layouts: dict[tuple, tuple[_Layout, dict]] = {}


class DeviceBodiesIterable(BaseIterable):
    """The page's API bodies, built from the page query's rows (tuples) in one pass.

    The rows are read with psycopg's `timestamptz` loader rather than Django's: Django loads every timestamptz
    through a Python subclass of psycopg's Python loader (to set `tzinfo` to its own UTC object), about 500
    values a page and a fifth of the request's Python; psycopg's gives the same instants in the session's zone.
    Registered on this query's cursor only; Django's field converters still apply."""

    def __iter__(self):
        queryset = self.queryset
        query = queryset.query
        compiler = query.get_compiler(queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return
        # the columns' names in the SELECT's order (as Django's ValuesIterable reads them)
        names = tuple(query.selected or (*query.extra_select, *query.values_select, *query.annotation_select))
        key = (queryset.db, *names)  # the same columns from the same template: the same layout and converters
        if key not in _layouts:
            columns = [column[0] for column in compiler.select[: compiler.col_count]]
            _layouts[key] = (_Layout(list(names)), compiler.get_converters(columns))
        layout, converters = _layouts[key]
        loader = _timestamptz_loader()
        with compiler.connection.cursor() as cursor:
            if loader is not None:
                cursor.cursor.adapters.register_loader("timestamptz", loader)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = list(compiler.apply_converters(rows, converters))
        yield from _bodies(rows, layout)


def _bodies(rows: list, layout: _Layout) -> list[dict]:
    """The bodies of `rows`, in their order: tags sorted as the serializer sorts them (by code point, not by
    the database's collation), times in the current zone (both of the API's renderers write them as DRF's
    DateTimeField does), floats as the serializer's FloatField gives them."""
    zone = timezone.get_current_timezone()
    # the rows' times are in the database session's zone: converted only when the current one differs
    convert = connection.timezone_name != timezone.get_current_timezone_name()
    tags = _tags_of(rows, layout)
    before_tags, before_tags_keys = layout.before_tags, layout.before_tags_keys
    after_tags, after_tags_keys = layout.after_tags, layout.after_tags_keys
    telemetry_of, telemetry_keys = layout.telemetry, layout.telemetry_keys
    id_at, reading_at, measured_at = layout.id, layout.latest_telemetry_id, layout.measured_at
    bodies = []
    for row in rows:
        body = dict(zip(before_tags_keys, before_tags(row), strict=True))
        body["tags"] = sorted(tags.get(row[id_at]) or ())
        body.update(zip(after_tags_keys, after_tags(row), strict=True))
        if row[reading_at] is not None and row[measured_at] is not None:
            telemetry = dict(zip(telemetry_keys, telemetry_of(row), strict=True))
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
    _floats_as_the_serializer(bodies)
    return bodies


def _tags_of(rows: list, layout: _Layout) -> dict[int, list[str]]:
    if layout.tags is not None:
        return {row[layout.id]: row[layout.tags] for row in rows}
    tags: dict[int, list[str]] = {}
    through = Device.tags.through
    ids = [row[layout.id] for row in rows]
    for device_id, name in through.objects.filter(device_id__in=ids).values_list("device_id", "devicetag__name"):
        tags.setdefault(device_id, []).append(name)
    return tags


@cache
def _device_rows_template():
    """Built once per process: preparing 35 columns over four joins costs more than the page's other Python.

    On PostgreSQL the tags' ARRAY subquery is compiled here, once, and kept as SQL: compiling it again for
    every page (a query of its own inside the page's) was a sixth of the page's compile time. It refers to the
    device by the table's own name, which is the page query's alias for it."""
    queryset = Device.objects.all()
    if connection.vendor == "postgresql":
        tag_names = Device.tags.through.objects.filter(device_id=OuterRef("pk")).values("devicetag__name")
        query = queryset.query
        sql, params = (
            ArraySubquery(tag_names).resolve_expression(query).as_sql(query.get_compiler(queryset.db), connection)
        )
        assert f'"{Device._meta.db_table}"."id"' in sql, sql
        tag_names = RawSQL(sql, params, output_field=ArrayField(CharField()))  # noqa: S611 (Django's own SQL)
        queryset = queryset.annotate(tag_names=tag_names).values(*LIST_COLUMNS, "tag_names")
    else:
        queryset = queryset.values(*LIST_COLUMNS)
    queryset._iterable_class = DeviceBodiesIterable
    return queryset


def device_list_rows():
    """The devices as API bodies (a fresh queryset: scope, filter and paginate it; it yields one body per
    device, in the query's order)."""
    return _device_rows_template().all()


def _telemetry_floats(bodies: list[dict]) -> list:
    return [
        telemetry[key]
        for body in bodies
        if (telemetry := body["latestTelemetry"]) is not None
        for key in _TELEMETRY_FLOATS
    ]


def _floats_as_the_serializer(bodies: list[dict]) -> None:
    """Make each reading's float a float (as the serializer's FloatField does) where the database gave another
    number type (never on PostgreSQL or SQLite: checked in one pass)."""
    if any(type(value) is not float for value in _telemetry_floats(bodies) if value is not None):
        for body in bodies:
            if (telemetry := body["latestTelemetry"]) is not None:
                for key in _TELEMETRY_FLOATS:
                    if telemetry[key] is not None:
                        telemetry[key] = float(telemetry[key])


def device_list_response(view, bodies: list[dict]):
    """The paginated response of a page of `device_list_rows` for `view` (a list with the API's cursor
    pagination), marked PlainJSON — orjson renders it — when everything in it is spelled by orjson as by DRF
    (in UTC, no odd floats)."""
    response = view.get_paginated_response(bodies)
    if timezone.get_current_timezone_name() == "UTC" and plain_floats(_telemetry_floats(bodies)):
        response.data = PlainJSON(response.data)
    return response
