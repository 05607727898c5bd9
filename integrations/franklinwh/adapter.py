"""FranklinWH (aGate/aPower), the app cloud: MD5-password login, `loginToken` header, and errors returned as
HTTP 200 with a body `code`. Power values arrive in kW; battery `p_fhp` is + discharging and grid `p_uti`
+ importing, like docs/domain.md."""

import hashlib
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from integrations.adapters.base import (
    ALREADY_IN_EFFECT,
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
    day_starts,
    in_window,
    parse_retry_after,
    settings_applied,
)

PREFIX = "hes-gateway/terminal"
HISTORY_PREFIX = "hes-gateway/api-energy"
WORK_MODES = {1: "time_of_use", 2: "self_consumption", 3: "backup"}
COMMAND_MODES = ("charge", "idle", "discharge", "reset")


class FranklinWHAdapter(OemAdapter):
    channel = "franklinwh"
    capabilities = frozenset({"discover", "telemetry", "set_mode", "set_reserve", "storm_mode", "grid_services"})
    telemetry_cadence = timedelta(minutes=5)
    # at most four calls: a discharge reads the profile list and the power-control setting, writes the export
    # flag (only when it differs) and the TOU update (idle: profile list, composite, update)
    calls_per_command = 4
    required_credentials = ("account", "password")

    def _login(self, failed: str | None = None) -> None:
        with self._auth_lock:
            current = getattr(self, "token", None)
            if current and current != failed:
                return  # another thread already (re)authenticated while this one waited
            response = self.http(
                "POST",
                f"{PREFIX}/initialize/appUserOrInstallerLogin",
                data={
                    "account": self.credentials["account"],
                    # the app API wants the MD5 hex digest, not the password (their protocol, not our choice)
                    "password": hashlib.md5(self.credentials["password"].encode()).hexdigest(),  # noqa: S324
                    "lang": "en_US",
                    "type": 1,
                },
            )
            body = self._body(response)
            if body.get("code") != 200:
                raise AuthError(f"FranklinWH login refused: {body.get('message')} (code {body.get('code')})")
            # The login token lives only in memory: it is cheap to get and FranklinWH has no refresh token.
            self.token = body["result"]["token"]

    def _body(self, response) -> dict:
        if response.status_code == 429:
            raise RateLimited(
                "FranklinWH 429", status=429, retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        if response.status_code >= 500:
            raise TransientError(f"FranklinWH HTTP {response.status_code}", status=response.status_code)
        if response.status_code != 200:
            raise IntegrationError(f"FranklinWH HTTP {response.status_code}", status=response.status_code)
        return response.json()

    def call(self, method: str, path: str, gateway: str | None = None, *, prefix: str = PREFIX, **kwargs):
        """A call with the login token; body code 401 means log in again and retry once."""
        if not getattr(self, "token", None):
            self._login()
        params = {"lang": "en_US", **kwargs.pop("params", {})}
        extra_headers = kwargs.pop("headers", {})
        if gateway:
            params["gatewayId"] = gateway
        for attempt in (1, 2):
            used = getattr(self, "token", None)
            headers = {"loginToken": self.token, **extra_headers}
            response = self.http(method, f"{prefix}/{path}", headers=headers, params=params, **kwargs)
            body = self._body(response)
            if body.get("code") == 401 and attempt == 1:
                self._login(failed=used)
                continue
            break
        code = body.get("code")
        if code == 200:
            return body.get("result"), response
        message = f"FranklinWH code {code}: {body.get('message')}"
        if code == 401:
            raise AuthError(message)
        if code == 136:
            raise DeviceOffline("FranklinWH reports the aGate offline (code 136)")
        if code == 102:
            raise TransientError("FranklinWH device timeout (code 102)")
        if code == 181:
            raise NotFound(f"{message} (the aGate is not on this account)")
        raise CommandRejected(message)

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        gateways, _ = self.call("GET", "getHomeGatewayList")
        return [
            DiscoveredDevice(
                serial=g["id"],
                external_id=g["id"],
                kind="battery",
                online=g.get("status") == 1,
                firmware=g.get("version", ""),
                oem_data={"gatewayId": g["id"], "name": g.get("name", ""), "zoneInfo": g.get("zoneInfo", "")},
            )
            for g in gateways or []
        ]

    # Power history: the app's home-screen graph, `hes-gateway/api-energy/power/getFhpPowerByDay?gatewayId=&
    # dayTime=YYYY-MM-DD`, one gateway-local day of 5-minute points per call ([community] richo/franklinwh-python
    # `get_power_by_day`; field meanings from a FranklinWH CLI's field dictionary: kW flows, "Gird" spelling).
    history_supported = True

    def telemetry_history(self, devices, start: datetime, end: datetime):
        return self.history_each(devices, lambda device: self._gateway_history(device, start, end))

    def _gateway_history(self, device: DeviceRef, start: datetime, end: datetime) -> list[TelemetrySnapshot]:
        gateway = device.external_id or device.serial
        zone = ZoneInfo(device.oem_data.get("zoneInfo") or "UTC")
        snapshots = []
        for day in day_starts(start, end, zone):
            result, _ = self.call(
                "GET", "power/getFhpPowerByDay", gateway, prefix=HISTORY_PREFIX, params={"dayTime": f"{day:%Y-%m-%d}"}
            )
            snapshots += self.normalize_day(result or {}, zone)
        return in_window(snapshots, start, end)

    @staticmethod
    def normalize_day(result: dict, zone) -> list[TelemetrySnapshot]:
        """The day's parallel arrays as snapshots: each flow in kW between solar, grid, home and aPower (Fhp)."""
        times = result.get("deviceTimeArray") or []

        def flow(name: str, index: int) -> float:
            values = result.get(name) or []
            return float(values[index] or 0.0) if index < len(values) else 0.0

        snapshots = []
        for index, stamp in enumerate(times):
            battery_out = flow("powerFhpHomeArray", index) + flow("powerFhpGirdArray", index)
            battery_in = flow("powerSolarFhpArray", index) + flow("powerGirdFhpArray", index)
            grid_in = flow("powerGirdHomeArray", index) + flow("powerGirdFhpArray", index)
            grid_out = flow("powerSolarGirdArray", index) + flow("powerFhpGirdArray", index)
            solar = (
                flow("powerSolarHomeArray", index)
                + flow("powerSolarGirdArray", index)
                + flow("powerSolarFhpArray", index)
            )
            socs = result.get("socArray") or []
            snapshots.append(
                TelemetrySnapshot(
                    measured_at=datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone),
                    charge_percentage=socs[index] if index < len(socs) else None,
                    charge_rate_w=_watts(battery_out - battery_in),  # + discharging
                    grid_power_w=_watts(grid_in - grid_out),  # + importing
                    solar_power_w=_watts(solar),
                )
            )
        return snapshots

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        gateway = device.external_id or device.serial
        info, response = self.call("GET", "getDeviceCompositeInfo", gateway, params={"refreshFlag": 1})
        tou, _ = self.call("POST", "tou/getGatewayTouListV2", gateway, params={"showType": 1})
        # The composite payload has no timestamp; refreshFlag=1 makes the gateway answer live, so the
        # response's Date header is when it was measured.
        measured_at = parsedate_to_datetime(response.headers["Date"])
        return self.normalize(info, tou, measured_at)

    @staticmethod
    def normalize(info: dict, tou: dict, measured_at) -> TelemetrySnapshot:
        runtime = info["runtimeData"]
        reserve = next((p["soc"] for p in tou.get("list", []) if p["id"] == tou.get("currendId")), None)
        return TelemetrySnapshot(
            measured_at=measured_at,
            charge_percentage=runtime.get("soc"),
            charge_rate_w=_watts(runtime.get("p_fhp")),
            grid_power_w=_watts(runtime.get("p_uti")),
            solar_power_w=_watts(runtime.get("p_sun")),
            backup_reserve_percent=reserve,
            strategy=WORK_MODES.get(info.get("currentWorkMode"), "unknown"),
            is_storm_mode_enabled=bool(tou.get("stromEn")),
        )

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        """No charge/discharge setpoint: modes are emulated with the TOU work mode and its reserve (`soc`), and a
        discharge with the grid-export flag (`setPowerControlV2`). Profile ids differ per account, so they are
        always read from the gateway's list first."""
        return self._apply(device, slug, payload, resume=False)

    def command_resume(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        """A discharge is two writes (the export flag, then the TOU update): a command whose worker died between
        them sends only what is not in place yet (idle's reserve is the SoC read now, as `send_command` does)."""
        return self._apply(device, slug, payload, resume=True)

    def _apply(self, device: DeviceRef, slug: str, payload: dict, *, resume: bool) -> CommandResult:
        gateway = device.external_id or device.serial
        tou, _ = self.call("POST", "tou/getGatewayTouListV2", gateway, params={"showType": 1})
        profiles = {p["workMode"]: p for p in tou["list"]}
        current = next(p for p in tou["list"] if p["id"] == tou["currendId"])
        soc = None
        if slug == "battery:set-operating-mode" and payload.get("operatingMode") == "idle":
            composite, _ = self.call("GET", "getDeviceCompositeInfo", gateway, params={"refreshFlag": 1})
            soc = composite["runtimeData"]["soc"]
        work_mode, reserve = self.command_target(slug, payload, current=current, soc=soc)
        written = []
        flag = self.export_flag(slug, payload)
        if flag is not None:
            # the export flag first (as Tesla's export rule): a home-only discharge never exports meanwhile
            setting, _ = self.call("GET", "tou/getPowerControlSetting", gateway)
            if setting.get("gridFeedMaxFlag") != flag:
                # read-modify-write: every field read is echoed (FranklinWH refuses a setting missing one)
                self.call("POST", "tou/setPowerControlV2", gateway, json={**setting, "gridFeedMaxFlag": flag})
                written.append(f"export flag {flag}")
        tou_in_place = settings_applied([(work_mode, current["workMode"]), (int(reserve), current["soc"])])
        if not resume or not tou_in_place:
            profile = profiles[work_mode]
            self.call(
                "POST",
                "tou/updateTouMode",
                headers={"optsource": "3"},
                data={
                    "currendId": profile["id"],
                    "gatewayId": gateway,
                    "lang": "EN_US",
                    "oldIndex": profile["oldIndex"],
                    "soc": int(reserve),
                    "stromEn": tou.get("stromEn", 0),  # keep the customer's Storm Hedge choice
                    "workMode": work_mode,
                },
            )
            written.insert(0, f"work mode {WORK_MODES[work_mode]}, reserve {int(reserve)}%")
        if not written:
            return CommandResult("accepted", message=ALREADY_IN_EFFECT)
        return CommandResult("accepted", message=("taken over: " if resume else "") + ", ".join(written))

    @staticmethod
    def export_flag(slug: str, payload: dict) -> int | None:
        """The `gridFeedMaxFlag` a command writes: a discharge exports from the battery only with
        enableGridInteraction (2, solar + aPower; otherwise 1, solar only: the battery serves the home), as
        Tesla's `battery_ok` / `pv_only`. None: the command leaves the export setting alone."""
        if slug == "battery:set-operating-mode" and payload.get("operatingMode") == "discharge":
            return 2 if payload.get("enableGridInteraction") else 1
        return None

    @staticmethod
    def command_target(slug: str, payload: dict, *, current: dict, soc: float | None) -> tuple[int, float | None]:
        """(work mode, reserve) `send_command` writes, from the current TOU profile (`workMode`, `soc`) and the
        gateway's SoC, which idle holds (None: not known, and idle's reserve is then None)."""
        work_mode, reserve = current["workMode"], current["soc"]
        if slug == "battery:set-reserve":
            return work_mode, payload["chargePercentage"]
        if slug != "battery:set-operating-mode":
            raise CommandRejected(f"FranklinWH does not take {slug}")
        mode = payload["operatingMode"]
        if mode == "charge":
            return 3, 100
        if mode == "idle":
            return 2, None if soc is None else round(soc)
        if mode == "discharge":
            return 1, payload.get("minimumBatteryReserve", 20)
        if mode == "reset":
            return 2, payload.get("minimumBatteryReserve", reserve)
        raise CommandRejected(f"unknown operatingMode {mode!r}")

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """The work mode and reserve `command_target` writes, against the gateway's current TOU profile (read
        with the same list call `send_command` starts with: a POST at FranklinWH, which changes nothing), and a
        discharge's export flag against `getPowerControlSetting` (read only when the profile matches).
        Idle's reserve is the SoC at send time, which no read tells: None once its work mode is in place."""
        if slug not in ("battery:set-reserve", "battery:set-operating-mode"):
            return None
        if slug == "battery:set-operating-mode" and payload.get("operatingMode") not in COMMAND_MODES:
            return None
        gateway = device.external_id or device.serial
        tou, _ = self.call("POST", "tou/getGatewayTouListV2", gateway, params={"showType": 1})
        current = next(p for p in tou["list"] if p["id"] == tou["currendId"])
        try:
            work_mode, reserve = self.command_target(slug, payload, current=current, soc=None)
        except (KeyError, TypeError, ValueError):
            return None
        pairs = [(work_mode, current["workMode"]), (None if reserve is None else int(reserve), current["soc"])]
        flag = self.export_flag(slug, payload)
        if flag is not None and settings_applied(pairs) is not False:
            setting, _ = self.call("GET", "tou/getPowerControlSetting", gateway)
            pairs.append((flag, setting.get("gridFeedMaxFlag")))
        return settings_applied(pairs)


def _watts(kilowatts) -> float | None:
    return None if kilowatts is None else round(float(kilowatts) * 1000, 1)
