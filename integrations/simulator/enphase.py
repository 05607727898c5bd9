"""Simulated Enphase Enlighten API v4: bearer token *and* application `key` (header or query), OAuth refresh
with HTTP Basic client auth, `{message, details, code}` errors, 429 with `period_end` and no Retry-After,
`live_data` as an event stream (epoch-millisecond timestamps), 473 when the gateway is not reporting,
string-typed settings ("Full Backup", `storm_alert: "true"`)."""

import base64
import json
from datetime import UTC, datetime, timedelta

from integrations.simulator.common import (
    Router,
    bearer,
    expire_tokens,
    rotate_refresh,
    token_account,
    token_fault,
    transport_fault,
)
from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import BACKUP, SELF_CONSUMPTION, TIME_OF_USE, SimState

OEM = "enphase"
router = Router()
MODES = {SELF_CONSUMPTION: "Self-consumption", TIME_OF_USE: "Savings Mode", BACKUP: "Full Backup"}
MODE_BY_NAME = {v: k for k, v in MODES.items()}


def error(status: int, message: str, details: str = "", headers=None) -> SimResponse:
    return SimResponse(status, {"message": message, "details": details, "code": status}, headers or {})


def handle(state: SimState, request: SimRequest) -> SimResponse:
    if request.path == "/oauth/token" and request.method == "POST":
        return token(state, request)
    account, expired = token_account(state, OEM, bearer(request))
    key = request.headers.get("key") or request.query.get("key", "")
    if account is None or not key:
        return error(401, "Not Authorized", "User is not authorized")
    if key != account.api_key:
        return error(401, "Not Authorized", "API Key - Client mismatch")
    view, kwargs = router.match(request)
    system = state.device_by_number(OEM, kwargs["system_id"]) if "system_id" in kwargs else None
    fault = state.take_fault(OEM, account.name, *([system.serial] if system else []))
    if fault and fault.kind == "expired_token":
        expire_tokens(account)
        expired = True
    if expired or (fault and fault.kind == "unauthorized"):
        return error(401, "Not Authorized", "Access token has expired")
    if (response := transport_fault(fault)) is not None:
        return response
    if fault and fault.kind == "forbidden":
        return error(403, "Forbidden", "Not authorized to access requested resource")
    if (response := limited_or_failing(state, fault)) is not None:
        return response
    if view is None:
        return error(404, "Not Found", "Requested resource not found")
    if "system_id" in kwargs:
        if system is None or system.account != account.name:
            return error(404, "Not Found", "System not found")
        return view(state, request, state.live(system))
    return view(state, request, account)


def limited_or_failing(state: SimState, fault) -> SimResponse | None:
    """An injected 429 (Enphase's body with `period_end`, no Retry-After) or 5xx, for API calls and tokens."""
    if fault and fault.kind == "rate_limit":
        now = state.clock.now()
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if fault.params.get("retry_after"):
            end = now + timedelta(seconds=int(fault.params["retry_after"]))
        return SimResponse(
            429,
            {
                "message": "Too Many Requests",
                "details": "Usage limit exceeded for plan Kilowatt",
                "code": 429,
                "period": "minute",
                "period_start": int((end - timedelta(minutes=1)).timestamp()),
                "period_end": int(end.timestamp()),
                "limit": 5,
            },
        )
    if fault and fault.kind == "server_error":
        return error(int(fault.params.get("status", 500)), "Internal Server Error")
    return None


