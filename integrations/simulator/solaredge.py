"""Simulated SolarEdge Monitoring API (read-only): `api_key` query parameter (403 when wrong), site-local naive
time strings, power flow in kW whose direction comes from `connections`, storage telemetry whose `power` is
+ charging. No write endpoints at all.

SolarEdge's usage limits, enforced as its monitoring server does: 300 calls a day per API key and 300 a day
per site (a call about a site counts for both), and at most 3 calls in flight from one source IP (every client
of the simulator is one IP); past either limit the answer is 429. A site may hold several batteries
(`SimDevice.site_number`): one site-level call answers for all of them. `SimState.latency["solaredge"]` makes
each answer take that long, so concurrent calls really overlap."""

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from integrations.simulator.common import Router, transport_fault
from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import SimDevice, SimState

OEM = "solaredge"
router = Router()
SITE_TZ = ZoneInfo("America/Los_Angeles")
LOCAL = "%Y-%m-%d %H:%M:%S"
MAX_CONCURRENT_CALLS = 3  # per source IP
SITE_DAILY_QUOTA = 300


def too_many_requests() -> SimResponse:
    return SimResponse(429, "Too many requests", content_type="text/plain")


def site_id(device: SimDevice) -> int:
    return device.site_number or device.number


def account_sites(state: SimState, account: str) -> dict[int, list[SimDevice]]:
    """The account's sites (by id, ascending), each with its batteries."""
    sites: dict[int, list[SimDevice]] = {}
    for device in sorted(state.account_devices(OEM, account), key=lambda d: d.number):
        sites.setdefault(site_id(device), []).append(device)
    return dict(sorted(sites.items()))


def handle(state: SimState, request: SimRequest) -> SimResponse:
    in_flight = state.call_started(OEM)
    try:
        response = answer(state, request, in_flight)
        if response.status != 429 and state.latency.get(OEM):
            time.sleep(state.latency[OEM])  # still in flight meanwhile
        return response
    finally:
        state.call_finished(OEM)


def answer(state: SimState, request: SimRequest, in_flight: int) -> SimResponse:
    key = request.query.get("api_key", "")
    account = next((a for a in state.accounts.values() if a.oem == OEM and a.secret == key), None)
    if account is None:
        return SimResponse(403, "Invalid token", content_type="text/plain")
    view, kwargs = router.match(request)
    site = None
    if "site_id" in kwargs:
        site = [d for d in state.account_devices(OEM, account.name) if str(site_id(d)) == kwargs["site_id"]]
    # every call counts, refused ones too: for the key, and for the site it is about
    over_quota = state.count_daily(OEM, f"key:{account.name}") > account.daily_quota
    if site:
        over_quota |= state.count_daily(OEM, f"site:{kwargs['site_id']}") > SITE_DAILY_QUOTA
    if over_quota or in_flight > MAX_CONCURRENT_CALLS:
        return too_many_requests()
    fault = state.take_fault(OEM, account.name, *(d.serial for d in site or ()))
    if (response := transport_fault(fault)) is not None:
        return response
    if fault and fault.kind == "rate_limit":
        return too_many_requests()
    if fault and fault.kind in ("unauthorized", "forbidden", "expired_token"):
        return SimResponse(403, "Invalid token", content_type="text/plain")
    if fault and fault.kind == "server_error":
        return SimResponse(int(fault.params.get("status", 500)), "Internal Server Error", content_type="text/plain")
    if view is None or request.method != "GET":
        return SimResponse(404, "Not Found", content_type="text/plain")
    if "site_id" in kwargs:
        if not site:
            return SimResponse(403, "Invalid token", content_type="text/plain")
        return view(state, request, [state.live(d) for d in site])
    return view(state, request, account)


@router.route("GET", "/sites/list")
def sites_list(state, request, account):
    sites = list(account_sites(state, account.name).items())
    start, size = int(request.query.get("startIndex", 0)), min(100, int(request.query.get("size", 100)))
    now = state.clock.now()
    return SimResponse(
        200,
        {
            "sites": {
                "count": len(sites),
                "site": [
                    {
                        "id": number,
                        "name": f"Site {number}",
                        "status": "Active" if any(d.online for d in batteries) else "Pending Communication",
                        "peakPower": round(batteries[0].solar_peak_w / 1000, 2),
                        "lastUpdateTime": max(d.measured_at(now) for d in batteries)
                        .astimezone(SITE_TZ)
                        .strftime(LOCAL),
                        "location": {"country": "United States", "state": "Oregon", "timeZone": "America/Los_Angeles"},
                    }
                    for number, batteries in sites[start : start + size]
                ],
            }
        },
    )


@router.route("GET", r"/site/(?P<site_id>\d+)/inventory")
def inventory(state, request, site):
    inverter = f"{site[0].serial}-INV"
    return SimResponse(
        200,
        {
            "Inventory": {
                "inverters": [
                    {"SN": inverter, "name": "Inverter 1", "manufacturer": "SolarEdge", "model": "SE7600H-US"}
                ],
                "batteries": [
                    {
                        "SN": battery.serial,
                        "name": f"Battery 1.{n}",
                        "manufacturer": "SolarEdge",
                        "model": "BAT-10K1P",
                        "firmwareVersion": "2.0.4",
                        "connectedInverterSn": inverter,
                        "nameplateCapacity": battery.capacity_wh,
                    }
                    for n, battery in enumerate(site, start=1)
                ],
                "meters": [],
                "gateways": [],
                "sensors": [],
            }
        },
    )


