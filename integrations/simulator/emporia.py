"""Simulated Emporia cloud (EV chargers): `authtoken` header carrying a Cognito id token (a stub login
issues them), 401 for an unknown `deviceGid` on control calls, `devicesConnected` with `offlineSince`, usage
in kWh per interval through `AppAPI?apiMethod=getDeviceListUsages` (one call for many devices)."""

from datetime import UTC, datetime, timedelta

from integrations.simulator.common import Router, expire_tokens, token_account, token_fault, transport_fault
from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import SimState

OEM = "emporia"
router = Router()
SCALE_SECONDS = {"1S": 1, "1MIN": 60, "15MIN": 900, "1H": 3600}
# PyEmVue's simulator mode (`PyEmVue.login_simulator(host)`) skips Cognito and sends this fixed `authtoken`; its
# own simulator serves one customer without checking it. Here it is the account named by
# `SimState.emporia_simulator_mode_account` (the demo account), and refused (401) when that is None.
SIMULATOR_MODE_TOKEN = "simulator"  # noqa: S105 - PyEmVue's public constant, not a secret
CUSTOMER_GID = 4242


def simulator_mode_account(state: SimState):
    name = state.emporia_simulator_mode_account
    return state.account(OEM, name) if name else None


def handle(state: SimState, request: SimRequest) -> SimResponse:
    if request.path == "/cognito/login" and request.method == "POST":
        # Stands in for the Cognito SRP exchange: username/password in, an id token out.
        data = request.json()
        account = state.account(OEM, data.get("username", ""))
        fault = token_fault(state, OEM, account) if account else None
        if (response := transport_fault(fault)) is not None:
            return response
        if fault and fault.kind == "rate_limit":  # Cognito's throttling: a 400 named by `__type`, no Retry-After
            return SimResponse(400, {"__type": "TooManyRequestsException", "message": "Rate exceeded"})
        if fault and fault.kind == "server_error":
            return SimResponse(
                int(fault.params.get("status", 500)), {"__type": "InternalErrorException", "message": "Internal error"}
            )
        if account is None or account.secret != data.get("password"):
            return SimResponse(400, {"__type": "NotAuthorizedException", "message": "Incorrect username or password."})
        token = account.issue_token(state.clock.now(), state.token_ttl)
        ttl = int(state.token_ttl.total_seconds())
        return SimResponse(200, {"AuthenticationResult": {"IdToken": token, "ExpiresIn": ttl, "TokenType": "Bearer"}})
    presented = request.headers.get("authtoken", "")
    if presented == SIMULATOR_MODE_TOKEN:
        account, expired = simulator_mode_account(state), False
    else:
        account, expired = token_account(state, OEM, presented)
    if account is None:
        return SimResponse(401, {"message": "Unauthorized"})
    fault = state.take_fault(OEM, account.name)
    if fault and fault.kind == "expired_token":
        expire_tokens(account)
        expired = True
    if expired or (fault and fault.kind == "unauthorized"):
        return SimResponse(401, {"message": "The incoming token has expired"})
    if (response := transport_fault(fault)) is not None:
        return response
    if fault and fault.kind == "forbidden":
        return SimResponse(403, {"message": "User is not authorized to access this resource"})
    if fault and fault.kind == "rate_limit":
        return SimResponse(
            429, {"message": "Too Many Requests"}, {"Retry-After": str(fault.params.get("retry_after", 30))}
        )
    if fault and fault.kind == "server_error":
        return SimResponse(int(fault.params.get("status", 500)), {"message": "Internal server error"})
    view, _ = router.match(request)
    if view is None:
        return SimResponse(404, {"message": "Not Found"})
    return view(state, request, account)


def _charger(state, device) -> dict:
    return {
        "deviceGid": device.number,
        "loadGid": device.number + 500_000,
        "chargerOn": device.charger_on,
        "chargingRate": int(device.charging_rate_a),
        "maxChargingRate": int(device.max_charging_rate_a),
        "status": "Charging" if device.charger_on and device.plugged_in else "Standby",
        "message": "",
        "faultText": "",
        "icon": "CarConnected" if device.plugged_in else "CarNotConnected",
        "iconLabel": "Charging" if device.charger_on and device.plugged_in else "Ready",
        "iconDetailText": "",
        "offPeakSchedulesEnabled": False,
        "debugCode": "",
        "proControlCode": "",
    }


def _connected(device) -> dict:
    since = device.offline_since.strftime("%Y-%m-%dT%H:%M:%SZ") if device.offline_since else None
    return {"deviceGid": device.number, "connected": device.online, "offlineSince": since}


@router.route("GET", "/customers")
def customer(state, request, account):
    """The signed-in customer (PyEmVue `get_customer_details`, which `login` and `login_simulator` call)."""
    return SimResponse(
        200,
        {
            "customerGid": CUSTOMER_GID,
            "email": f"{account.name}@example.com",
            "firstName": account.name.title(),
            "lastName": "Customer",
            "createdAt": "2024-03-01T17:00:00.000Z",
        },
    )