def token(state: SimState, request: SimRequest) -> SimResponse:
    try:
        client_id, secret = base64.b64decode(request.headers.get("authorization", "")[6:]).decode().split(":", 1)
    except ValueError:
        return SimResponse(401, {"error": "unauthorized", "error_description": "Bad client credentials"})
    account = state.account(OEM, client_id)
    if account is None or account.secret != secret:
        return SimResponse(401, {"error": "unauthorized", "error_description": "Bad client credentials"})
    fault = token_fault(state, OEM, account)
    if (response := transport_fault(fault) or limited_or_failing(state, fault)) is not None:
        return response
    form = request.form()
    new_refresh = rotate_refresh(state, account, form.get("refresh_token", ""))
    if form.get("grant_type") != "refresh_token" or new_refresh is None:
        return SimResponse(401, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
    access = account.issue_token(state.clock.now(), state.token_ttl)
    return SimResponse(
        200,
        {
            "access_token": access,
            "refresh_token": new_refresh,
            "token_type": "bearer",
            "expires_in": int(state.token_ttl.total_seconds()),
            "scope": "read write",
        },
    )


def _system(state, device) -> dict:
    at = device.measured_at(state.clock.now())
    return {
        "system_id": device.number,
        "name": f"Residence {device.number}",
        "public_name": "Residential System",
        "timezone": "America/Los_Angeles",
        "address": {"city": "Bend", "state": "OR", "country": "US", "postal_code": "97701"},
        "connection_type": "ethernet",
        "status": "normal" if device.online else "comm",
        "last_report_at": int(at.timestamp()),
        "last_energy_at": int(at.timestamp()),
        "operational_at": 1_700_000_000,
        "reference": None,
        "other_references": [],
    }


@router.route("GET", "/api/v4/systems")
def systems(state, request, account):
    page, size = int(request.query.get("page", 1)), min(100, int(request.query.get("size", 10)))
    items = sorted(state.account_devices(OEM, account.name), key=lambda d: d.number)
    chunk = items[(page - 1) * size : page * size]
    return SimResponse(
        200,
        {
            "total": len(items),
            "current_page": page,
            "size": size,
            "count": len(chunk),
            "items": "systems",
            "systems": [_system(state, d) for d in chunk],
        },
    )


@router.route("GET", "/api/v4/systems/retrieve_system_id")
def retrieve_system_id(state, request, account):
    device = state.device(OEM, request.query.get("serial_num", ""))
    if device is None or device.account != account.name:
        return error(404, "Not Found", "System not found for the given serial number")
    return SimResponse(200, {"system_id": device.number})


@router.route("GET", r"/api/v4/systems/(?P<system_id>\d+)/live_data")
def live_data(state, request, system):
    if not system.online:
        return error(473, "Gateway is not reporting", "The IQ Gateway has not reported recently")
    at = system.measured_at(state.clock.now())
    mode = BACKUP if system.storm_active else system.mode
    event = {
        "data": {
            "pv_power": system.solar_w(at),
            "grid_power": system.grid_w(at),
            "battery_power": system.battery_w(at),
            "consumption_power": system.load_w(at),
            "generator_power": 0,
            "battery_soc": round(system.soc),
            # while a grid-services event runs, the live mode says so instead of the battery's own mode
            "battery_mode": "DR Event Active" if system.grid_services_event else MODES[mode],
            "grid_status": "On Grid",
            "envoy_serial_number": [system.serial],
            "timestamp_epoch": int(at.timestamp() * 1000),
            "timestamp_utc": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    }
    return SimResponse(200, f"event: message\ndata: {json.dumps(event)}\n\n", content_type="text/event-stream")


@router.route("GET", r"/api/v4/systems/config/(?P<system_id>\d+)/battery_settings")
def battery_settings(state, request, system):
    return SimResponse(
        200,
        {
            "system_id": system.number,
            "battery_mode": MODES[system.mode],
            "reserve_soc": int(system.reserve),
            "energy_independence": "enabled",
            "charge_from_grid": False,
            "battery_shutdown_level": 10,
        },
    )


@router.route("PUT", r"/api/v4/systems/config/(?P<system_id>\d+)/battery_settings")
def battery_settings_put(state, request, system):
    data = request.json()
    if "battery_mode" in data:
        if data["battery_mode"] not in MODE_BY_NAME:
            return error(422, "Unprocessable Entity", f"Invalid battery_mode {data['battery_mode']!r}")
        system.mode = MODE_BY_NAME[data["battery_mode"]]
    if "reserve_soc" in data:
        if not isinstance(data["reserve_soc"], int) or not 10 <= data["reserve_soc"] <= 100:
            return error(422, "Unprocessable Entity", "reserve_soc must be between 10 and 100")
        system.reserve = float(data["reserve_soc"])
    return battery_settings(state, request, system)


@router.route("GET", r"/api/v4/systems/config/(?P<system_id>\d+)/storm_guard")
def storm_guard(state, request, system):
    status = "enabled" if system.storm_enabled else "disabled"
    if system.storm_enabled and not system.storm_active:
        status = "Enabled (Inactive)"
    return SimResponse(
        200, {"system_id": system.number, "storm_guard_status": status, "storm_alert": str(system.storm_active).lower()}
    )


@router.route("PUT", r"/api/v4/systems/config/(?P<system_id>\d+)/storm_guard")
def storm_guard_put(state, request, system):
    value = request.json().get("storm_guard_status")
    if value not in ("enabled", "disabled"):
        return error(422, "Unprocessable Entity", "storm_guard_status must be enabled or disabled")
    system.storm_enabled = value == "enabled"
    system.storm_active = system.storm_active and system.storm_enabled
    return storm_guard(state, request, system)


# /telemetry/battery (Enphase v4 System API, `getBatteryTelemetry`, Enphase-OpenAPI openapi/system.yaml): 15-minute
# intervals; `granularity` bounds one answer (15mins: 1 interval, day: 96, week: 672); end_at = min(now, start +
# granularity); start_at defaults to today's midnight in the system's zone, must be within 2 years, and one
# before the system's first report is moved to midnight of its first reported day.
TELEMETRY_INTERVAL = timedelta(minutes=15)
GRANULARITY = {
    "15mins": timedelta(minutes=15),
    "5mins": timedelta(minutes=15),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
}
MAX_HISTORY = timedelta(days=730)


@router.route("GET", r"/api/v4/systems/(?P<system_id>\d+)/telemetry/battery")
def battery_telemetry(state, request, system):
    from integrations.simulator.model import SITE_TZ, history_origin

    now = state.clock.now()
    span = GRANULARITY.get(request.query.get("granularity", "day"))
    if span is None:
        return error(422, "Unprocessable Entity", "granularity must be one of week, day, 15mins, 5mins")
    try:
        if "start_at" in request.query:
            start = datetime.fromtimestamp(int(request.query["start_at"]), tz=UTC)
        elif "start_date" in request.query:
            start = datetime.fromisoformat(request.query["start_date"]).replace(tzinfo=SITE_TZ)
        else:
            start = now.astimezone(SITE_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    except ValueError:
        return error(422, "Unprocessable Entity", "Invalid start_at")
    if start < now - MAX_HISTORY:
        return error(422, "Unprocessable Entity", "Requested start date must be within 2 years from current date")
    if system.created_at is not None:
        first = history_origin(system.created_at).astimezone(SITE_TZ).replace(hour=0, minute=0, second=0)
        start = max(start, first)
    end = min(now, start + span)
    points = state.history(system, start, end)
    intervals = []
    # an interval [end_at − 15 min, end_at) from its three 5-minute points
    for index in range(0, len(points) - 2):
        first = points[index]
        aligned = not first.at.timestamp() % TELEMETRY_INTERVAL.total_seconds()
        if not aligned or points[index + 2].at - first.at != timedelta(minutes=10):
            continue
        window = points[index : index + 3]
        intervals.append(
            {
                "end_at": int((first.at + TELEMETRY_INTERVAL).timestamp()),
                "charge": {"enwh": round(sum(max(-p.battery_w, 0.0) for p in window) / 12), "devices_reporting": 1},
                "discharge": {"enwh": round(sum(max(p.battery_w, 0.0) for p in window) / 12), "devices_reporting": 1},
                "soc": {"percent": round(window[-1].soc), "devices_reporting": 1},
            }
        )
    return SimResponse(
        200,
        {
            "system_id": system.number,
            "granularity": request.query.get("granularity", "day"),
            "total_devices": 1,
            "start_at": int(start.timestamp()),
            "end_at": int(end.timestamp()),
            "items": "intervals",
            "intervals": intervals,
            "last_reported_aggregate_soc": f"{round(system.soc)}%",
        },
    )
