"""Simulated Smartcar API v2: OAuth refresh (Basic client auth, rotating refresh tokens), v2 error bodies,
429 with a `retry-after` header, 409 VEHICLE_STATE for an asleep/unreachable car, `sc-data-age` on every
read, fractional SoC and charge limit, metric or imperial units per `SC-Unit-System`, a `/batch` endpoint.
`GET /vehicles` pages like Smartcar: `limit` (default 10, at most 50) and `offset` in the query, `paging.count`
the total number of vehicles and `paging.offset` the first index of the page."""

import base64
import uuid

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
from integrations.simulator.state import SimState

OEM = "smartcar"
router = Router()
# POSTs that only read (a batch of GETs): not counted as writes (`/_sim/stats`)
READ_ONLY_POSTS = ("/batch",)
KM_PER_MILE = 1.609344
VEHICLES_DEFAULT_LIMIT, VEHICLES_MAX_LIMIT = 10, 50


def error(status: int, type_: str, code: str | None, description: str, headers=None) -> SimResponse:
    return SimResponse(
        status,
        {
            "type": type_,
            "code": code,
            "description": description,
            "docURL": f"https://smartcar.com/docs/errors/api-errors/{type_.lower()}-errors",
            "statusCode": status,
            "requestId": str(uuid.uuid4()),
            "resolution": {"type": "RETRY_LATER" if status in (409, 429) else None, "url": None},
            "detail": None,
        },
        headers or {},
    )


def handle(state: SimState, request: SimRequest) -> SimResponse:
    if request.path == "/oauth/token" and request.method == "POST":
        return token(state, request)
    account, expired = token_account(state, OEM, bearer(request))
    if account is None:
        return error(401, "AUTHENTICATION", None, "The authorization header is missing or malformed.")
    view, kwargs = router.match(request)
    vehicle = state.device_by_number(OEM, kwargs.get("vehicle_id", "").removeprefix("veh-")) if kwargs else None
    fault = state.take_fault(OEM, account.name, *([vehicle.serial] if vehicle else []))
    if fault and fault.kind == "expired_token":
        expire_tokens(account)
        expired = True
    if expired or (fault and fault.kind == "unauthorized"):
        return error(401, "AUTHENTICATION", None, "The access token you provided has expired.")
    if (response := transport_fault(fault)) is not None:
        return response
    if fault and fault.kind == "forbidden":
        return error(403, "PERMISSION", None, "Your application does not have permission for this endpoint.")
    if (response := limited_or_failing(state, fault)) is not None:
        return response
    if view is None:
        return error(404, "RESOURCE_NOT_FOUND", "PATH", "The requested resource does not exist.")
    if kwargs:
        if vehicle is None or vehicle.account != account.name:
            return error(404, "RESOURCE_NOT_FOUND", "VEHICLE", "Vehicle not found.")
        if not vehicle.online:
            return error(409, "VEHICLE_STATE", "ASLEEP", "The vehicle is in a sleep state and could not be reached.")
        return view(state, request, state.live(vehicle))
    return view(state, request, account)


def limited_or_failing(state: SimState, fault) -> SimResponse | None:
    """An injected 429 (v2 body, `retry-after` header) or 5xx, for API calls and tokens alike."""
    if fault and fault.kind == "rate_limit":
        wait = str(fault.params.get("retry_after", 30))
        return error(
            429,
            "RATE_LIMIT",
            "VEHICLE",
            "You have reached the throttling rate limit for this vehicle.",
            {"retry-after": wait},
        )
    if fault and fault.kind == "server_error":
        return error(int(fault.params.get("status", 500)), "SERVER", "INTERNAL", "Internal server error.")
    return None


def invalid_client() -> SimResponse:
    """OAuth's error body: the smartcar SDK raises its `SmartcarException` from `error` + `error_description`
    (with `error` alone it finds no shape it knows and raises a bare SDK_ERROR)."""
    return SimResponse(401, {"error": "invalid_client", "error_description": "Invalid client credentials."})


def token(state: SimState, request: SimRequest) -> SimResponse:
    try:
        client_id, secret = base64.b64decode(request.headers.get("authorization", "")[6:]).decode().split(":", 1)
    except ValueError:
        return invalid_client()
    account = state.account(OEM, client_id)
    if account is None or account.secret != secret:
        return invalid_client()
    fault = token_fault(state, OEM, account)
    if (response := transport_fault(fault) or limited_or_failing(state, fault)) is not None:
        return response
    form = request.form()
    new_refresh = rotate_refresh(state, account, form.get("refresh_token", ""))
    if form.get("grant_type") != "refresh_token" or new_refresh is None:
        return SimResponse(400, {"error": "invalid_grant", "error_description": "Invalid or expired refresh token."})
    access = account.issue_token(state.clock.now(), state.token_ttl)
    ttl = int(state.token_ttl.total_seconds())
    return SimResponse(
        200, {"access_token": access, "refresh_token": new_refresh, "expires_in": ttl, "token_type": "Bearer"}
    )


