"""The OEM simulator over HTTP: one server for every simulated cloud, `/<oem>/...` per OEM, `/_sim/...` to
steer it (advance time, inject faults, take devices offline, raise Storm Guard).

Standard library only (`http.server.ThreadingHTTPServer`, HTTP/1.1 keep-alive): it runs in a thread inside a
test, or from `manage.py run_oem_simulator`, with nothing to install.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from integrations.simulator.state import SimState


@dataclass
class SimRequest:
    method: str
    path: str  # below /<oem>, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class SimResponse:
    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to stall before answering (slower than the client's timeout)
    drop: bool = False  # close the connection without answering

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def _oem_modules():
    from integrations.simulator import chargepoint, emporia, enphase, franklinwh, smartcar, solaredge, tesla

    return {
        "tesla": tesla,
        "franklinwh": franklinwh,
        "enphase": enphase,
        "solaredge": solaredge,
        "emporia": emporia,
        "chargepoint": chargepoint,
        "smartcar": smartcar,
    }


class _LazyModules(dict):
    def _load(self):
        if not dict.__len__(self):
            self.update(_oem_modules())

    def __contains__(self, key):
        self._load()
        return dict.__contains__(self, key)

    def __getitem__(self, key):
        self._load()
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._load()
        return dict.get(self, key, default)


OEM_MODULES = _LazyModules()


def handle(state: SimState, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> SimResponse:
    parts = urlsplit(raw_path)
    segments = parts.path.strip("/").split("/", 1)
    oem, rest = segments[0], (segments[1] if len(segments) > 1 else "")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    request = SimRequest(method=method, path="/" + rest, query=query, headers=headers, body=body)
    if oem == "_sim":
        return control(state, request)
    module = OEM_MODULES.get(oem)
    if module is None:
        return SimResponse(404, {"error": f"no simulated OEM {oem!r}"})
    state.count_request(oem, request.method, request.path)
    if request.method != "GET" and not request.path.endswith(getattr(module, "READ_ONLY_POSTS", ())):
        state.count_write(oem, request.method, request.path, request.body, query=request.query)
    from integrations.simulator import oauth

    # customers' consent pages, code exchange and grant refreshes; everything else is the OEM module's
    if (response := oauth.handle(state, oem, request)) is not None:
        return response
    return module.handle(state, request)


def control(state: SimState, request: SimRequest) -> SimResponse:
    """The operator API: POST /_sim/advance {seconds}, /_sim/fault {oem, target, kind, times, …} (target: an
    account name, a device serial, or `<account>:token` for the account's token endpoint),
    /_sim/clear, /_sim/offline {oem, serial, online}, /_sim/storm {oem, serial, active}, /_sim/grid-services-event
    {oem, serial, active}, /_sim/revoke {oem, user} (a customer withdraws consent); GET /_sim/stats,
    /_sim/energy?oem=…&serial=… (a device's own energy account, Wh)."""
    try:
        data = request.json() if request.method == "POST" else {}
        if request.path == "/advance":
            return SimResponse(200, {"now": state.advance(float(data["seconds"])).isoformat()})
        if request.path == "/fault":
            params = {k: v for k, v in data.items() if k not in {"oem", "target", "kind", "times"}}
            state.inject(data["oem"], data["target"], data["kind"], times=data.get("times", 1), **params)
            return SimResponse(200, {"ok": True})
        if request.path == "/clear":
            state.clear_faults()
            return SimResponse(200, {"ok": True})
        if request.path == "/offline":
            state.set_online(data["oem"], data["serial"], bool(data.get("online", False)))
            return SimResponse(200, {"ok": True})
        if request.path == "/storm":
            state.set_storm(data["oem"], data["serial"], bool(data.get("active", True)))
            return SimResponse(200, {"ok": True})
        if request.path == "/grid-services-event":
            state.set_grid_services_event(data["oem"], data["serial"], bool(data.get("active", True)))
            return SimResponse(200, {"ok": True})
        if request.path == "/revoke":
            from integrations.simulator import oauth

            return SimResponse(200, {"revoked": oauth.grants_revoke(state, data["oem"], data["user"])})
        if request.path == "/energy":
            return SimResponse(200, state.energy(request.query["oem"], request.query["serial"]))
        if request.path == "/stats":
            return SimResponse(
                200,
                {
                    "now": state.clock.now().isoformat(),
                    "devices": len(state.devices),
                    "requests": state.request_count,
                    "requestsByOem": state.requests_by_oem,
                    "maxInFlight": state.max_in_flight,
                    "writes": state.write_counts(),
                },
            )
    except (KeyError, ValueError) as exc:
        return SimResponse(400, {"error": f"bad control request: {exc}"})
    return SimResponse(404, {"error": "unknown control path"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the adapters' pooled sessions reuse connections
    server_version = "TextureOemSimulator/1"

    def setup(self):
        super().setup()
        # headers and body leave in separate writes: without NODELAY, Nagle + delayed ACK stall each answer ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = handle(self.server.state, self.command, self.path, headers, body)
        if response.delay:
            time.sleep(response.delay)
        if response.drop:
            # an abrupt close mid-exchange, as a load balancer or a flaky uplink does
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = response.encoded()
        self.log_request(response.status)
        self.send_response_only(response.status)
        self.send_header("Server", self.server_version)
        if "Date" not in response.headers:
            self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SimulatorServer:
    """The simulator bound to 127.0.0.1 (port 0 picks a free port), served from a background thread.

    Usage: `with SimulatorServer(state) as sim: ... sim.url ...`.
    """

    def __init__(self, state: SimState, *, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self.state = state
        self.httpd = _Server((host, port), _Handler)
        self.httpd.state = state
        self.httpd.verbose = verbose
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="oem-simulator", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def base_urls(self) -> dict[str, str]:
        return {oem: f"{self.url}/{oem}" for oem in _oem_modules()}

    def start(self) -> SimulatorServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
