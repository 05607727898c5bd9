"""Simulated FranklinWH cloud (aGate/aPower): MD5-password login, `loginToken` header, errors as HTTP 200
with a body `code` (401 token expired, 136 gateway offline, 102 device timeout), kW power values, per-account
6-digit TOU profile ids, Storm Hedge as `stromEn`, the grid-export setting (`getPowerControlSetting` /
`setPowerControlV2`, which refuses a write missing a field the read returns)."""

import hashlib
from datetime import datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from integrations.simulator.common import Router, expire_tokens, token_account, transport_fault
from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import BACKUP, SELF_CONSUMPTION, TIME_OF_USE, SimState

OEM = "franklinwh"
router = Router()
PREFIX = "/hes-gateway/terminal"
# POSTs that only read (FranklinWH's API lists profiles by POST): not counted as writes (`/_sim/stats`)
READ_ONLY_POSTS = ("/tou/getGatewayTouListV2",)
# `tou/getPowerControlSetting` is a read too: a GET, never counted as a write.
WORK_MODES = {1: TIME_OF_USE, 2: SELF_CONSUMPTION, 3: BACKUP}
MODE_NUMBERS = {v: k for k, v in WORK_MODES.items()}
NAMES = {1: "Time of Use", 2: "Self Consumption", 3: "Emergency Backup"}


def power_control(gateway) -> dict:
    """The gateway's grid-export setting (`SimDevice.power_control`); the physics follows its flag: a discharge
    (time_of_use) exports only with gridFeedMaxFlag 2, and otherwise serves the home's load."""
    return gateway.power_control


def body(code: int, message: str, result=None, *, date=None) -> SimResponse:
    headers = {"Date": format_datetime(date, usegmt=True)} if date else {}
    return SimResponse(
        200, {"code": code, "message": message, "result": result, "success": code == 200}, headers=headers
    )


def handle(state: SimState, request: SimRequest) -> SimResponse:
    if request.path == f"{PREFIX}/initialize/appUserOrInstallerLogin" and request.method == "POST":
        return login(state, request)
    account, expired = token_account(state, OEM, request.headers.get("logintoken", ""))
    if account is None:
        return body(401, "token invalid, please log in again")
    gateway = state.device(OEM, request.query.get("gatewayId") or request.form().get("gatewayId", "")) or None
    fault = state.take_fault(OEM, account.name, *([gateway.serial] if gateway else []))
    if fault and fault.kind == "expired_token":
        expire_tokens(account)
        expired = True
    if expired or (fault and fault.kind == "unauthorized"):
        return body(401, "token expired, please log in again")
    if (response := transport_fault(fault)) is not None:
        return response
    if fault and fault.kind == "forbidden":
        return body(181, "no permission")
    if fault and fault.kind == "rate_limit":
        # The app API publishes no limit shape; its gateway answers a plain 429 with Retry-After.
        return SimResponse(
            429, "Too Many Requests", {"Retry-After": str(fault.params.get("retry_after", 30))}, "text/plain"
        )
    if fault and fault.kind == "server_error":
        return SimResponse(int(fault.params.get("status", 502)), "Bad Gateway", content_type="text/plain")
    view, _ = router.match(request)
    if view is None:
        return SimResponse(404, {"status": 404, "error": "Not Found"})
    if view is not gateway_list:
        if gateway is None or gateway.account != account.name:
            return body(181, "no permission")
        if not gateway.online:
            return body(136, "gateway offline")
        return view(state, request, state.live(gateway))
    return view(state, request, account)


def login(state: SimState, request: SimRequest) -> SimResponse:
    form = request.form()
    account = state.account(OEM, form.get("account", ""))
    if account is None or form.get("password") != hashlib.md5(account.secret.encode()).hexdigest():  # noqa: S324
        return body(401, "account or password error")
    token = account.issue_token(state.clock.now(), state.token_ttl)
    return body(200, "success", {"token": token, "userId": 70000 + len(account.name), "version": "1"})