def _read(state, request, vehicle, path: str) -> tuple[int, dict, dict]:
    imperial = request.headers.get("sc-unit-system", "metric") == "imperial"
    at = vehicle.measured_at(state.clock.now())
    headers = {
        "sc-data-age": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "sc-unit-system": "imperial" if imperial else "metric",
    }
    if path == "/battery":
        range_km = vehicle.soc * vehicle.range_km_per_pct
        return (
            200,
            headers,
            {
                "percentRemaining": round(vehicle.soc / 100, 4),
                "range": round(range_km / KM_PER_MILE if imperial else range_km, 1),
            },
        )
    if path == "/charge":
        charging = vehicle.charger_on and vehicle.plugged_in and vehicle.soc < vehicle.charge_limit
        state_ = (
            "CHARGING" if charging else ("FULLY_CHARGED" if vehicle.soc >= vehicle.charge_limit else "NOT_CHARGING")
        )
        return 200, headers, {"isPluggedIn": vehicle.plugged_in, "state": state_}
    if path == "/charge/limit":
        return 200, headers, {"limit": round(vehicle.charge_limit / 100, 2)}
    return 404, {}, {"type": "RESOURCE_NOT_FOUND", "description": f"unknown path {path}", "statusCode": 404}


@router.route("GET", "/v2.0/vehicles")
def vehicles(state, request, account):
    try:
        limit = int(request.query.get("limit", VEHICLES_DEFAULT_LIMIT))
        offset = int(request.query.get("offset", 0))
    except ValueError:
        limit = offset = -1
    if not 1 <= limit <= VEHICLES_MAX_LIMIT or offset < 0:
        return error(400, "VALIDATION", "PARAMETER", f"limit must be 1 to {VEHICLES_MAX_LIMIT} and offset 0 or more.")
    ids = [f"veh-{d.number}" for d in sorted(state.account_devices(OEM, account.name), key=lambda d: d.number)]
    return SimResponse(200, {"vehicles": ids[offset : offset + limit], "paging": {"count": len(ids), "offset": offset}})


MAKES = (("TESLA", "Model 3", 2023), ("FORD", "Mustang Mach-E", 2024), ("CHEVROLET", "Bolt EUV", 2023))


@router.route("GET", r"/v2.0/vehicles/(?P<vehicle_id>veh-\d+)/?")
def attributes(state, request, vehicle):
    """`GET /vehicles/{id}` (the smartcar SDK's `Vehicle.attributes()` asks for `/vehicles/{id}/`)."""
    make, model, year = MAKES[vehicle.number % len(MAKES)]
    return SimResponse(200, {"id": f"veh-{vehicle.number}", "make": make, "model": model, "year": year})


@router.route("GET", r"/v2.0/vehicles/(?P<vehicle_id>veh-\d+)/vin")
def vin(state, request, vehicle):
    return SimResponse(200, {"vin": vehicle.serial}, {"sc-data-age": state.clock.now().isoformat()})


def _signal(path: str):
    """`GET /vehicles/{id}<path>`: one read, as in the batch."""

    def view(state, request, vehicle):
        code, headers, body = _read(state, request, vehicle, path)
        return SimResponse(code, body, headers)

    return view


for _path in ("/battery", "/charge", "/charge/limit"):
    router.route("GET", rf"/v2.0/vehicles/(?P<vehicle_id>veh-\d+){_path}")(_signal(_path))


@router.route("POST", r"/v2.0/vehicles/(?P<vehicle_id>veh-\d+)/batch")
def batch(state, request, vehicle):
    responses = []
    for item in request.json().get("requests", []):
        code, headers, body = _read(state, request, vehicle, item.get("path", ""))
        responses.append({"path": item.get("path"), "code": code, "headers": headers, "body": body})
    return SimResponse(200, {"responses": responses})


@router.route("POST", r"/v2.0/vehicles/(?P<vehicle_id>veh-\d+)/charge")
def charge(state, request, vehicle):
    action = request.json().get("action")
    if action not in ("START", "STOP"):
        return error(400, "VALIDATION", None, "action must be START or STOP")
    if action == "START" and not vehicle.plugged_in:
        return error(409, "VEHICLE_STATE", "CHARGE_CABLE_UNPLUGGED", "The charging cable is unplugged.")
    vehicle.charger_on = action == "START"
    return SimResponse(200, {"status": "success", "message": "Successfully sent request to vehicle"})


@router.route("POST", r"/v2.0/vehicles/(?P<vehicle_id>veh-\d+)/charge/limit")
def charge_limit(state, request, vehicle):
    limit = request.json().get("limit")
    if not isinstance(limit, int | float) or not 0.5 <= limit <= 1:
        return error(400, "VALIDATION", None, "limit must be between 0.5 and 1")
    vehicle.charge_limit = round(limit * 100, 1)
    return SimResponse(200, {"status": "success", "message": "Successfully sent request to vehicle"})
