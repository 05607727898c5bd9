"""Simulated ChargePoint Web Services (SOAP 1.1, namespace urn:dictionary:com.chargepoint.webservices):
WS-Security UsernameToken auth, SOAP faults, `getStations`, `getLoad` (kW, per station and port, for a whole
station group in one call), `shedLoad` (persists until cleared or until `timeInterval` minutes pass) and
`clearShedState`."""

from datetime import timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

from defusedxml import ElementTree

from integrations.simulator.common import transport_fault
from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import SimState

OEM = "chargepoint"
NS = "urn:dictionary:com.chargepoint.webservices"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PATH = "/webservices/chargepoint/services/5.1"


def envelope(body: str) -> str:
    return f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:ns1="{NS}"><soap:Body>{body}</soap:Body></soap:Envelope>'


def fault(code: str, message: str, status: int = 500) -> SimResponse:
    body = f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring></soap:Fault>"
    return SimResponse(status, envelope(body), content_type="text/xml; charset=utf-8")


def ok(xml: str, *, date=None) -> SimResponse:
    headers = {"Date": format_datetime(date, usegmt=True)} if date else {}
    return SimResponse(200, envelope(xml), headers=headers, content_type="text/xml; charset=utf-8")


def _text(element, path) -> str:
    found = element.find(path)
    return "" if found is None or found.text is None else found.text.strip()


def handle(state: SimState, request: SimRequest) -> SimResponse:
    if request.path != PATH or request.method != "POST":
        return SimResponse(404, "Not Found", content_type="text/plain")
    try:
        root = ElementTree.fromstring(request.body)
    except ElementTree.ParseError:
        return fault("soap:Client", "Malformed SOAP request")
    token = root.find(f".//{{{WSSE}}}UsernameToken")
    username = _text(token, f"{{{WSSE}}}Username") if token is not None else ""
    password = _text(token, f"{{{WSSE}}}Password") if token is not None else ""
    account = state.account(OEM, username)
    if account is None or account.secret != password:
        return fault("soap:Client", "Authentication failed: invalid API key or password")
    body = root.find(f"{{{SOAP}}}Body")
    operation = next(iter(body), None) if body is not None else None
    if operation is None:
        return fault("soap:Client", "No operation")
    name = operation.tag.split("}")[-1]
    station_id = _text(operation, ".//stationID")
    station = state.device(OEM, station_id) if station_id else None
    flt = state.take_fault(OEM, account.name, *([station.serial] if station else []))
    if (response := transport_fault(flt)) is not None:
        return response
    if flt and flt.kind == "rate_limit":
        return SimResponse(
            429, "Too Many Requests", {"Retry-After": str(flt.params.get("retry_after", 60))}, "text/plain"
        )
    if flt and flt.kind in ("unauthorized", "forbidden", "expired_token"):
        return fault("soap:Client", "Authentication failed: invalid API key or password")
    if flt and flt.kind == "server_error":
        return fault("soap:Server", "Internal error", int(flt.params.get("status", 500)))
    if station_id and (station is None or station.account != account.name):
        return ok(
            f"<ns1:{name}Response><responseCode>102</responseCode><responseText>Station not found"
            f"</responseText></ns1:{name}Response>"
        )
    view = {"getStations": get_stations, "getLoad": get_load, "shedLoad": shed_load, "clearShedState": clear_shed}.get(
        name
    )
    if view is None:
        return fault("soap:Client", f"Unknown operation {name}")
    return view(state, account, operation, station)


def _station_kw(state, station) -> float:
    now = state.clock.now()
    _expire_shed(station, now)
    watts = -state.live(station).battery_w(now)
    if station.shed_kw is not None:
        watts = min(watts, station.shed_kw * 1000)
    return round(watts / 1000, 3) if station.online else 0.0


def _expire_shed(station, now) -> None:
    until = station.shed_until
    if until is not None and now >= until:
        station.shed_kw, station.shed_until = None, None


def get_stations(state, account, operation, station):
    rows = "".join(
        f"<stationData><stationID>{escape(d.serial)}</stationID><stationManufacturer>ChargePoint</stationManufacturer>"
        f"<stationModel>CPF50</stationModel><stationName>Home {d.number}</stationName><numPorts>1</numPorts>"
        f"<sgID>{escape(account.name)}-group</sgID></stationData>"
        for d in state.account_devices(OEM, account.name)
    )
    return ok(f"<ns1:getStationsResponse><responseCode>100</responseCode>{rows}</ns1:getStationsResponse>")


def get_load(state, account, operation, station):
    stations = [station] if station else state.account_devices(OEM, account.name)
    now = state.clock.now()
    rows = []
    for d in stations:
        kw = _station_kw(state, d)
        shed = d.shed_kw is not None
        port = (
            f"<Port><portNumber>1</portNumber><userID></userID><credentialID></credentialID><portLoad>{kw}</portLoad>"
            f"<shedState>{1 if shed else 0}</shedState>"
            + (f"<allowedLoad>{d.shed_kw}</allowedLoad>" if shed else "")
            + "</Port>"
        )
        rows.append(
            f"<stationData><stationID>{escape(d.serial)}</stationID><stationName>Home {d.number}</stationName>"
            f"<Address>1 Main St</Address><stationLoad>{kw}</stationLoad>{port}</stationData>"
        )
    total = sum(_station_kw(state, d) for d in stations)
    return ok(
        f"<ns1:getLoadResponse><responseCode>100</responseCode><sgLoad>{round(total, 3)}</sgLoad>"
        f"<numStations>{len(stations)}</numStations><groupName>{escape(account.name)}</groupName>"
        f"{''.join(rows)}</ns1:getLoadResponse>",
        date=now.replace(microsecond=0),
    )


def shed_load(state, account, operation, station):
    if station is None:
        return fault("soap:Client", "shedStation/stationID is required")
    try:
        allowed = float(_text(operation, ".//allowedLoadPerStation"))
        minutes = int(_text(operation, ".//timeInterval") or 0)
    except ValueError:
        return fault("soap:Client", "allowedLoadPerStation and timeInterval must be numbers")
    station.shed_kw = allowed
    station.shed_until = state.clock.now() + timedelta(minutes=minutes) if minutes else None
    return ok("<ns1:shedLoadResponse><responseCode>100</responseCode><Success>1</Success></ns1:shedLoadResponse>")


def clear_shed(state, account, operation, station):
    if station is None:
        return fault("soap:Client", "shedStation/stationID is required")
    station.shed_kw, station.shed_until = None, None
    return ok(
        "<ns1:clearShedStateResponse><responseCode>100</responseCode><Success>1</Success></ns1:clearShedStateResponse>"
    )