@router.route("GET", f"{PREFIX}/getHomeGatewayList")
def gateway_list(state, request, account):
    gateways = [
        {
            "id": d.serial,
            "name": f"aGate {d.serial[-4:]}",
            "account": account.name,
            "status": 1 if d.online else 0,
            "version": "V10R01B04D00",
            "protocolVer": "2.4",
            "activeStatus": 1,
            "zoneInfo": "America/Los_Angeles",
            "deviceTime": state.clock.now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        for d in state.account_devices(OEM, account.name)
    ]
    return body(200, "query success", gateways)


@router.route("GET", f"{PREFIX}/getDeviceCompositeInfo")
def composite_info(state, request, gateway):
    now = state.clock.now()
    at = gateway.measured_at(now)
    mode = BACKUP if gateway.storm_active else gateway.mode
    runtime = {
        "soc": round(gateway.soc, 1),
        "p_sun": round(gateway.solar_w(at) / 1000, 3),
        "p_fhp": round(gateway.battery_w(at) / 1000, 3),
        "p_uti": round(gateway.grid_w(at) / 1000, 3),
        "p_load": round(gateway.load_w(at) / 1000, 3),
        "p_gen": 0.0,
        "genStat": 0,
        "fhpSn": [f"{gateway.serial}-P1"],
        "fhpSoc": [round(gateway.soc, 1)],
        "fhpPower": [round(gateway.battery_w(at) / 1000, 3)],
        **todays_totals(state, gateway, now),
        "offgridreason": -1,
        "elecnet_state": 0,
        "run_status": 1,
        "name": NAMES[MODE_NUMBERS.get(mode, 2)],
        "t_amb": 21.5,
        "signal": -61,
    }
    result = {
        "currentWorkMode": MODE_NUMBERS.get(mode, 2),
        "deviceStatus": 1,
        "runtimeData": runtime,
        "solarHaveVo": {"offGridFlag": 0},
    }
    # The payload carries no timestamp: with refreshFlag=1 the gateway answers live, so the response's Date
    # header is the measurement time.
    return body(200, "query success", result, date=at)


def todays_totals(state, gateway, now) -> dict:
    """`runtimeData`'s energy counters (kWh): today's totals in the gateway's local time, as the franklinwh SDK
    reads them (`Client.get_stats` → `Totals`, "totals for today (in local time)"), from the gateway's 5-minute
    history since local midnight."""
    with state.lock:  # one sum per gateway at a time: concurrent calls would add the same points twice
        midnight = now.astimezone(GATEWAY_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
        cached = gateway.daily_totals
        if cached.get("midnight") != midnight or cached["upto"] > now:
            names = ("kwh_fhp_chg", "kwh_fhp_di", "kwh_uti_in", "kwh_uti_out", "kwh_sun", "kwh_load")
            cached.clear()
            cached.update(midnight=midnight, upto=midnight, wh=dict.fromkeys(names, 0.0))
        totals = cached["wh"]
        hours = 5 / 60
        start, cached["upto"] = cached["upto"], now
        for point in state.history(gateway, start, now):
            totals["kwh_fhp_chg"] += max(-point.battery_w, 0.0) * hours
            totals["kwh_fhp_di"] += max(point.battery_w, 0.0) * hours
            totals["kwh_uti_in"] += max(point.grid_w, 0.0) * hours
            totals["kwh_uti_out"] += max(-point.grid_w, 0.0) * hours
            totals["kwh_sun"] += point.solar_w * hours
            totals["kwh_load"] += point.load_w * hours
    return {**{name: round(wh / 1000, 2) for name, wh in totals.items()}, "kwh_gen": 0.0}


@router.route("POST", f"{PREFIX}/tou/getGatewayTouListV2")
def tou_list(state, request, gateway):
    current = MODE_NUMBERS.get(gateway.mode, 2)
    return body(
        200,
        "query success",
        {
            "currendId": gateway.profile_ids[current],
            "stromEn": 1 if gateway.storm_enabled else 0,
            "list": [
                {
                    "id": gateway.profile_ids[number],
                    "workMode": number,
                    "name": NAMES[number],
                    "soc": int(gateway.reserve),
                    "minSoc": 5,
                    "maxSoc": 100,
                    "oldIndex": number,
                }
                for number in (1, 2, 3)
            ],
        },
    )


@router.route("POST", f"{PREFIX}/tou/updateTouMode")
def update_tou_mode(state, request, gateway):
    form = request.form()
    try:
        work_mode, profile, soc = int(form["workMode"]), int(form["currendId"]), float(form["soc"])
    except (KeyError, ValueError):
        return body(400, "parameter error")
    if gateway.profile_ids.get(work_mode) != profile:
        return body(400, "tou profile does not exist")
    if request.headers.get("optsource") != "3":
        return body(181, "no permission")
    gateway.mode = WORK_MODES[work_mode]
    gateway.reserve = max(5.0, min(100.0, soc))
    gateway.storm_enabled = form.get("stromEn") == "1"
    return body(200, "success")


@router.route("GET", f"{PREFIX}/tou/getPowerControlSetting")
def power_control_setting(state, request, gateway):
    return body(200, "query success", dict(power_control(gateway)))


@router.route("POST", f"{PREFIX}/tou/setPowerControlV2")
def set_power_control(state, request, gateway):
    """Read-modify-write, as the real API: a body missing any field the read returns is refused."""
    try:
        sent = request.json()
    except ValueError:
        return body(400, "parameter error")
    setting = power_control(gateway)
    missing = sorted(set(setting) - set(sent)) if isinstance(sent, dict) else sorted(setting)
    if missing:
        return body(400, f"parameter error: {', '.join(missing)} missing")
    update = {key: sent[key] for key in setting}
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in update.values()):
        return body(400, "parameter error")
    if update["gridFeedMaxFlag"] not in (1, 2, 3):
        return body(400, "parameter error: gridFeedMaxFlag")
    setting.update(update)
    return body(200, "success")


GATEWAY_TZ = ZoneInfo("America/Los_Angeles")  # the `zoneInfo` getHomeGatewayList gives


@router.route("GET", "/hes-gateway/api-energy/power/getFhpPowerByDay")
def power_by_day(state, request, gateway):
    """`api-energy/power/getFhpPowerByDay?gatewayId=&dayTime=YYYY-MM-DD`: the app's home-screen graph, one
    gateway-local day per call, a point every 5 minutes in parallel arrays (kW flows between solar, grid, home
    and aPower; "Gird" is the API's spelling) with `socArray` and `deviceTimeArray` (gateway-local time).
    [community] richo/franklinwh-python `get_power_by_day` and a FranklinWH CLI's field dictionary; the time
    format of `deviceTimeArray` is unverified."""
    try:
        day = datetime.strptime(request.query.get("dayTime", ""), "%Y-%m-%d").replace(tzinfo=GATEWAY_TZ)
    except ValueError:
        return body(400, "dayTime must be YYYY-MM-DD")
    points = state.history(gateway, day, day + timedelta(days=1))
    arrays: dict[str, list] = {
        name: []
        for name in (
            "deviceTimeArray",
            "socArray",
            "powerSolarHomeArray",
            "powerSolarGirdArray",
            "powerSolarFhpArray",
            "powerGirdHomeArray",
            "powerGirdFhpArray",
            "powerFhpHomeArray",
            "powerFhpGirdArray",
        )
    }
    for point in points:
        solar, battery, load = point.solar_w, point.battery_w, point.load_w
        charge, discharge = max(-battery, 0.0), max(battery, 0.0)
        solar_home = min(solar, load)
        solar_battery = min(solar - solar_home, charge)
        solar_grid = solar - solar_home - solar_battery
        battery_home = min(discharge, load - solar_home)
        battery_grid = discharge - battery_home
        grid_home = load - solar_home - battery_home
        grid_battery = charge - solar_battery
        arrays["deviceTimeArray"].append(point.at.astimezone(GATEWAY_TZ).strftime("%Y-%m-%d %H:%M:%S"))
        arrays["socArray"].append(point.soc)
        for name, watts in (
            ("powerSolarHomeArray", solar_home),
            ("powerSolarGirdArray", solar_grid),
            ("powerSolarFhpArray", solar_battery),
            ("powerGirdHomeArray", grid_home),
            ("powerGirdFhpArray", grid_battery),
            ("powerFhpHomeArray", battery_home),
            ("powerFhpGirdArray", battery_grid),
        ):
            arrays[name].append(round(max(watts, 0.0) / 1000, 3))
    return body(200, "query success", arrays)
