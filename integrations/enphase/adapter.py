"""Enphase Enlighten API v4: bearer token *and* the application `key` on every call, OAuth refresh with HTTP
Basic client auth (refresh tokens rotate), `{message, details, code}` errors, 429 without Retry-After (the
wait comes from `period_end`). Telemetry from `live_data` (event stream, epoch-millisecond time) plus the
battery and Storm Guard settings."""

import json
import time
from datetime import datetime, timedelta

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
    in_window,
    oauth_error_reason,
    settings_applied,
    token_refresh_error,
    utc_from_epoch,
)

MODES = {"Self-consumption": "self_consumption", "Savings Mode": "time_of_use", "Full Backup": "backup"}
# live_data's battery_mode while a grid-services (partner VPP) event runs on the system
DR_EVENT_ACTIVE = "DR Event Active"
API = "api/v4"


class EnphaseAdapter(OemAdapter):
    channel = "enphase"
    capabilities = frozenset({"discover", "telemetry", "set_mode", "set_reserve", "storm_mode"})
    telemetry_cadence = timedelta(minutes=15)
    # during events: live_data is the API's live read (15 minutes is its summary cadence)
    event_telemetry_cadence = timedelta(minutes=5)
    required_credentials = ("client_id", "client_secret", "api_key", "refresh_token")

    def request_tokens(self, credentials: dict) -> dict:
        response = self.http(
            "POST",
            "oauth/token",
            auth=(credentials["client_id"], credentials["client_secret"]),
            data={"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]},
        )
        if response.status_code != 200:
            body = _json(response)
            reason = oauth_error_reason(body, response.status_code)
            retry = _period_wait(body) if response.status_code == 429 else None
            raise token_refresh_error("Enphase", response, reason, retry_after=retry)
        body = response.json()
        return {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}

    def call(self, method: str, path: str, **kwargs):
        if not self.credentials.get("access_token"):
            self.refresh_tokens()
        fresh = False
        for attempt in (1, 2, 3):
            used = self.credentials.get("access_token")
            headers = {
                "Authorization": f"Bearer {self.credentials['access_token']}",
                "key": self.credentials["api_key"],
            }
            response = self.http(method, f"{API}/{path}", headers=headers, **kwargs)
            if response.status_code == 401 and not fresh and attempt < 3 and "mismatch" not in response.text:
                fresh = self.refresh_tokens(failed=used)
                continue
            break
        status = response.status_code
        if status in (200, 202):
            return response
        body = _json(response)
        message = f"Enphase {status}: {body.get('message', '')} {body.get('details', '')}".strip()
        if status == 429:
            raise RateLimited(message, status=status, retry_after=_period_wait(body) or 60.0)
        if status in (401, 403):
            raise AuthError(message, status=status)
        if status in (404, 468):
            raise NotFound(message, status=status)
        if status == 473 or status == 466:
            raise DeviceOffline(f"Enphase: the IQ Gateway is not reporting ({status})", status=status)
        if status == 422:
            raise CommandRejected(message, status=status)
        if status >= 500:
            raise TransientError(message, status=status)
        raise IntegrationError(message, status=status)

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        """Systems are listed in pages of 100; Enphase's list carries no gateway serial, so each serial the
        portal is looking for is resolved with `retrieve_system_id` (a retired or unknown serial is a 404)."""
        systems, page = {}, 1
        while True:
            body = self.call("GET", "systems", params={"page": page, "size": 100}).json()
            systems.update({s["system_id"]: s for s in body["systems"]})
            if page * body["size"] >= body["total"] or not body["systems"]:
                break
            page += 1
        found = []
        for serial in serials or []:
            try:
                system_id = self.call("GET", "systems/retrieve_system_id", params={"serial_num": serial}).json()[
                    "system_id"
                ]
            except NotFound:
                continue
            system = systems.get(system_id, {})
            found.append(
                DiscoveredDevice(
                    serial=serial,
                    external_id=str(system_id),
                    kind="battery",
                    online=system.get("status") != "comm",
                    last_seen_at=utc_from_epoch(system.get("last_report_at")),
                    oem_data={
                        "system_id": system_id,
                        "name": system.get("name", ""),
                        "timezone": system.get("timezone", ""),
                    },
                )
            )
        return found

    def test_connection(self) -> str:
        body = self.call("GET", "systems", params={"page": 1, "size": 1}).json()
        return f"{body['total']} system(s) visible to this account"

    # Battery history: `telemetry/battery?start_at=&granularity=week`, 15-minute intervals, at most a week (672
    # intervals) per answer, end_at = min(now, start + week), start within 2 years (Enphase v4 System API,
    # `getBatteryTelemetry`, Enphase-OpenAPI openapi/system.yaml). Paged by the answer's end_at.
    history_supported = True
    HISTORY_INTERVAL = timedelta(minutes=15)
    HISTORY_MAX_AGE = timedelta(days=730)

    def telemetry_history(self, devices, start: datetime, end: datetime):
        return self.history_each(devices, lambda device: self._system_history(device, start, end))

    def _system_history(self, device: DeviceRef, start: datetime, end: datetime) -> list[TelemetrySnapshot]:
        """Each interval is the battery's energy in and out over 15 minutes: its mean power (W) is measured at
        the interval's start, so it falls in the same 15-minute rollup as the interval."""
        start = max(start, datetime.now(start.tzinfo) - self.HISTORY_MAX_AGE + timedelta(hours=1))
        # pages start on the 15-minute grid, so no interval straddles two pages
        step = int(self.HISTORY_INTERVAL.total_seconds())
        snapshots, cursor = [], utc_from_epoch(int(start.timestamp()) // step * step)
        while cursor < end:
            body = self.call(
                "GET",
                f"systems/{device.external_id}/telemetry/battery",
                params={"start_at": int(cursor.timestamp()), "granularity": "week"},
            ).json()
            for interval in body.get("intervals") or []:
                charge = (interval.get("charge") or {}).get("enwh")
                discharge = (interval.get("discharge") or {}).get("enwh")
                rate = None
                if charge is not None or discharge is not None:
                    rate = ((discharge or 0) - (charge or 0)) * 3600 / self.HISTORY_INTERVAL.total_seconds()
                snapshots.append(
                    TelemetrySnapshot(
                        measured_at=utc_from_epoch(interval["end_at"]) - self.HISTORY_INTERVAL,
                        charge_percentage=(interval.get("soc") or {}).get("percent"),
                        charge_rate_w=rate,
                    )
                )
            reached = utc_from_epoch(body.get("end_at"))
            if reached is None or reached < cursor + timedelta(days=7):
                break  # the answer ended before a week: it reached the present
            cursor = reached
        return in_window(snapshots, start, end)

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        system = device.external_id
        response = self.call("GET", f"systems/{system}/live_data")
        live = _first_event(response.text)
        settings = self.call("GET", f"systems/config/{system}/battery_settings").json()
        storm = self.call("GET", f"systems/config/{system}/storm_guard").json()
        return self.normalize(live, settings, storm)

    @staticmethod
    def normalize(live: dict, settings: dict, storm: dict) -> TelemetrySnapshot:
        # live_data signs match docs/domain.md (battery + discharge, grid + import); its time is epoch *ms*.
        soc = live.get("battery_soc")
        if isinstance(soc, str):
            soc = float(soc.rstrip("%"))
        return TelemetrySnapshot(
            measured_at=utc_from_epoch(live["timestamp_epoch"] / 1000),
            charge_percentage=soc,
            charge_rate_w=live.get("battery_power"),
            grid_power_w=live.get("grid_power"),
            solar_power_w=live.get("pv_power"),
            backup_reserve_percent=settings.get("reserve_soc"),
            # the live mode: Storm Guard's forced Full Backup shows here, not in the stored settings
            strategy=MODES.get(live.get("battery_mode")) or MODES.get(settings.get("battery_mode"), "unknown"),
            is_storm_mode_enabled=str(storm.get("storm_guard_status", "")).lower().startswith("enabled"),
            is_storm_mode_active=storm.get("storm_alert") == "true",
            # Enrollment itself lives in Enphase's partner VPP API, outside the monitoring API: only an event
            # running shows it (enrolled). Otherwise the monitoring API cannot tell, and says nothing.
            grid_services_status=GridServicesStatus.ENROLLED if live.get("battery_mode") == DR_EVENT_ACTIVE else None,
        )

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        system = device.external_id
        soc = None
        if slug == "battery:set-operating-mode" and payload.get("operatingMode") == "idle":
            soc = _first_event(self.call("GET", f"systems/{system}/live_data").text)["battery_soc"]
        body = self.battery_settings_body(slug, payload, soc=soc)
        self.call("PUT", f"systems/config/{system}/battery_settings", json=body)
        if slug == "battery:set-reserve":
            return CommandResult("accepted", message="reserve set")
        return CommandResult("accepted", message=f"battery_mode {body['battery_mode']}")

    @staticmethod
    def battery_settings_body(slug: str, payload: dict, *, soc) -> dict:
        """The `battery_settings` PUT body `send_command` writes. `soc` is the system's SoC, which idle holds
        (None: not known, and idle's reserve is then None)."""
        if slug == "battery:set-reserve":
            return {"reserve_soc": int(payload["chargePercentage"])}
        if slug != "battery:set-operating-mode":
            raise CommandRejected(f"Enphase batteries do not take {slug}")
        mode = payload["operatingMode"]
        if mode == "charge":
            return {"battery_mode": "Full Backup"}
        if mode == "discharge":
            return {"battery_mode": "Savings Mode", "reserve_soc": int(payload.get("minimumBatteryReserve", 20))}
        if mode == "idle":
            return {
                "battery_mode": "Self-consumption",
                "reserve_soc": None if soc is None else max(10, round(float(soc))),
            }
        if mode == "reset":
            return {"battery_mode": "Self-consumption"}
        raise CommandRejected(f"unknown operatingMode {mode!r}")

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """The fields `battery_settings_body` writes, read back with `GET battery_settings` (the stored
        settings: a Storm Guard or DR event changes the live mode, not these). Idle's reserve is the SoC at
        send time, which no read tells: None once its mode is in place."""
        try:
            body = self.battery_settings_body(slug, payload, soc=None)
        except (CommandRejected, KeyError, TypeError, ValueError):
            return None
        settings = self.call("GET", f"systems/config/{device.external_id}/battery_settings").json()
        return settings_applied([(value, settings.get(key)) for key, value in body.items()])


def _period_wait(body: dict) -> float | None:
    """Seconds until the plan's rate-limit period ends: Enphase's 429 sends `period_end`, no Retry-After."""
    period_end = body.get("period_end")
    return max(1.0, period_end - time.time()) if period_end else None


def _first_event(text: str) -> dict:
    """The first `data:` event of an event stream, unwrapped (`data.data{…}`)."""
    for line in text.splitlines():
        if line.startswith("data:"):
            event = json.loads(line[5:].strip())
            return event.get("data", event)
    raise TransientError("Enphase live_data stream carried no event")


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
