"""Emporia (EV chargers): the `authtoken` header carries a Cognito *id* token; status and usage come for the
whole account in two calls (`customers/devices/status`, `AppAPI?apiMethod=getDeviceListUsages`). Usage is
energy in kWh over the scale, turned into watts here; a charger's draw is its `chargerWattage`."""

from datetime import UTC, datetime, timedelta

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
    parse_retry_after,
    settings_applied,
    token_refresh_error,
    utc_from_iso,
)

SCALE, SCALE_SECONDS = "1MIN", 60
# Cognito names throttling in the error's `__type`, not with a 429 (its API reference lists these as HTTP 400)
COGNITO_THROTTLED = {"TooManyRequestsException", "LimitExceededException"}
BATCH = 100  # deviceGids per usage call


class EmporiaAdapter(OemAdapter):
    channel = "emporia"
    capabilities = frozenset({"discover", "telemetry", "ev_start_stop", "ev_current_limit"})
    telemetry_cadence = timedelta(minutes=5)
    # during events: usage comes per minute, two calls for every 100 chargers
    event_telemetry_cadence = timedelta(minutes=1)
    required_credentials = ("username", "password")

    def _login(self, failed: str | None = None) -> None:
        """The real cloud signs in through AWS Cognito (SRP); the endpoint here is the simulator's stand-in
        for that exchange and answers Cognito's `AuthenticationResult` shape. An `id_token` given in the
        credentials is used as is."""
        with self._auth_lock:
            current = self.credentials.get("id_token")
            if current and current != failed:
                return  # another thread already (re)authenticated while this one waited
            response = self.http(
                "POST",
                self.credentials.get("cognito_path", "cognito/login"),
                json={"username": self.credentials["username"], "password": self.credentials["password"]},
            )
            if response.status_code != 200:
                body = _json(response)
                reason = body.get("message") or response.status_code
                if body.get("__type") in COGNITO_THROTTLED:
                    raise RateLimited(
                        f"Emporia sign-in rate limited: {reason}",
                        status=response.status_code,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
                raise token_refresh_error("Emporia", response, reason, action="sign-in")
            self.set_credential(id_token=response.json()["AuthenticationResult"]["IdToken"])

    def call(self, method: str, path: str, **kwargs) -> dict:
        if not self.credentials.get("id_token"):
            self._login()
        for attempt in (1, 2):
            used = self.credentials.get("id_token")
            response = self.http(method, path, headers={"authtoken": self.credentials["id_token"]}, **kwargs)
            if response.status_code == 401 and attempt == 1 and path != "devices/evcharger":
                self._login(failed=used)
                continue
            break
        status = response.status_code
        if status == 200:
            return response.json()
        message = f"Emporia {status}: {_json(response).get('message', '')}".strip()
        if status == 429:
            raise RateLimited(
                message, status=status, retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        if status == 401 and path == "devices/evcharger":
            # PUT on a charger this account does not own answers 401 (not 404)
            raise NotFound(f"{message} (the charger is not on this account)", status=status)
        if status in (401, 403):
            raise AuthError(message, status=status)
        if status >= 500:
            raise TransientError(message, status=status)
        if status == 400:
            raise CommandRejected(message, status=status)
        raise IntegrationError(message, status=status)

    def discover(self, serials=None) -> list[DiscoveredDevice]:
        found = []
        for device in self.call("GET", "customers/devices")["devices"]:
            if "evCharger" not in device:
                continue
            connected = device.get("deviceConnected") or {}
            found.append(
                DiscoveredDevice(
                    serial=device["manufacturerDeviceId"],
                    external_id=str(device["deviceGid"]),
                    kind="ev_charger",
                    online=bool(connected.get("connected", True)),
                    model=device.get("model", ""),
                    firmware=device.get("firmware", ""),
                    oem_data={
                        "deviceGid": device["deviceGid"],
                        "loadGid": device["evCharger"].get("loadGid"),
                        "maxChargingRate": device["evCharger"].get("maxChargingRate"),
                    },
                    grid_services_status=GridServicesStatus.UNSUPPORTED,  # Emporia has no grid-services channel
                )
            )
        return found

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        result = self.fetch_telemetry_many([device])[device.serial]
        if isinstance(result, Exception):
            raise result
        return result

    def fetch_telemetry_many(self, devices):
        """Two calls for the whole batch, however many chargers: status, then usage for up to 100 gids."""
        status = self.call("GET", "customers/devices/status")
        chargers = {str(c["deviceGid"]): c for c in status.get("evChargers", [])}
        connected = {str(c["deviceGid"]): c for c in status.get("devicesConnected", [])}
        usages, instant = {}, None
        gids = [d.external_id for d in devices if d.external_id]
        for start in range(0, len(gids), BATCH):
            body = self.call(
                "GET",
                "AppAPI",
                params={
                    "apiMethod": "getDeviceListUsages",
                    "deviceGids": "+".join(gids[start : start + BATCH]),
                    "scale": SCALE,
                    "energyUnit": "KilowattHours",
                },
            )["deviceListUsages"]
            instant = utc_from_iso(body["instant"])
            for row in body["devices"]:
                main = next((c for c in row["channelUsages"] if c.get("channelNum") == "1,2,3"), None)
                usages[str(row["deviceGid"])] = None if main is None else main.get("usage")
        results = {}
        for device in devices:
            gid = device.external_id
            link = connected.get(gid, {})
            if gid not in chargers:
                results[device.serial] = NotFound("Emporia no longer lists this charger on the account")
            elif not link.get("connected", True):
                results[device.serial] = DeviceOffline(
                    f"Emporia reports the charger offline since {link.get('offlineSince') or 'unknown'}"
                )
            elif usages.get(gid) is None:
                # Emporia answers `usage: null` for an interval it has not aggregated yet: no reading this time.
                results[device.serial] = TransientError("Emporia has no usage for the interval yet")
            else:
                results[device.serial] = self.normalize(chargers[gid], usages[gid], instant)
        return results

    # Usage history: `AppAPI?apiMethod=getChartUsage&deviceGid=&channel=1,2,3&start=&end=&scale=15MIN&
    # energyUnit=KilowattHours` (PyEmVue `get_chart_usage`, oem-apis.md §5): `usageList` of kWh per interval from
    # `firstUsageInstant`, null where nothing was reported. Emporia documents no window limit; one day per call
    # keeps each answer small (96 values).
    history_supported = True
    HISTORY_SCALE, HISTORY_SCALE_SECONDS = "15MIN", 900
    HISTORY_PAGE = timedelta(days=1)

    def telemetry_history(self, devices, start: datetime, end: datetime):
        return self.history_each(devices, lambda device: self._charger_history(device, start, end))

    def _charger_history(self, device: DeviceRef, start: datetime, end: datetime) -> list[TelemetrySnapshot]:
        snapshots, cursor = [], start
        while cursor < end:
            until = min(end, cursor + self.HISTORY_PAGE)
            body = self.call(
                "GET",
                "AppAPI",
                params={
                    "apiMethod": "getChartUsage",
                    "deviceGid": device.external_id,
                    "channel": "1,2,3",
                    "start": cursor.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "scale": self.HISTORY_SCALE,
                    "energyUnit": "KilowattHours",
                },
            )
            first = utc_from_iso(body.get("firstUsageInstant"))
            step = timedelta(seconds=self.HISTORY_SCALE_SECONDS)
            for index, usage in enumerate(body.get("usageList") or []):
                if usage is None or first is None:
                    continue  # nothing reported for the interval
                watts = round(usage * 3600 / self.HISTORY_SCALE_SECONDS * 1000, 1)
                snapshots.append(
                    TelemetrySnapshot(
                        measured_at=first + step * index,
                        charger_wattage_w=watts,
                        charging_state="charging" if watts > 50 else "idle",
                    )
                )
            cursor = until
        return in_window(snapshots, start, end)

    @staticmethod
    def normalize(charger: dict, usage_kwh: float, instant) -> TelemetrySnapshot:
        watts = round(usage_kwh * 3600 / SCALE_SECONDS * 1000, 1)  # kWh over the scale → W
        plugged = charger.get("icon") != "CarNotConnected"
        return TelemetrySnapshot(
            measured_at=instant,
            is_plugged_in=plugged,
            charger_wattage_w=watts,
            charging_state="charging" if watts > 50 else "idle",
            grid_services_status=GridServicesStatus.UNSUPPORTED,
        )

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        charger = self.call("PUT", "devices/evcharger", json=self.charger_body(device, slug, payload))
        return CommandResult("accepted", message=f"chargerOn={charger['chargerOn']}")

    @staticmethod
    def charger_body(device: DeviceRef, slug: str, payload: dict) -> dict:
        """The `PUT devices/evcharger` body `send_command` writes."""
        if slug != "charger:set-operating-mode":
            raise CommandRejected(f"Emporia chargers do not take {slug}")
        mode = payload.get("operatingMode")
        if mode not in ("start-charging", "stop-charging"):
            raise CommandRejected(f"unknown operatingMode {mode!r}")
        return {
            "deviceGid": int(device.external_id),
            "loadGid": device.oem_data.get("loadGid"),
            "chargerOn": mode == "start-charging",
            "chargingRate": int(payload.get("chargingRate") or device.oem_data.get("maxChargingRate") or 32),
            "maxChargingRate": device.oem_data.get("maxChargingRate") or 48,
        }

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """`chargerOn` and `chargingRate` of `charger_body`, read back from the account's charger status (one
        call). The ids and `maxChargingRate` it echoes are the charger's own, not the command's effect."""
        try:
            body = self.charger_body(device, slug, payload)
        except (CommandRejected, KeyError, TypeError, ValueError):
            return None
        status = self.call("GET", "customers/devices/status")
        charger = next((c for c in status.get("evChargers", []) if c.get("deviceGid") == body["deviceGid"]), None)
        if charger is None:
            raise NotFound("Emporia no longer lists this charger on the account")
        return settings_applied(
            [(body["chargerOn"], charger.get("chargerOn")), (body["chargingRate"], charger.get("chargingRate"))]
        )


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
