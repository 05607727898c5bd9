"""`/v1/metrics`: energy time series of the key's workspace in Texture's shape (`{data: [{ts, v, deviceId,
siteId, customerId}], meta: {…}}`), one SQL statement per request (`fleet.selectors.metric_series`).

`GET /v1/metrics?metric=consumption&…` and Texture's path form `GET /v1/metrics/consumption?…` are the same.
What each metric means for our readings, the buckets' clocks and the limits: docs/integrators.md, "Metrics".
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from fleet.selectors import METRICS, WINDOWS, metric_series
from texture_portal.api.views import WorkspaceApiView
from texture_portal.filters import MAX_ID
from texture_portal.timezones import timezone_names, zone_or_utc

RELATIVE_RANGES = {
    "1h": timedelta(hours=1),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "1y": timedelta(days=365),
}
DEFAULT_RELATIVE = "1d"
MAX_BUCKETS = 10_000  # per series: what one range may hold for its windowSize
MAX_POINTS = 50_000  # in one response, all series together
# per id filter: two full filters and the other parameters stay under DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000), past
# which Django refuses the request before the API can answer
MAX_IDS = 400
MAX_RANGE = timedelta(days=3660)  # ten years: no window size may read more
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


# -- the response --------------------------------------------------------------------------------------------


class MetricPointSerializer(serializers.Serializer):
    ts = serializers.DateTimeField(help_text="The bucket's start (UTC).")
    v = serializers.FloatField(help_text="Wh summed over the bucket, or the latest value (`meta.unit`).")
    deviceId = serializers.IntegerField(allow_null=True, help_text="null when grouped by site.")
    siteId = serializers.IntegerField()
    customerId = serializers.IntegerField(help_text="The site's contact.")


class MetricRateSerializer(serializers.Serializer):
    unit = serializers.CharField(help_text="The bucket's unit: MINUTE, HOUR, DAY, WEEK, MONTH, YEAR.")
    displayUnit = serializers.CharField()
    scaleFactor = serializers.IntegerField(help_text="Units per bucket (15 for FIFTEEN_MINUTES).")


class MetricDomainMetaSerializer(serializers.Serializer):
    label = serializers.CharField()
    sparse = serializers.BooleanField()
    rate = MetricRateSerializer()


class MetricMetaSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="e.g. energyConsumedWhr.")
    series = serializers.ListField(
        child=serializers.IntegerField(), help_text="The series in `data`: device ids, or site ids with groupBy=SITE."
    )
    sparse = serializers.BooleanField(help_text="Always true: buckets without readings are left out.")
    unit = serializers.CharField(help_text="WATT_HOURS, or PERCENT for storage.")
    displayUnit = serializers.CharField(help_text="whr, or % for storage.")
    domainMeta = MetricDomainMetaSerializer()
    metric = serializers.ChoiceField(choices=list(METRICS))
    aggregation = serializers.ChoiceField(choices=["sum", "latest"])
    description = serializers.CharField()
    windowSize = serializers.ChoiceField(choices=list(WINDOWS))
    groupBy = serializers.CharField(allow_null=True)
    filterRangeAfter = serializers.DateTimeField(help_text="The first interval counted (rounded down to 15 min).")
    filterRangeBefore = serializers.DateTimeField()
    timezone = serializers.CharField(help_text="The clock of DAY and longer buckets (IANA name).")


class MetricSeriesSerializer(serializers.Serializer):
    data = MetricPointSerializer(many=True)
    meta = MetricMetaSerializer()


# -- the request ---------------------------------------------------------------------------------------------


def _ids(request, name: str, errors: dict) -> list[int] | None:
    """`name`, `name[]`, repeated or comma-separated; None when not sent."""
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    if not values:
        return None
    parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    bad = [
        part
        for part in parts
        if len(part) > 19 or not part.isascii() or not part.isdigit() or not 1 <= int(part) <= MAX_ID
    ]
    if bad or not parts:
        errors[name] = [f"Expected ids (positive integers), got “{(bad or [''])[0][:40]}”."]
        return None
    if len(set(parts)) > MAX_IDS:
        errors[name] = [f"At most {MAX_IDS} ids per request."]
        return None
    return sorted({int(part) for part in parts})


def _instant(request, name: str, errors: dict) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = parse_datetime(raw.strip())
    except ValueError:
        value = None
    if value is None:
        errors[name] = ["Expected an ISO 8601 date and time, e.g. 2026-07-14T00:00:00Z."]
        return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        value = None
    if value is None or not EARLIEST <= value <= LATEST:
        errors[name] = [f"Must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}."]
        return None
    return value


def _choice(request, name: str, choices, default, errors: dict):
    raw = request.query_params.get(name)
    if not raw:
        return default
    if raw not in choices:
        errors[name] = [f"“{raw[:40]}” is not one of {', '.join(choices)}."]
        return None
    return raw


def metric_query(request, metric: str | None, *, now: datetime) -> dict:
    """The request's parameters, checked all at once: a 400 names every bad one and why."""
    errors: dict[str, list[str]] = {}
    if metric is None:
        metric = request.query_params.get("metric")
        if not metric:
            errors["metric"] = [f"Required: one of {', '.join(METRICS)}."]
    if metric and metric not in METRICS:
        errors["metric"] = [f"Unknown metric “{metric[:40]}”: one of {', '.join(METRICS)}."]
    window = _choice(request, "windowSize", list(WINDOWS), "FIFTEEN_MINUTES", errors)
    group_by = _choice(request, "groupBy", ["SITE"], "", errors) or None
    relative = _choice(request, "filterRangeRelative", list(RELATIVE_RANGES), "", errors)
    zone_raw = request.query_params.get("timezone") or "UTC"
    if zone_raw not in timezone_names():
        errors["timezone"] = [f"“{zone_raw[:60]}” is not an IANA timezone name, e.g. America/Denver."]
    device_ids = _ids(request, "filterDeviceId", errors)
    site_ids = _ids(request, "filterSiteId", errors)
    if device_ids is None and site_ids is None and not {"filterDeviceId", "filterSiteId"} & set(errors):
        errors["filterDeviceId"] = ["Send filterDeviceId or filterSiteId (or both: devices of those sites)."]
    after = _instant(request, "filterRangeAfter", errors)
    before = _instant(request, "filterRangeBefore", errors)
    given = {"filterRangeAfter", "filterRangeBefore"} & set(request.query_params)
    if relative and given:
        errors["filterRangeRelative"] = ["Send either filterRangeRelative or filterRangeAfter/filterRangeBefore."]
    elif "filterRangeBefore" in given and "filterRangeAfter" not in given:
        errors["filterRangeAfter"] = ["Required with filterRangeBefore."]
    elif not given:
        after, before = now - RELATIVE_RANGES[relative or DEFAULT_RELATIVE], now
    elif after is not None and before is None and "filterRangeBefore" not in given:
        before = now
    if after is not None and before is not None and not errors.keys() & {"filterRangeAfter", "filterRangeBefore"}:
        if after >= before:
            errors["filterRangeAfter"] = ["Must be before filterRangeBefore (now, when it is not sent)."]
        elif before - after > MAX_RANGE:
            errors["filterRangeAfter"] = [f"The range may span at most {MAX_RANGE.days} days."]
        elif window in WINDOWS and (before - after) / WINDOWS[window].nominal > MAX_BUCKETS:
            errors["windowSize"] = [
                f"The range holds more than {MAX_BUCKETS:,} {window} buckets: use a larger windowSize or a "
                "shorter range."
            ]
    if errors:
        raise ValidationError(errors)
    return {
        "metric": metric,
        "window": window,
        "group_by": group_by,
        "zone": zone_or_utc(zone_raw),
        "device_ids": device_ids,
        "site_ids": site_ids,
        "after": after,
        "before": before,
    }


