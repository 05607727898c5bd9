"""SolarEdge Monitoring API, read-only: `api_key` in the query string, 403 for a bad key, 429 when the
day's 300-call quota (or 3 concurrent calls) is exceeded. Times are site-local strings without an offset,
converted with the site's timezone from discovery. The storage `power` is + charging (flipped here), and the
power-flow values are unsigned kW whose direction comes from `connections`. No commands."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from integrations.adapters.base import (
    AuthError,
    DeviceRef,
    DiscoveredDevice,
    IntegrationError,
    NotFound,
    OemAdapter,
    RateLimited,
    TelemetrySnapshot,
    TransientError,
)

LOCAL = "%Y-%m-%d %H:%M:%S"


class SolarEdgeAdapter(OemAdapter):
    channel = "solaredge"
    capabilities = frozenset({"discover", "telemetry"})
    # 300 calls a day per key: two per site every 15 minutes is 192
    telemetry_cadence = timedelta(minutes=15)
    required_credentials = ("api_key",)

    def call(self, path: str, **params) -> dict:
        response = self.http("GET", path, params={**params, "api_key": self.credentials["api_key"]})
        status = response.status_code
        if status == 200:
            return response.json()
        message = f"SolarEdge {status}: {response.text[:200]}"
        if status == 429:
            # a daily quota: nothing to gain before the next day (UTC midnight, the conservative reading)
            now = datetime.now(UTC)
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise RateLimited(message, status=status, retry_after=(midnight - now).total_seconds())
        if status == 403:
            raise AuthError(f"{message} (the API key is wrong or has no access to this site)", status=status)
        if status == 404:
            raise NotFound(message, status=status)
        if status >= 500:
            raise TransientError(message, status=status)
        raise IntegrationError(message, status=status)

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        """Sites in pages of 100, then each site's inventory (the serials live there, not in the list)."""
        found, start = [], 0
        while True:
            page = self.call("sites/list", size=100, startIndex=start)["sites"]
            for site in page["site"]:
                inventory = self.call(f"site/{site['id']}/inventory")["Inventory"]
                timezone_name = (site.get("location") or {}).get("timeZone", "UTC")
                for battery in inventory.get("batteries", []):
                    found.append(
                        DiscoveredDevice(
                            serial=battery["SN"],
                            external_id=str(site["id"]),
                            kind="battery",
                            online=site.get("status") == "Active",
                            model=battery.get("model", ""),
                            firmware=battery.get("firmwareVersion", ""),
                            oem_data={"siteId": site["id"], "timeZone": timezone_name},
                        )
                    )
            start += len(page["site"])
            if start >= page["count"] or not page["site"]:
                return found

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        site = device.external_id
        zone = ZoneInfo(device.oem_data.get("timeZone") or "UTC")
        end = datetime.now(zone).replace(tzinfo=None) + timedelta(minutes=5)
        storage = self.call(
            f"site/{site}/storageData",
            startTime=(end - timedelta(minutes=30)).strftime(LOCAL),
            endTime=end.strftime(LOCAL),
        )["storageData"]
        flow = self.call(f"site/{site}/currentPowerFlow")["siteCurrentPowerFlow"]
        return self.normalize(storage, flow, zone, serial=device.serial)

    @staticmethod
    def normalize(storage: dict, flow: dict, zone: ZoneInfo, *, serial: str) -> TelemetrySnapshot:
        battery = next((b for b in storage["batteries"] if b.get("serialNumber") == serial), None)
        if battery is None or not battery["telemetries"]:
            raise NotFound(f"SolarEdge reports no storage telemetry for {serial}")
        last = max(battery["telemetries"], key=lambda t: t["timeStamp"])
        scale = 1000 if flow.get("unit") == "kW" else 1
        sources = {(c["from"].upper(), c["to"].upper()) for c in flow.get("connections", [])}
        grid = (flow.get("GRID") or {}).get("currentPower")
        grid_w = None
        if grid is not None:
            # unsigned: importing when the grid feeds the load, exporting when the load side feeds the grid
            grid_w = grid * scale * (-1 if ("LOAD", "GRID") in sources else 1)
        pv = (flow.get("PV") or {}).get("currentPower")
        return TelemetrySnapshot(
            measured_at=datetime.strptime(last["timeStamp"], LOCAL).replace(tzinfo=zone),
            charge_percentage=last.get("batteryPercentageState"),
            charge_rate_w=None if last.get("power") is None else -float(last["power"]),  # + charging → + discharging
            grid_power_w=grid_w,
            solar_power_w=None if pv is None else pv * scale,
        )
