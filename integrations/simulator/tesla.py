"""Simulated Tesla Fleet API (energy sites): `{"response": …}` envelope, `error` bodies, OAuth refresh with
rotation, 408 for an offline site, 429 with `Retry-After` and `RateLimit-Reset` headers."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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
from integrations.simulator.state import AUTONOMOUS, BACKUP, GRID_SERVICES_ENROLLED, SELF_CONSUMPTION, SimState

OEM = "tesla"
router = Router()
MODES = {SELF_CONSUMPTION: "self_consumption", BACKUP: "backup", AUTONOMOUS: "autonomous", "time_of_use": "autonomous"}


def error(status: int, key: str, description: str = "", headers=None) -> SimResponse:
    return SimResponse(status, {"response": None, "error": key, "error_description": description}, headers or {})


def ok(body) -> SimResponse:
    return SimResponse(200, {"response": body})


def handle(state: SimState, request: SimRequest) -> SimResponse:
    if request.path == "/oauth2/v3/token" and request.method == "POST":
        return token(state, request)
    if request.path == "/status" and request.method == "GET":
        # the Fleet API's health check: plain text, no token (tesla-fleet-api `TeslaFleetApi.status()`)
        return SimResponse(200, "ok", content_type="text/plain")
    account, expired = token_account(state, OEM, bearer(request))
    if account is None:
        return error(401, "invalid bearer token")
    view, kwargs = router.match(request)
    site = state.device_by_number(OEM, kwargs.get("site_id")) if "site_id" in kwargs else None
    fault = state.take_fault(OEM, account.name, *([site.serial] if site else []))
    if fault and fault.kind == "expired_token":
        expire_tokens(account)
        expired = True
    if expired:
        return error(401, "token expired (401)")
    if (response := transport_fault(fault)) is not None:
        return response
    if fault and fault.kind == "unauthorized":
        return error(401, "invalid bearer token")
    if fault and fault.kind == "forbidden":
        return error(403, "Unauthorized missing scopes", "energy_device_data")
    if (response := limited_or_failing(state, fault)) is not None:
        return response
    if view is None:
        return error(404, "not_found")
    if "site_id" in kwargs:
        if site is None or site.account != account.name:
            return error(404, "not_found", "energy site not found")
        if not site.online and request.method == "GET" and request.path.endswith("live_status"):
            return error(408, "device offline", "energy site is offline")
        return view(state, request, state.live(site))
    return view(state, request, account)


def limited_or_failing(state: SimState, fault) -> SimResponse | None:
    """An injected 429 (with `Retry-After` and `RateLimit-Reset`) or 5xx, for API calls and tokens alike."""
    if fault and fault.kind == "rate_limit":
        wait = int(fault.params.get("retry_after", 30))
        reset = int((state.clock.now() + timedelta(seconds=wait)).timestamp())
        return error(429, "rate limited", "", {"Retry-After": str(wait), "RateLimit-Reset": str(reset)})
    if fault and fault.kind == "server_error":
        return error(int(fault.params.get("status", 503)), "internal service timed out")
    return None


def token(state: SimState, request: SimRequest) -> SimResponse:
    form = request.form()
    account = state.account(OEM, form.get("client_id", ""))
    if account is None or form.get("grant_type") != "refresh_token":
        return SimResponse(401, {"error": "invalid_client"})
    fault = token_fault(state, OEM, account)
    if (response := transport_fault(fault) or limited_or_failing(state, fault)) is not None:
        return response
    new_refresh = rotate_refresh(state, account, form.get("refresh_token", ""))
    if new_refresh is None:
        return SimResponse(401, {"error": "login_required", "error_description": "refresh token already used"})
    access = account.issue_token(state.clock.now(), state.token_ttl)
    return SimResponse(
        200,
        {
            "access_token": access,
            "refresh_token": new_refresh,
            "expires_in": int(state.token_ttl.total_seconds()),
            "token_type": "Bearer",
        },
    )


@router.route("GET", "/api/1/products")
def products(state, request, account):
    now = state.clock.now()
    sites = []
    for device in state.account_devices(OEM, account.name):
        device = state.live(device)
        sites.append(
            {
                "energy_site_id": device.number,
                "resource_type": "battery",
                "site_name": f"Home {device.number}",
                "id": f"STE{device.number:08d}",
                "asset_site_id": f"a{device.number:x}",
                "gateway_id": device.serial,
                "battery_type": "ac_powerwall",
                "percentage_charged": round(device.soc, 2) if device.online else None,
                "battery_power": device.battery_w(now) if device.online else 0,
                "backup_capable": True,
                "storm_mode_enabled": device.storm_enabled,
                "components": {"battery": True, "solar": device.solar_peak_w > 0, "grid": True, "load_meter": True},
            }
        )
    return ok(sites)


@router.route("GET", r"/api/1/energy_sites/(?P<site_id>\d+)/live_status")
def live_status(state, request, site):
    now = state.clock.now()
    at = site.measured_at(now)
    return ok(
        {
            "solar_power": site.solar_w(at),
            "battery_power": site.battery_w(at),
            "grid_power": site.grid_w(at),
            "load_power": site.load_w(at),
            "generator_power": 0,
            "percentage_charged": round(site.soc, 2),
            "energy_left": round(site.soc / 100 * site.capacity_wh, 1),
            "total_pack_energy": site.capacity_wh,
            "grid_status": "Active",
            "island_status": "on_grid",
            "storm_mode_active": site.storm_active,
            "backup_capable": True,
            "grid_services_active": site.grid_services_event,
            "grid_services_power": site.battery_w(at) if site.grid_services_event else 0,
            # Tesla sends local time with an offset; the simulated gateway is on UTC−07:00.
            "timestamp": at.astimezone(_pacific()).isoformat(),
            "wall_connectors": [],
        }
    )


@router.route("GET", r"/api/1/energy_sites/(?P<site_id>\d+)/site_info")
def site_info(state, request, site):
    return ok(
        {
            "id": f"STE{site.number:08d}",
            "site_name": f"Home {site.number}",
            "backup_reserve_percent": int(site.reserve),
            "default_real_mode": MODES[site.mode],
            "installation_time_zone": INSTALLATION_ZONE.key,
            "battery_count": 1,
            "nameplate_power": int(site.max_power_w),
            "nameplate_energy": int(site.capacity_wh),
            "version": "25.10.1",
            "vpp_backup_reserve_percent": 20,
            "user_settings": {"storm_mode_enabled": site.storm_enabled},
            "components": {
                "storm_mode_capable": True,
                # Tesla shows the enrollment as one flag: a site still being set up reads as not enabled
                "grid_services_enabled": site.grid_services == GRID_SERVICES_ENROLLED,
                "tou_capable": True,
                "edit_setting_grid_charging": True,
                "edit_setting_energy_exports": True,
                # what `grid_import_export` last set
                "customer_preferred_export_rule": site.export_rule,
                "disallow_charge_from_grid_with_solar_installed": not site.grid_charging,
            },
        }
    )


UPDATED = {"code": 201, "message": "Updated"}


@router.route("POST", r"/api/1/energy_sites/(?P<site_id>\d+)/operation")
def operation(state, request, site):
    mode = request.json().get("default_real_mode")
    if mode not in ("self_consumption", "autonomous", "backup"):
        return error(400, "invalid_field", "default_real_mode")
    if site.storm_active:
        return error(412, "precondition failed", "Storm Watch is active")
    site.mode = mode
    return ok(UPDATED)


@router.route("POST", r"/api/1/energy_sites/(?P<site_id>\d+)/backup")
def backup(state, request, site):
    value = request.json().get("backup_reserve_percent")
    if not isinstance(value, int | float) or not 0 <= value <= 100:
        return error(400, "invalid_field", "backup_reserve_percent")
    site.reserve = float(value)
    return ok(UPDATED)


@router.route("POST", r"/api/1/energy_sites/(?P<site_id>\d+)/storm_mode")
def storm_mode(state, request, site):
    site.storm_enabled = bool(request.json().get("enabled"))
    site.storm_active = site.storm_active and site.storm_enabled
    return ok(UPDATED)


@router.route("POST", r"/api/1/energy_sites/(?P<site_id>\d+)/grid_import_export")
def grid_import_export(state, request, site):
    body = request.json()
    rule = body.get("customer_preferred_export_rule")
    if rule is not None and rule not in ("battery_ok", "pv_only", "never"):
        return error(400, "invalid_field", "customer_preferred_export_rule")
    if rule is not None:
        site.export_rule = rule
    if "disallow_charge_from_grid_with_solar_installed" in body:
        site.grid_charging = not bool(body["disallow_charge_from_grid_with_solar_installed"])
    return ok(UPDATED)


def _pacific():
    from datetime import timezone

    return timezone(timedelta(hours=-7))


HISTORY_KINDS = ("power", "soc")
HISTORY_STEP = timedelta(minutes=15)
# the zone every simulated site reports as its `installation_time_zone`: its calendar days are that zone's (the
# daily model's fixed UTC−7 is its sun's clock, not the site's calendar)
INSTALLATION_ZONE = ZoneInfo("America/Los_Angeles")


@router.route("GET", r"/api/1/energy_sites/(?P<site_id>\d+)/calendar_history")
def calendar_history(state, request, site):
    """`calendar_history?kind=power|soc&period=day&end_date=<RFC 3339>`: the site's local day that holds
    `end_date` (today when absent), a point every 15 minutes up to now (Tesla Fleet API energy endpoints,
    oem-apis.md §1 and the tesla-fleet-api SDK's `calendar_history(kind, start_date, end_date, period,
    time_zone)`; power/SoC history is a day per call: unverified beyond the SDK's parameters). Other kinds
    (energy, backup) are not simulated; `period` other than day is refused for these kinds."""
    kind = request.query.get("kind", "")
    if kind not in HISTORY_KINDS:
        return error(400, "invalid_field", "kind")
    if request.query.get("period", "day") != "day":
        return error(400, "invalid_field", "period")
    try:
        end = (
            datetime.fromisoformat(request.query["end_date"].replace("Z", "+00:00"))
            if "end_date" in request.query
            else state.clock.now()
        )
    except ValueError:
        return error(400, "invalid_field", "end_date")
    if end.tzinfo is None:
        return error(400, "invalid_field", "end_date")
    day = end.astimezone(INSTALLATION_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    points = state.history(site, day, day + timedelta(days=1))
    series = []
    for point in points:
        if (point.at - day) % HISTORY_STEP:
            continue
        stamp = point.at.astimezone(INSTALLATION_ZONE).isoformat()
        if kind == "soc":
            series.append({"timestamp": stamp, "soc": point.soc})
        else:
            series.append(
                {
                    "timestamp": stamp,
                    "solar_power": point.solar_w,
                    "battery_power": point.battery_w,
                    "grid_power": point.grid_w,
                    "grid_services_power": 0,
                    "generator_power": 0,
                }
            )
    return ok({"serial_number": site.serial, "installation_time_zone": INSTALLATION_ZONE.key, "time_series": series})