@router.route("GET", "/customers/devices")
def devices(state, request, account):
    return SimResponse(
        200,
        {
            "customerGid": CUSTOMER_GID,
            "devices": [
                {
                    "deviceGid": d.number,
                    "manufacturerDeviceId": d.serial,
                    "model": "VVDN01",
                    "firmware": "evse-2025.04",
                    "channels": [{"deviceGid": d.number, "name": None, "channelNum": "1,2,3", "type": "Main"}],
                    "evCharger": _charger(state, d),
                    "deviceConnected": _connected(d),
                    "devices": [],
                }
                for d in state.account_devices(OEM, account.name)
            ],
        },
    )


@router.route("GET", "/customers/devices/status")
def status(state, request, account):
    mine = state.account_devices(OEM, account.name)
    return SimResponse(
        200,
        {
            "evChargers": [_charger(state, d) for d in mine],
            "outlets": [],
            "devicesConnected": [_connected(d) for d in mine],
        },
    )


@router.route("GET", "/AppAPI")
def app_api(state, request, account):
    if request.query.get("apiMethod") == "getChartUsage":
        return chart_usage(state, request, account)
    if request.query.get("apiMethod") != "getDeviceListUsages":
        return SimResponse(400, {"message": "unsupported apiMethod"})
    scale = request.query.get("scale", "1MIN")
    seconds = SCALE_SECONDS.get(scale)
    if seconds is None:
        return SimResponse(400, {"message": f"bad scale {scale}"})
    now = state.clock.now()
    instant = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    rows = []
    for gid in request.query.get("deviceGids", "").replace(" ", "+").split("+"):
        device = state.device_by_number(OEM, gid)
        if device is None or device.account != account.name:
            continue
        state.live(device)
        # A device that is not connected has no usage for the interval: Emporia answers null.
        usage = None if not device.online else round(max(0.0, -device.battery_w(now)) / 1000 * seconds / 3600, 6)
        rows.append(
            {
                "deviceGid": device.number,
                "channelUsages": [
                    {
                        "name": "Main",
                        "channelNum": "1,2,3",
                        "usage": usage,
                        "percentage": 100.0,
                        "nestedDevices": [],
                    }
                ],
            }
        )
    return SimResponse(
        200,
        {
            "deviceListUsages": {
                "instant": instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "scale": scale,
                "energyUnit": "KilowattHours",
                "devices": rows,
            }
        },
    )


@router.route("PUT", "/devices/evcharger")
def evcharger(state, request, account):
    data = request.json()
    device = state.device_by_number(OEM, data.get("deviceGid"))
    if device is None or device.account != account.name:
        return SimResponse(401, {"message": "Unauthorized"})
    state.live(device)
    if "chargerOn" in data:
        device.charger_on = bool(data["chargerOn"])
    if "chargingRate" in data:
        rate = data["chargingRate"]
        if not isinstance(rate, int | float) or not 6 <= rate <= device.max_charging_rate_a:
            return SimResponse(400, {"message": f"chargingRate must be between 6 and {device.max_charging_rate_a:g}"})
        device.charging_rate_a = float(rate)
    return SimResponse(200, _charger(state, device))


def chart_usage(state, request, account):
    """`AppAPI?apiMethod=getChartUsage&deviceGid=&channel=1,2,3&start=&end=&scale=&energyUnit=KilowattHours`
    (PyEmVue `get_chart_usage`, oem-apis.md §5): `usageList`, the kWh of each `scale` interval from
    `firstUsageInstant` up to `end`, `null` where the device reported nothing. Emporia documents no window
    limit; the simulator serves 15MIN and 1H from the device's 5-minute history."""
    seconds = SCALE_SECONDS.get(request.query.get("scale", "1H"))
    device = state.device_by_number(OEM, request.query.get("deviceGid"))
    if device is None or device.account != account.name:
        return SimResponse(200, {"firstUsageInstant": None, "usageList": []})
    if seconds is None or seconds < 900:
        return SimResponse(400, {"message": f"unsupported scale {request.query.get('scale')}"})
    try:
        start = datetime.fromisoformat(request.query["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(request.query["end"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return SimResponse(400, {"message": "start and end are required (ISO 8601, UTC)"})
    step = timedelta(seconds=seconds)
    first = datetime.fromtimestamp(start.timestamp() // seconds * seconds, tz=UTC)
    end = min(end, state.clock.now())
    points = {p.at: p for p in state.history(device, first, end)}
    usage, at = [], first
    while at + step <= end:
        inside = [points.get(at + timedelta(minutes=5 * i)) for i in range(seconds // 300)]
        known = [p for p in inside if p is not None]
        # kWh over the interval from its 5-minute points' mean draw (null: the charger did not report)
        usage.append(round(sum(p.charger_w for p in known) / len(known) * seconds / 3600 / 1000, 6) if known else None)
        at += step
    return SimResponse(200, {"firstUsageInstant": first.strftime("%Y-%m-%dT%H:%M:%SZ"), "usageList": usage})
