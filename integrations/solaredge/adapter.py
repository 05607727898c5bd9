"""SolarEdge Monitoring API, read-only: `api_key` in the query string, 403 for a bad key, 429 past a limit.
Times are site-local strings without an offset, converted with the site's timezone from discovery. The storage
`power` is + charging (flipped here), and the power-flow values are unsigned kW whose direction comes from
`connections`. No commands.

SolarEdge's usage limits shape this adapter: 300 calls a day per API key and per site, at most 3 concurrent
calls from one source IP. So every call is per site, never per device (one `storageData` answers for every
battery of the site, one `currentPowerFlow` for the site); SolarEdge's bulk form (comma-separated site ids) only
exists for the energy/power/overview/data-period endpoints, none of which carries the storage state, so telemetry
costs two calls per site. Telemetry sync is paced by the quota (`daily_call_quota`, see
`integrations.services.telemetry_pace`), sites are read at most `max_concurrency` at a time, and discovery stops
reading inventories once it has found every serial it was asked for."""

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fleet.choices import GridServicesStatus
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
    in_window,
)

log = logging.getLogger(__name__)

LOCAL = "%Y-%m-%d %H:%M:%S"
SITES_PAGE = 100  # the most `sites/list` returns per page


class SolarEdgeAdapter(OemAdapter):
    channel = "solaredge"
    capabilities = frozenset({"discover", "telemetry"})
    # The beat this OEM is scheduled on; the quota decides how many of those beats actually read.
    telemetry_cadence = timedelta(minutes=15)
    required_credentials = ("api_key",)
    # 300 calls a day per API key (and per site); the reserve is kept for connection tests (recorded by no run).
    daily_call_quota = 300
    daily_call_reserve = 30
    # At most 3 calls in flight from one source IP: the sites of one sync are read 3 at a time.
    max_concurrency = 3
    # A serial not found is looked up again only after this, doubling up to a day (each look-up reads inventories).
    discovery_recheck_after = timedelta(hours=6)
    # Sites already bound (`linked_external_ids`) are read last in discovery: a newly registered battery is most
    # likely on a site the portal does not know yet.

    def call(self, path: str, **params) -> dict:
        response = self.http("GET", path, params={**params, "api_key": self.credentials["api_key"]})
        status = response.status_code
        if status == 200:
            return response.json()
        message = f"SolarEdge {status}: {response.text[:200]}"
        if status == 429:
            # a daily quota (or too many concurrent calls: SolarEdge answers both alike): nothing to gain before
            # the next day (UTC midnight, the conservative reading)
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

    @staticmethod
    def telemetry_calls(devices: list[DeviceRef]) -> int:
        """Calls one telemetry sync of these devices makes: `storageData` + `currentPowerFlow` per site."""
        return 2 * len({device.external_id for device in devices})

    # -- discovery -----------------------------------------------------------------------------------------
    def sites(self) -> list[dict]:
        """Every site of the key, in pages of 100."""
        sites: list[dict] = []
        while True:
            page = self.call("sites/list", size=SITES_PAGE, startIndex=len(sites))["sites"]
            sites += page["site"]
            if not page["site"] or len(sites) >= page["count"]:
                return sites

    def test_connection(self) -> str:
        return f"{len(self.sites())} site(s) visible to this API key"

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        """Sites in pages of 100, then inventories (the serials live there, not in the list): sites without a
        linked device first, and no more once every serial in `serials` is found (None: read them all)."""
        wanted = None if serials is None else set(serials)
        found: list[DiscoveredDevice] = []
        sites = sorted(self.sites(), key=lambda site: str(site["id"]) in self.linked_external_ids)
        for site in sites:
            if wanted is not None and wanted <= {device.serial for device in found}:
                break
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
                        grid_services_status=GridServicesStatus.UNSUPPORTED,  # the monitoring API is read-only
                    )
                )
        return found

    # -- telemetry -----------------------------------------------------------------------------------------
    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        result = self.read_site(device.external_id, [device])[device.serial]
        if isinstance(result, IntegrationError):
            raise result
        return result

    def fetch_telemetry_many(self, devices: list[DeviceRef]) -> dict[str, TelemetrySnapshot | IntegrationError]:
        """Two calls per site, whatever the number of its batteries; sites read `max_concurrency` at a time. A
        site that fails transiently fails its devices (retried); a rate limit or a refused key stops the sync."""
        by_site: dict[str, list[DeviceRef]] = defaultdict(list)
        for device in devices:
            by_site[device.external_id].append(device)
        results: dict[str, TelemetrySnapshot | IntegrationError] = {}
        if not by_site:
            return results
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(by_site))) as pool:
            futures = {pool.submit(self.read_site, site, refs): refs for site, refs in by_site.items()}
            try:
                for future in as_completed(futures):
                    refs = futures[future]
                    try:
                        results.update(future.result())
                    except (RateLimited, AuthError):
                        raise  # account-wide
                    except IntegrationError as exc:
                        results.update({ref.serial: exc for ref in refs})
                    except Exception as exc:
                        # a malformed answer for one site is its devices' failure, not the sync's
                        log.exception("SolarEdge: unexpected answer for site %s", refs[0].external_id)
                        error = IntegrationError(f"Unexpected answer from SolarEdge: {type(exc).__name__}: {exc}")
                        results.update({ref.serial: error for ref in refs})
            except (RateLimited, AuthError):
                for pending in futures:
                    pending.cancel()  # not started: no call spent on them
                raise
        return results

    def read_site(self, site: str, devices: list[DeviceRef]) -> dict[str, TelemetrySnapshot | IntegrationError]:
        """One site's storage (every battery) and power flow; a battery missing from the answer is NotFound."""
        zone = ZoneInfo(devices[0].oem_data.get("timeZone") or "UTC")
        end = datetime.now(zone).replace(tzinfo=None) + timedelta(minutes=5)
        storage = self.call(
            f"site/{site}/storageData",
            startTime=(end - timedelta(minutes=30)).strftime(LOCAL),
            endTime=end.strftime(LOCAL),
        )["storageData"]
        flow = self.call(f"site/{site}/currentPowerFlow")["siteCurrentPowerFlow"]
        results: dict[str, TelemetrySnapshot | IntegrationError] = {}
        for device in devices:
            try:
                results[device.serial] = self.normalize(storage, flow, zone, serial=device.serial)
            except NotFound as exc:
                results[device.serial] = exc
        return results

    # Battery history: `storageData?startTime=&endTime=` (site-local), every battery of the site per call, at most
    # a week per call (oem-apis.md §4, from the Monitoring API PDF as summarised by sun-gazer; unverified). Read
    # site by site (one call per week per site, however many batteries, against the 300-a-day quota). The
    # power/energy details endpoints (grid, solar) are not read: the storage's power and SoC are what a battery's
    # baseline needs.
    history_supported = True
    HISTORY_WINDOW = timedelta(days=7)

    def telemetry_history(self, devices, start: datetime, end: datetime):
        by_site: dict[str, list[DeviceRef]] = defaultdict(list)
        for device in devices:
            by_site[device.external_id].append(device)
        results: dict = {}
        for site, refs in by_site.items():
            zone = ZoneInfo(refs[0].oem_data.get("timeZone") or "UTC")
            found: dict[str, list[TelemetrySnapshot]] = {ref.serial: [] for ref in refs}
            cursor = start
            try:
                while cursor < end:
                    until = min(end, cursor + self.HISTORY_WINDOW)
                    storage = self.call(
                        f"site/{site}/storageData",
                        startTime=cursor.astimezone(zone).strftime(LOCAL),
                        endTime=until.astimezone(zone).strftime(LOCAL),
                    )["storageData"]
                    for battery in storage.get("batteries") or []:
                        if battery.get("serialNumber") not in found:
                            continue
                        found[battery["serialNumber"]] += [
                            TelemetrySnapshot(
                                measured_at=datetime.strptime(point["timeStamp"], LOCAL).replace(tzinfo=zone),
                                charge_percentage=point.get("batteryPercentageState"),
                                charge_rate_w=None if point.get("power") is None else -float(point["power"]),
                            )
                            for point in battery.get("telemetries") or []
                        ]
                    cursor = until
            except NotFound as exc:
                results.update({ref.serial: exc for ref in refs})
                continue
            results.update({serial: in_window(snaps, start, end) for serial, snaps in found.items()})
        return results

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
            grid_services_status=GridServicesStatus.UNSUPPORTED,
        )