# -- the view ------------------------------------------------------------------------------------------------

_ID_LIST = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "maxItems": MAX_IDS}
PARAMETERS = [
    OpenApiParameter(
        "filterDeviceId",
        _ID_LIST,
        description="Device ids, repeated or comma-separated (`filterDeviceId[]` is accepted too). "
        "filterDeviceId or filterSiteId is required; a device of another workspace is simply not in the data.",
        explode=True,
    ),
    OpenApiParameter(
        "filterSiteId",
        _ID_LIST,
        description="Site ids (their devices), repeated or comma-separated (`filterSiteId[]` too). With "
        "filterDeviceId, the devices of both filters.",
        explode=True,
    ),
    OpenApiParameter(
        "filterRangeAfter",
        OpenApiTypes.DATETIME,
        description="Range start (ISO 8601; naive is UTC), rounded down to the quarter hour. "
        "Without it: filterRangeRelative.",
    ),
    OpenApiParameter("filterRangeBefore", OpenApiTypes.DATETIME, description="Range end, exclusive (default: now)."),
    OpenApiParameter(
        "filterRangeRelative",
        str,
        enum=list(RELATIVE_RANGES),
        description="The last hour, 12 hours, day (the default), 7, 30, 90 days or year, up to now.",
    ),
    OpenApiParameter(
        "windowSize",
        str,
        enum=list(WINDOWS),
        description=f"Bucket size (default FIFTEEN_MINUTES); at most {MAX_BUCKETS:,} buckets per range.",
    ),
    OpenApiParameter("groupBy", str, enum=["SITE"], description="Sum (storage: average) the devices of each site."),
    OpenApiParameter(
        "timezone",
        str,
        description="IANA name whose wall clock DAY, WEEK (from Monday), MONTH and YEAR buckets follow "
        "(default UTC). FIFTEEN_MINUTES and HOUR buckets are on the UTC clock.",
    ),
]
METRIC_NAMES = ", ".join(f"`{name}`" for name in METRICS)


