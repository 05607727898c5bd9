"""Smartcar v2 (EVs of every supported brand): OAuth refresh with HTTP Basic client auth (refresh tokens
rotate), v2 error bodies (`type`, `code`, `statusCode`), 429 with `retry-after`, 409 VEHICLE_STATE for a car
that is asleep or unreachable. Telemetry comes from one `/batch` call per vehicle; its time is `sc-data-age`.
SoC and charge limit arrive as 0–1 fractions; range in km (metric) or miles (imperial)."""

from datetime import timedelta

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
    oauth_error_reason,
    parse_retry_after,
    token_refresh_error,
    utc_from_iso,
)

API = "v2.0"
KM_PER_MILE = 1.609344
VEHICLES_PAGE = 50  # the most `GET /vehicles` returns per page (its default is 10)
CHARGING_STATES = {"CHARGING": "charging", "FULLY_CHARGED": "idle", "NOT_CHARGING": "idle"}


class SmartcarAdapter(OemAdapter):
    channel = "smartcar"
    capabilities = frozenset({"discover", "telemetry", "ev_start_stop", "ev_charge_limit"})
    # Smartcar's API serves a vehicle's current state only (every read is "now"): no history endpoint.
    history_note = "Smartcar serves a vehicle's current state only: it has no history endpoint."
    telemetry_cadence = timedelta(minutes=15)
    required_credentials = ("client_id", "client_secret", "refresh_token")
    # Commands travel to the car over cellular: tens of seconds is normal.
    command_timeout = 60.0

    def request_tokens(self, credentials: dict) -> dict:
        response = self.http(
            "POST",
            credentials.get("token_url") or "oauth/token",
            auth=(credentials["client_id"], credentials["client_secret"]),
            data={"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]},
        )
        if response.status_code != 200:
            reason = oauth_error_reason(_json(response), response.status_code)
            raise token_refresh_error("Smartcar", response, reason)
        body = response.json()
        return {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}

    def call(self, method: str, path: str, *, timeout: float | None = None, **kwargs):
        if not self.credentials.get("access_token"):
            self.refresh_tokens()
        fresh = False
        for attempt in (1, 2, 3):
            used = self.credentials.get("access_token")
            headers = {
                "Authorization": f"Bearer {self.credentials['access_token']}",
                "SC-Unit-System": self.credentials.get("unit_system", "metric"),
            }
            response = self.http(method, f"{API}/{path}", headers=headers, timeout=timeout, **kwargs)
            if response.status_code == 401 and not fresh and attempt < 3:
                fresh = self.refresh_tokens(failed=used)
                continue
            break
        status = response.status_code
        if status == 200:
            return response.json()
        raise self.error(status, _json(response), response.headers.get("retry-after"))

    @staticmethod
    def error(status: int, body: dict, retry_after: str | None = None) -> IntegrationError:
        message = (
            f"Smartcar {status} {body.get('type', '')}:{body.get('code') or ''} {body.get('description', '')}".strip()
        )
        if status == 429:
            return RateLimited(message, status=status, retry_after=parse_retry_after(retry_after))
        if status in (401, 403):
            return AuthError(message, status=status)
        if status == 404:
            return NotFound(message, status=status)
        if status == 409:
            return DeviceOffline(message, status=status)
        if status >= 500:
            return TransientError(message, status=status)
        return CommandRejected(message, status=status)

    # Vehicles already bound (`linked_external_ids`): their VIN is known, so no call is spent reading it again.

    def vehicle_ids(self) -> list[str]:
        """Every vehicle this user authorized: `GET /vehicles` pages (`limit`/`offset`, `paging.count` = all)."""
        ids: list[str] = []
        while True:
            page = self.call("GET", "vehicles", params={"limit": VEHICLES_PAGE, "offset": len(ids)})
            ids += page["vehicles"]
            if not page["vehicles"] or len(ids) >= page["paging"]["count"]:
                return ids

    def test_connection(self) -> str:
        return f"{len(self.vehicle_ids())} vehicle(s) authorized for this account"

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        """The vehicles this user authorized (every page of the listing); the VIN (the portal's serial) needs
        one call per vehicle, as Smartcar has no bulk VIN read, so vehicles already linked to a device are
        skipped."""
        found = []
        for vehicle_id in self.vehicle_ids():
            if vehicle_id in self.linked_external_ids:
                continue
            vin = self.call("GET", f"vehicles/{vehicle_id}/vin")["vin"]
            found.append(
                DiscoveredDevice(
                    serial=vin,
                    external_id=vehicle_id,
                    kind="vehicle",
                    oem_data={"vehicleId": vehicle_id},
                    grid_services_status=GridServicesStatus.UNSUPPORTED,  # Smartcar has no grid-services channel
                )
            )
        return found

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        body = self.call(
            "POST",
            f"vehicles/{device.external_id}/batch",
            json={"requests": [{"path": "/battery"}, {"path": "/charge"}, {"path": "/charge/limit"}]},
        )
        parts = {}
        for item in body["responses"]:
            if item["code"] != 200:
                raise self.error(item["code"], item.get("body") or {}, (item.get("headers") or {}).get("retry-after"))
            parts[item["path"]] = item
        return self.normalize(parts)

    @staticmethod
    def normalize(parts: dict) -> TelemetrySnapshot:
        battery = parts["/battery"]
        charge = parts.get("/charge", {}).get("body", {})
        limit = parts.get("/charge/limit", {}).get("body", {}).get("limit")
        range_value = battery["body"].get("range")
        if range_value is not None and battery["headers"].get("sc-unit-system") == "imperial":
            range_value = range_value * KM_PER_MILE
        return TelemetrySnapshot(
            measured_at=utc_from_iso(battery["headers"]["sc-data-age"]),
            charge_percentage=round(battery["body"]["percentRemaining"] * 100, 2),  # 0–1 → %
            range_km=None if range_value is None else round(range_value, 1),
            is_plugged_in=charge.get("isPluggedIn"),
            charging_state=CHARGING_STATES.get(charge.get("state"), "unknown"),
            charge_limit_percent=None if limit is None else round(limit * 100, 1),
            grid_services_status=GridServicesStatus.UNSUPPORTED,
        )

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        vehicle = device.external_id
        if slug == "vehicle:set-operating-mode":
            mode = payload.get("operatingMode")
            if mode not in ("start-charging", "stop-charging"):
                raise CommandRejected(f"unknown operatingMode {mode!r}")
            action = "START" if mode == "start-charging" else "STOP"
            body = self.call(
                "POST", f"vehicles/{vehicle}/charge", json={"action": action}, timeout=self.command_timeout
            )
        elif slug == "vehicle:set-charge-limit":
            limit = float(payload["chargeLimit"]) / 100  # % → Smartcar's fraction
            body = self.call(
                "POST", f"vehicles/{vehicle}/charge/limit", json={"limit": limit}, timeout=self.command_timeout
            )
        else:
            raise CommandRejected(f"Smartcar vehicles do not take {slug}")
        return CommandResult("accepted", message=body.get("message", ""))

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """With GET reads (not `/batch`, a POST): start/stop from `GET /charge` — CHARGING after a start,
        NOT_CHARGING after a stop; FULLY_CHARGED tells neither (a full car does not charge either way). The
        charge limit from `GET /charge/limit`, to the precision of its two-decimal fraction."""
        vehicle = device.external_id
        if slug == "vehicle:set-operating-mode":
            mode = payload.get("operatingMode")
            if mode not in ("start-charging", "stop-charging"):
                return None
            state = self.call("GET", f"vehicles/{vehicle}/charge").get("state")
            if state not in ("CHARGING", "NOT_CHARGING"):
                return None
            return (state == "CHARGING") == (mode == "start-charging")
        if slug == "vehicle:set-charge-limit":
            try:
                target = float(payload["chargeLimit"]) / 100
            except (KeyError, TypeError, ValueError):
                return None
            limit = self.call("GET", f"vehicles/{vehicle}/charge/limit").get("limit")
            return None if limit is None else abs(float(limit) - target) <= 0.005 + 1e-9
        return None


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
