"""ChargePoint Web Services (SOAP 1.1, WS-Security UsernameToken with the API key and password): stations
from `getStations`, load for the whole account's stations in one `getLoad` (kW), control through
`shedLoad` / `clearShedState`. There is no consumer start/stop: stopping is a shed to 0 kW, starting clears
the shed. Answers are parsed with defusedxml."""

from datetime import timedelta
from email.utils import parsedate_to_datetime
from xml.sax.saxutils import escape

from defusedxml import ElementTree

from fleet.choices import GridServicesStatus
from integrations.adapters.base import (
    AuthError,
    CommandRejected,
    CommandResult,
    DeviceOffline,
    DeviceRef,
    DiscoveredDevice,
    IntegrationError,
    NotFound,
    OemAdapter,
    RateLimited,
    TelemetrySnapshot,
    TransientError,
    parse_retry_after,
)

NS = "urn:dictionary:com.chargepoint.webservices"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PATH = "webservices/chargepoint/services/5.1"
# ChargePoint's grid-services channel is the account's own load shed (`shedLoad`, the native EV demand-response
# primitive): every station the account lists takes it, with no enrollment at ChargePoint to wait for.
GRID_SERVICES = GridServicesStatus.ENROLLED


class ChargePointAdapter(OemAdapter):
    channel = "chargepoint"
    capabilities = frozenset({"discover", "telemetry", "load_shed", "grid_services"})
    # ChargePoint's web services report charging sessions (energy per session), not a power series: nothing
    # the 15-minute rollups could be filled from, so no history is read.
    history_note = "ChargePoint serves charging sessions, not a power history: nothing to backfill."
    telemetry_cadence = timedelta(minutes=5)
    # during events: one getLoad call answers for the whole station group
    event_telemetry_cadence = timedelta(minutes=1)
    required_credentials = ("username", "password")

    def call(self, operation: str, inner: str = ""):
        """One SOAP call; returns (the response element, the HTTP response)."""
        body = (
            f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:urn="{NS}">'
            f'<soapenv:Header><wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
            f"<wsse:Username>{escape(self.credentials['username'])}</wsse:Username>"
            f"<wsse:Password>{escape(self.credentials['password'])}</wsse:Password>"
            "</wsse:UsernameToken></wsse:Security></soapenv:Header>"
            f"<soapenv:Body><urn:{operation}>{inner}</urn:{operation}></soapenv:Body></soapenv:Envelope>"
        )
        response = self.http(
            "POST",
            PATH,
            data=body.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": operation},
        )
        if response.status_code == 429:
            raise RateLimited(
                "ChargePoint 429", status=429, retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError as exc:
            raise TransientError(f"ChargePoint HTTP {response.status_code}: not a SOAP answer") from exc
        fault = root.find(f".//{{{SOAP}}}Fault")
        if fault is not None:
            message = f"ChargePoint fault: {fault.findtext('faultstring', '').strip()}"
            if "Authentication" in message:
                raise AuthError(message, status=response.status_code)
            # SOAP 1.1 sends every fault as HTTP 500: the fault code says whose fault it is
            if fault.findtext("faultcode", "").endswith("Server"):
                raise TransientError(message, status=response.status_code)
            raise CommandRejected(message, status=response.status_code)
        result = root.find(f".//{{{NS}}}{operation}Response")
        if result is None:
            raise IntegrationError(f"ChargePoint answered without {operation}Response")
        code = result.findtext("responseCode", "")
        if code == "102":
            raise NotFound(f"ChargePoint: {result.findtext('responseText', 'station not found')}")
        if code != "100":
            raise CommandRejected(f"ChargePoint responseCode {code}: {result.findtext('responseText', '')}")
        return result, response

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        result, _ = self.call("getStations", "<searchQuery></searchQuery>")
        return [
            DiscoveredDevice(
                serial=station.findtext("stationID"),
                external_id=station.findtext("stationID"),
                kind="ev_charger",
                model=station.findtext("stationModel", ""),
                oem_data={"sgID": station.findtext("sgID", ""), "ports": int(station.findtext("numPorts", "1"))},
                grid_services_status=GRID_SERVICES,
            )
            for station in result.findall("stationData")
        ]

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        result = self.fetch_telemetry_many([device])[device.serial]
        if isinstance(result, Exception):
            raise result
        return result

    def fetch_telemetry_many(self, devices):
        """One `getLoad` for the station group returns every station's load: one call per batch."""
        groups = {d.oem_data.get("sgID", "") for d in devices}
        stations = {}
        for group in sorted(groups):
            query = f"<searchQuery><sgID>{escape(group)}</sgID></searchQuery>" if group else "<searchQuery/>"
            result, response = self.call("getLoad", query)
            # getLoad carries no timestamp: it is a live read, so the answer's Date is when it was measured
            measured_at = parsedate_to_datetime(response.headers["Date"])
            for station in result.findall("stationData"):
                stations[station.findtext("stationID")] = (station, measured_at)
        results = {}
        for device in devices:
            if device.serial not in stations:
                results[device.serial] = DeviceOffline("ChargePoint reports no load for the station")
                continue
            station, measured_at = stations[device.serial]
            results[device.serial] = self.normalize(station, measured_at)
        return results

    @staticmethod
    def normalize(station, measured_at) -> TelemetrySnapshot:
        kw = float(station.findtext("stationLoad") or 0)
        return TelemetrySnapshot(
            measured_at=measured_at,
            charger_wattage_w=round(kw * 1000, 1),
            charging_state="charging" if kw * 1000 > 50 else "idle",
            grid_services_status=GRID_SERVICES,
        )

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        if slug != "charger:set-operating-mode":
            raise CommandRejected(f"ChargePoint stations do not take {slug}")
        station = escape(device.external_id)
        if payload.get("operatingMode") == "stop-charging":
            minutes = int(payload.get("durationMinutes", 0))  # 0: until cleared
            self.call(
                "shedLoad",
                f"<shedQuery><shedStation><stationID>{station}</stationID>"
                f"<allowedLoadPerStation>0</allowedLoadPerStation></shedStation>"
                f"<timeInterval>{minutes}</timeInterval></shedQuery>",
            )
            return CommandResult("accepted", message="load shed to 0 kW")
        if payload.get("operatingMode") == "start-charging":
            self.call(
                "clearShedState", f"<shedQuery><shedStation><stationID>{station}</stationID></shedStation></shedQuery>"
            )
            return CommandResult("accepted", message="shed cleared")
        raise CommandRejected(f"unknown operatingMode {payload.get('operatingMode')!r}")

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """The station's shed state from `getLoad` for the station (a read, though SOAP sends it as a POST):
        stop-charging is in place when every port is shed to 0 kW (`shedState` 1, `allowedLoad` 0; a shed with
        a `timeInterval` that has run out is cleared, so not in place), start-charging when none is shed."""
        mode = payload.get("operatingMode")
        if slug != "charger:set-operating-mode" or mode not in ("start-charging", "stop-charging"):
            return None
        query = f"<searchQuery><stationID>{escape(device.external_id)}</stationID></searchQuery>"
        result, _ = self.call("getLoad", query)
        station = next(
            (s for s in result.findall("stationData") if s.findtext("stationID") == device.external_id), None
        )
        if station is None:
            raise NotFound("ChargePoint reports no load for the station")
        ports = station.findall("Port")
        if not ports:
            return None
        shed = [port.findtext("shedState", "").strip() == "1" for port in ports]
        if mode == "start-charging":
            return not any(shed)
        # a port shed by a percentage (no allowedLoad) is not what stop-charging writes
        allowed = [port.findtext("allowedLoad") for port in ports]
        return all(shed) and all(value is not None and float(value) == 0 for value in allowed)