class MetricsView(WorkspaceApiView):
    """Energy time series of the workspace's devices, bucketed by `windowSize`."""

    scope_resource = "metrics"
    metric_in_path = False

    def get(self, request, metric: str | None = None):
        now = timezone.now()
        query = metric_query(request, metric if self.metric_in_path else None, now=now)
        points = metric_series(
            workspace_id=self.workspace_id,
            metric=query["metric"],
            after=query["after"],
            before=query["before"],
            window=query["window"],
            zone=query["zone"],
            device_ids=query["device_ids"],
            site_ids=query["site_ids"],
            group_by_site=query["group_by"] == "SITE",
            now=now,
            limit=MAX_POINTS + 1,
        )
        if len(points) > MAX_POINTS:
            raise ValidationError(
                {"windowSize": [f"More than {MAX_POINTS:,} points: a larger windowSize, a shorter range or fewer ids."]}
            )
        spec, window = METRICS[query["metric"]], WINDOWS[query["window"]]
        by_site = query["group_by"] == "SITE"
        series = list(dict.fromkeys(p.site_id if by_site else p.device_id for p in points))
        return Response(
            {
                "data": [
                    {
                        "ts": p.ts.isoformat().replace("+00:00", "Z"),
                        "v": p.value,
                        "deviceId": p.device_id,
                        "siteId": p.site_id,
                        "customerId": p.contact_id,
                    }
                    for p in points
                ],
                "meta": {
                    "label": spec.label,
                    "series": series,
                    "sparse": True,
                    "unit": spec.unit,
                    "displayUnit": spec.display_unit,
                    "domainMeta": {
                        "label": "time",
                        "sparse": True,
                        "rate": {
                            "unit": window.rate_unit,
                            "displayUnit": window.rate_display,
                            "scaleFactor": window.rate_scale,
                        },
                    },
                    "metric": spec.name,
                    "aggregation": spec.aggregation,
                    "description": spec.description,
                    "windowSize": window.name,
                    "groupBy": query["group_by"],
                    "filterRangeAfter": query["after"].isoformat().replace("+00:00", "Z"),
                    "filterRangeBefore": query["before"].isoformat().replace("+00:00", "Z"),
                    "timezone": str(query["zone"]),
                },
            }
        )


class MetricsQueryView(MetricsView):
    """Energy time series (`?metric=`): see docs/integrators.md, "Metrics"."""

    @extend_schema(
        operation_id="metrics_query",
        parameters=[
            OpenApiParameter("metric", str, enum=list(METRICS), required=True, description=f"One of {METRIC_NAMES}."),
            *PARAMETERS,
        ],
        responses=MetricSeriesSerializer,
    )
    def get(self, request):
        """A metric of the workspace's devices per bucket: Wh summed per bucket (consumption, production,
        generation, grid-energy) or the latest state of charge (storage); one series per device, or per site
        with groupBy=SITE."""
        return super().get(request)


class MetricsByNameView(MetricsView):
    """Texture's path form, `/v1/metrics/{metric}`: the same answer as `/v1/metrics?metric=`."""

    metric_in_path = True

    @extend_schema(
        operation_id="metrics_retrieve_by_name",
        parameters=[
            OpenApiParameter(
                "metric", str, OpenApiParameter.PATH, enum=list(METRICS), description=f"One of {METRIC_NAMES}."
            ),
            *PARAMETERS,
        ],
        responses=MetricSeriesSerializer,
    )
    def get(self, request, metric: str):
        """A metric of the workspace's devices per bucket (as `GET /v1/metrics?metric=`)."""
        return super().get(request, metric)
