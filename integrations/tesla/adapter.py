"""Tesla Fleet API, energy sites (Powerwall): discovery through `/api/1/products`, telemetry from
`live_status` + `site_info`, control through `operation` / `backup` / `storm_mode`.

Auth is OAuth2 with rotating refresh tokens: every refresh returns a new refresh token that must be stored
(the old one is spent; reusing it answers `login_required`).
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fleet.choices import GridServicesStatus
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
    oauth_error_reason,
    parse_retry_after,
    settings_applied,
    token_refresh_error,
    utc_from_iso,
)

MODES = {"self_consumption": "self_consumption", "backup": "backup", "autonomous": "time_of_use"}


class TeslaAdapter(OemAdapter):
    channel = "tesla"
    capabilities = frozenset({"discover", "telemetry", "set_mode", "set_reserve", "storm_mode", "grid_services"})
    telemetry_cadence = timedelta(minutes=5)
    calls_per_command = 3  # a mode is up to three POSTs: the grid rule, the operation, the reserve
    required_credentials = ("client_id", "refresh_token")

    # auth --------------------------------------------------------------------------------------------------
    def request_tokens(self, credentials: dict) -> dict:
        token_url = credentials.get("token_url") or self.url("/oauth2/v3/token")
        response = self.http(
            "POST",
            token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": credentials.get("client_id", ""),
                "refresh_token": credentials.get("refresh_token", ""),
            },
        )
        if response.status_code != 200:
            reason = oauth_error_reason(_json(response), response.status_code)
            raise token_refresh_error("Tesla", response, reason)
        body = response.json()
        return {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}

    def call(self, method: str, path: str, **kwargs):
        """One API call, refreshing the token on 401 (once more if the token it got was another process's and
        has expired too); maps Tesla's statuses to the error taxonomy."""
        if not self.credentials.get("access_token"):
            self.refresh_tokens()
        fresh = False
        for attempt in (1, 2, 3):
            used = self.credentials.get("access_token")
            response = self.http(
                method, path, headers={"Authorization": f"Bearer {self.credentials['access_token']}"}, **kwargs
            )
            if response.status_code == 401 and not fresh and attempt < 3:
                fresh = self.refresh_tokens(failed=used)
                continue
            break
        status = response.status_code
        if status == 200:
            return response.json()["response"]
        body = _json(response)
        message = f"Tesla {status} {body.get('error') or ''}".strip()
        if status == 429:
            retry = parse_retry_after(response.headers.get("Retry-After"))
            raise RateLimited(message, status=status, retry_after=retry)
        if status in (401, 403):
            raise AuthError(message, status=status)
        if status == 404:
            raise NotFound(message, status=status)
        if status == 408:
            raise DeviceOffline("Tesla reports the energy site offline (408)", status=status)
        if status in (400, 412, 422):
            raise CommandRejected(f"{message}: {body.get('error_description') or ''}".rstrip(": "), status=status)
        if status >= 500:
            raise TransientError(message, status=status)
        raise IntegrationError(message, status=status)

    # contract ----------------------------------------------------------------------------------------------
    def discover(self, serials=None) -> list[DiscoveredDevice]:
        """One call lists every product of the account; energy sites are matched by their gateway serial."""
        found = []
        for product in self.call("GET", "/api/1/products"):
            if "energy_site_id" not in product or not product.get("gateway_id"):
                continue
            found.append(
                DiscoveredDevice(
                    serial=product["gateway_id"],
                    external_id=str(product["energy_site_id"]),
                    kind="battery" if product.get("resource_type") == "battery" else "inverter",
                    site_external_id=str(product.get("id", "")),
                    model=product.get("battery_type", ""),
                    oem_data={
                        "energy_site_id": product["energy_site_id"],
                        "site_name": product.get("site_name", ""),
                        "asset_site_id": product.get("asset_site_id", ""),
                    },
                )
            )
        return found

    # Power and SoC history: `calendar_history?kind=power|soc&period=day&end_date=…`, a local day of 15-minute
    # points per call (oem-apis.md §1; tesla-fleet-api SDK `EnergySite.calendar_history`).
    history_supported = True

    def telemetry_history(self, devices, start: datetime, end: datetime):
        return self.history_each(devices, lambda device: self._site_history(device, start, end))

    def _site_history(self, device: DeviceRef, start: datetime, end: datetime) -> list[TelemetrySnapshot]:
        """Two calls per local day of the site (power, then SoC), merged by timestamp."""
        site = device.external_id
        zone = ZoneInfo(device.oem_data.get("installation_time_zone") or "America/Los_Angeles")
        snapshots = []
        for day in day_starts(start, end, zone):
            # noon of the day names it whatever the site's offset on that day
            params = {"period": "day", "end_date": day.replace(hour=12).isoformat()}
            power = self.call("GET", f"/api/1/energy_sites/{site}/calendar_history", params={**params, "kind": "power"})
            soc = self.call("GET", f"/api/1/energy_sites/{site}/calendar_history", params={**params, "kind": "soc"})
            socs = {point["timestamp"]: point.get("soc") for point in soc.get("time_series") or []}
            for point in power.get("time_series") or []:
                snapshots.append(
                    TelemetrySnapshot(
                        measured_at=utc_from_iso(point["timestamp"]),
                        charge_percentage=socs.get(point["timestamp"]),
                        charge_rate_w=point.get("battery_power"),
                        grid_power_w=point.get("grid_power"),
                        solar_power_w=point.get("solar_power"),
                    )
                )
        return in_window(snapshots, start, end)

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        site = device.external_id
        live = self.call("GET", f"/api/1/energy_sites/{site}/live_status")
        info = self.call("GET", f"/api/1/energy_sites/{site}/site_info")
        return self.normalize(live, info)

    @staticmethod
    def normalize(live: dict, info: dict) -> TelemetrySnapshot:
        # Tesla's signs already match docs/domain.md: battery_power + discharging, grid_power + importing.
        return TelemetrySnapshot(
            measured_at=utc_from_iso(live["timestamp"]),
            charge_percentage=live.get("percentage_charged"),
            charge_rate_w=live.get("battery_power"),
            grid_power_w=live.get("grid_power"),
            solar_power_w=live.get("solar_power"),
            backup_reserve_percent=info.get("backup_reserve_percent"),
            strategy=MODES.get(info.get("default_real_mode"), "unknown"),
            is_storm_mode_enabled=(info.get("user_settings") or {}).get("storm_mode_enabled"),
            is_storm_mode_active=live.get("storm_mode_active"),
            grid_services_status=grid_services_status(info),
        )

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        """Tesla has no "charge/discharge at X W": modes are emulated with operation + reserve + export rule
        (oem-apis.md, "Control semantics")."""
        site = device.external_id
        soc = None
        if slug == "battery:set-operating-mode" and payload.get("operatingMode") == "idle":
            soc = self.call("GET", f"/api/1/energy_sites/{site}/live_status")["percentage_charged"]
        steps = self.command_steps(slug, payload, soc=soc)
        for endpoint, body in steps:
            self.call("POST", f"/api/1/energy_sites/{site}/{endpoint}", json=body)
        if slug == "battery:set-reserve":
            return CommandResult("accepted", message="backup reserve set")
        return CommandResult("accepted", message=f"{payload['operatingMode']}: " + ", ".join(e for e, _ in steps))

    @staticmethod
    def command_steps(slug: str, payload: dict, *, soc: float | None) -> list[tuple[str, dict]]:
        """The POSTs `send_command` makes, in order: (endpoint, body). `soc` is the site's SoC, which idle holds
        (None: not known, and idle's reserve is then None)."""
        if slug == "battery:set-reserve":
            return [("backup", {"backup_reserve_percent": int(payload["chargePercentage"])})]
        if slug != "battery:set-operating-mode":
            raise CommandRejected(f"Tesla energy sites do not take {slug}")
        mode = payload["operatingMode"]
        reserve = payload.get("minimumBatteryReserve")
        # enableGridInteraction goes through Tesla's grid import/export rules (oem-apis.md, "Control"): a
        # discharge exports to the grid only with it (`battery_ok`; otherwise the battery serves the home,
        # `pv_only`), a charge draws from the grid only with it.
        grid = bool(payload.get("enableGridInteraction"))
        if mode == "charge":
            steps = [("operation", {"default_real_mode": "backup"})]
            if grid:
                steps.insert(0, ("grid_import_export", {"disallow_charge_from_grid_with_solar_installed": False}))
        elif mode == "discharge":
            steps = [
                ("grid_import_export", {"customer_preferred_export_rule": "battery_ok" if grid else "pv_only"}),
                ("operation", {"default_real_mode": "autonomous"}),
            ]
        elif mode == "idle":
            steps = [
                ("operation", {"default_real_mode": "self_consumption"}),
                ("backup", {"backup_reserve_percent": None if soc is None else round(soc)}),
            ]
            reserve = None
        elif mode == "reset":
            steps = [("operation", {"default_real_mode": "self_consumption"})]
        else:
            raise CommandRejected(f"unknown operatingMode {mode!r}")
        if reserve is not None:
            steps.append(("backup", {"backup_reserve_percent": int(reserve)}))
        return steps

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """Every field `command_steps` writes, read back from one `site_info` (mode, reserve, and the grid
        import/export rule under `components`). Idle's reserve is the SoC at send time, which no read tells:
        None once its mode is in place."""
        try:
            steps = self.command_steps(slug, payload, soc=None)
        except (CommandRejected, KeyError, TypeError, ValueError):
            return None  # not a command this adapter sends
        read = self._settings_read(device)
        return settings_applied([(value, read[key]) for _, body in steps for key, value in body.items()])

    def command_resume(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        """A command of up to three POSTs whose worker died between them: only the steps not in place yet are
        sent (idle's reserve is the SoC read now, as `send_command` does)."""
        try:
            self.command_steps(slug, payload, soc=None)
        except (CommandRejected, KeyError, TypeError, ValueError):
            return self.send_command(device, slug, payload)  # refused there, with its reason
        site = device.external_id
        soc = None
        if slug == "battery:set-operating-mode" and payload.get("operatingMode") == "idle":
            soc = self.call("GET", f"/api/1/energy_sites/{site}/live_status")["percentage_charged"]
        read = self._settings_read(device)
        missing = [
            (endpoint, body)
            for endpoint, body in self.command_steps(slug, payload, soc=soc)
            if not settings_applied([(value, read[key]) for key, value in body.items()])
        ]
        if not missing:
            return CommandResult("accepted", message=ALREADY_IN_EFFECT)
        for endpoint, body in missing:
            self.call("POST", f"/api/1/energy_sites/{site}/{endpoint}", json=body)
        return CommandResult("accepted", message="taken over: " + ", ".join(e for e, _ in missing))

    def _settings_read(self, device: DeviceRef) -> dict:
        """What `command_steps` writes, as `site_info` shows it now."""
        info = self.call("GET", f"/api/1/energy_sites/{device.external_id}/site_info")
        components = info.get("components") or {}
        return {
            "default_real_mode": info.get("default_real_mode"),
            "backup_reserve_percent": info.get("backup_reserve_percent"),
            "customer_preferred_export_rule": components.get("customer_preferred_export_rule"),
            # absent means grid charging is allowed (Tesla's app shows it so)
            "disallow_charge_from_grid_with_solar_installed": bool(
                components.get("disallow_charge_from_grid_with_solar_installed", False)
            ),
        }


def grid_services_status(info: dict) -> str | None:
    """`site_info.components.grid_services_enabled`: the site takes part in Tesla's grid services (True) or not
    (False; Tesla shows no "pending"). Absent: Tesla did not say."""
    enabled = (info.get("components") or {}).get("grid_services_enabled")
    if enabled is None:
        return None
    return GridServicesStatus.ENROLLED if enabled else GridServicesStatus.NOT_ENROLLED


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