@router.route("GET", r"/site/(?P<site_id>\d+)/currentPowerFlow")
def current_power_flow(state, request, site):
    """The whole site: the sum of its batteries' homes (each SimDevice carries its own solar and load)."""
    now = state.clock.now()
    totals = {"grid": 0.0, "battery": 0.0, "pv": 0.0, "load": 0.0}
    for battery in site:
        at = battery.measured_at(now)
        totals["grid"] += battery.grid_w(at)
        totals["battery"] += battery.battery_w(at)
        totals["pv"] += battery.solar_w(at)
        totals["load"] += battery.load_w(at)
    grid, battery, pv, load = totals["grid"], totals["battery"], totals["pv"], totals["load"]
    connections = [{"from": "PV", "to": "Load"}] if pv else []
    connections.append({"from": "GRID", "to": "Load"} if grid >= 0 else {"from": "Load", "to": "Grid"})
    if battery > 0:
        connections.append({"from": "STORAGE", "to": "Load"})
    elif battery < 0:
        connections.append({"from": "PV", "to": "STORAGE"})
    return SimResponse(
        200,
        {
            "siteCurrentPowerFlow": {
                "updateRefreshRate": 3,
                "unit": "kW",
                "connections": connections,
                "GRID": {"status": "Active", "currentPower": round(abs(grid) / 1000, 3)},
                "LOAD": {"status": "Active", "currentPower": round(load / 1000, 3)},
                "PV": {"status": "Active" if pv else "Idle", "currentPower": round(pv / 1000, 3)},
                "STORAGE": {
                    "status": "Discharging" if battery > 0 else ("Charging" if battery < 0 else "Idle"),
                    "currentPower": round(abs(battery) / 1000, 3),
                    "chargeLevel": round(sum(d.soc for d in site) / len(site)),
                    "critical": False,
                },
            }
        },
    )


# storageData's window: at most one week per call (oem-apis.md §4, from the Monitoring API's PDF as summarised
# by TennysonKnoxLove/sun-gazer; unverified); a longer one is refused with 403, as SolarEdge answers a period
# over its limit (unverified).
STORAGE_MAX_WINDOW = timedelta(days=7)


@router.route("GET", r"/site/(?P<site_id>\d+)/storageData")
def storage_data(state, request, site):
    """Every battery of the site (or those named in `serials`): its 5-minute points between `startTime` and
    `endTime` (site-local), at most a week; without a window, the last three points."""
    wanted = {s for s in request.query.get("serials", "").split(",") if s}
    batteries = [d for d in site if not wanted or d.serial in wanted]
    now = state.clock.now()
    window = None
    if request.query.get("startTime") and request.query.get("endTime"):
        try:
            window = tuple(
                datetime.strptime(request.query[name], LOCAL).replace(tzinfo=SITE_TZ)
                for name in ("startTime", "endTime")
            )
        except ValueError:
            return SimResponse(400, "startTime and endTime are yyyy-MM-dd hh:mm:ss", content_type="text/plain")
        if window[1] - window[0] > STORAGE_MAX_WINDOW:
            return SimResponse(403, "The requested period exceeds the limit of one week", content_type="text/plain")
    return SimResponse(
        200,
        {
            "storageData": {
                "batteryCount": len(batteries),
                "batteries": [_battery_telemetry(state, battery, now, window) for battery in batteries],
            }
        },
    )


def _battery_telemetry(state: SimState, battery: SimDevice, now, window) -> dict:
    if window is None or window[1] - window[0] <= timedelta(hours=1):
        # the live read: the last three points, at the current SoC
        at = battery.measured_at(now)
        points = [(at - timedelta(minutes=5 * i), None) for i in (2, 1, 0)]
        points = [(point, battery.battery_w(point), battery.soc) for point, _ in points]
    else:
        points = [
            (p.at, p.battery_w, p.soc) for p in state.history(battery, window[0], window[1] + timedelta(seconds=1))
        ]
    return {
        "nameplate": battery.capacity_wh,
        "serialNumber": battery.serial,
        "modelNumber": "BAT-10K1P",
        "telemetryCount": len(points),
        "telemetries": [
            {
                "timeStamp": point.astimezone(SITE_TZ).strftime(LOCAL),
                "power": -power,  # SolarEdge: + charging
                "batteryState": 3,
                "lifeTimeEnergyCharged": 1_250_000,
                "lifeTimeEnergyDischarged": 1_190_000,
                "fullPackEnergyAvailable": battery.capacity_wh,
                "internalTemp": 24,
                "ACGridCharging": 0,
                "batteryPercentageState": round(soc, 1),
            }
            for point, power, soc in points
        ],
    }
