"""Simulated SolarEdge Monitoring API (read-only): `api_key` query parameter (403 when wrong), a 300-calls-a-day
quota per key answered with 429, site-local naive time strings, power flow in kW whose direction comes from
`connections`, storage telemetry whose `power` is + charging. No write endpoints at all."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from integrations.simulator.common import Router, transport_fault
from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import SimState

OEM = "solaredge"
router = Router()
SITE_TZ = ZoneInfo("America/Los_Angeles")
LOCAL = "%Y-%m-%d %H:%M:%S"


def handle(state: SimState, request: SimRequest) -> SimResponse:
    key = request.query.get("api_key", "")
    account = next((a for a in state.accounts.values() if a.oem == OEM and a.secret == key), None)
    if account is None:
        return SimResponse(403, "Invalid token", content_type="text/plain")
    day = state.clock.now().date().isoformat()
    with state.lock:
        if account.quota_day != day:
            account.quota_day, account.requests_today = day, 0
        account.requests_today += 1
        over_quota = account.requests_today > account.daily_quota
    view, kwargs = router.match(request)
    site = state.device_by_number(OEM, kwargs.get("site_id")) if "site_id" in kwargs else None
    fault = state.take_fault(OEM, account.name, *([site.serial] if site else []))
    if (response := transport_fault(fault)) is not None:
        return response
    if over_quota or (fault and fault.kind == "rate_limit"):
        return SimResponse(429, "Too many requests", content_type="text/plain")
    if fault and fault.kind in ("unauthorized", "forbidden", "expired_token"):
        return SimResponse(403, "Invalid token", content_type="text/plain")
    if fault and fault.kind == "server_error":
        return SimResponse(int(fault.params.get("status", 500)), "Internal Server Error", content_type="text/plain")
    if view is None or request.method != "GET":
        return SimResponse(404, "Not Found", content_type="text/plain")
    if "site_id" in kwargs:
        if site is None or site.account != account.name:
            return SimResponse(403, "Invalid token", content_type="text/plain")
        return view(state, request, state.live(site))
    return view(state, request, account)


@router.route("GET", "/sites/list")
def sites_list(state, request, account):
    mine = sorted(state.account_devices(OEM, account.name), key=lambda d: d.number)
    start, size = int(request.query.get("startIndex", 0)), min(100, int(request.query.get("size", 100)))
    return SimResponse(
        200,
        {
            "sites": {
                "count": len(mine),
                "site": [
                    {
                        "id": d.number,
                        "name": f"Site {d.number}",
                        "status": "Active" if d.online else "Pending Communication",
                        "peakPower": round(d.solar_peak_w / 1000, 2),
                        "lastUpdateTime": d.measured_at(state.clock.now()).astimezone(SITE_TZ).strftime(LOCAL),
                        "location": {"country": "United States", "state": "Oregon", "timeZone": "America/Los_Angeles"},
                    }
                    for d in mine[start : start + size]
                ],
            }
        },
    )


@router.route("GET", r"/site/(?P<site_id>\d+)/inventory")
def inventory(state, request, site):
    return SimResponse(
        200,
        {
            "Inventory": {
                "inverters": [
                    {
                        "SN": f"{site.serial}-INV",
                        "name": "Inverter 1",
                        "manufacturer": "SolarEdge",
                        "model": "SE7600H-US",
                    }
                ],
                "batteries": [
                    {
                        "SN": site.serial,
                        "name": "Battery 1.1",
                        "manufacturer": "SolarEdge",
                        "model": "BAT-10K1P",
                        "firmwareVersion": "2.0.4",
                        "connectedInverterSn": f"{site.serial}-INV",
                        "nameplateCapacity": site.capacity_wh,
                    }
                ],
                "meters": [],
                "gateways": [],
                "sensors": [],
            }
        },
    )


@router.route("GET", r"/site/(?P<site_id>\d+)/currentPowerFlow")
def current_power_flow(state, request, site):
    at = site.measured_at(state.clock.now())
    grid, battery, pv, load = site.grid_w(at), site.battery_w(at), site.solar_w(at), site.load_w(at)
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
                    "chargeLevel": round(site.soc),
                    "critical": False,
                },
            }
        },
    )


@router.route("GET", r"/site/(?P<site_id>\d+)/storageData")
def storage_data(state, request, site):
    at = site.measured_at(state.clock.now())
    points = [at - timedelta(minutes=5 * i) for i in (2, 1, 0)]
    return SimResponse(
        200,
        {
            "storageData": {
                "batteryCount": 1,
                "batteries": [
                    {
                        "nameplate": site.capacity_wh,
                        "serialNumber": site.serial,
                        "modelNumber": "BAT-10K1P",
                        "telemetryCount": len(points),
                        "telemetries": [
                            {
                                "timeStamp": point.astimezone(SITE_TZ).strftime(LOCAL),
                                "power": -site.battery_w(point),  # SolarEdge: + charging
                                "batteryState": 3,
                                "lifeTimeEnergyCharged": 1_250_000,
                                "lifeTimeEnergyDischarged": 1_190_000,
                                "fullPackEnergyAvailable": site.capacity_wh,
                                "internalTemp": 24,
                                "ACGridCharging": 0,
                                "batteryPercentageState": round(site.soc, 1),
                            }
                            for point in points
                        ],
                    }
                ],
            }
        },
    )
