"""What every OEM adapter speaks: the normalized shapes, the error taxonomy and the HTTP plumbing.

An adapter turns one OEM's API (its auth, envelopes, units, signs, errors and rate-limit shapes) into the
portal's terms (docs/domain.md): SoC %, `charge_rate_w` + discharging, `grid_power_w` + importing, the OEM's own
measurement time in UTC. Callers only ever see these classes, never a vendor's JSON.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol

import requests
from requests.adapters import HTTPAdapter

from fleet.choices import GridServicesStatus
from integrations.ratelimit import NoFreeSlot, rate_limiter


# -- errors -----------------------------------------------------------------------------------------------
class IntegrationError(Exception):
    """The OEM refused or failed a call. `transient` errors may succeed when retried later."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class TransientError(IntegrationError):
    """5xx, a timeout or a dropped connection: retry with backoff."""

    transient = True


class RateLimited(TransientError):
    """The OEM's rate limit (in its own shape): retry no sooner than `retry_after` seconds."""


class AuthError(IntegrationError):
    """Credentials rejected even after a refresh (401/403, or the OEM's body code). Needs a person."""


class DeviceOffline(IntegrationError):
    """The OEM knows the device but it is not reporting (Tesla 408, FranklinWH 136, Enphase `comm`…)."""


class NotFound(IntegrationError):
    """The OEM does not know this device or site."""


class NotSupported(IntegrationError):
    """The OEM's API has no way to do this (e.g. SolarEdge monitoring takes no commands)."""


class CommandRejected(IntegrationError):
    """The OEM answered but refused the command (bad input, Storm Guard active, …)."""


# -- normalized shapes ------------------------------------------------------------------------------------
def check_grid_services_status(value: str | None) -> None:
    """A reported grid-services status is one of `GridServicesStatus` (None: this read says nothing of it)."""
    if value is not None and value not in GridServicesStatus.values:
        raise ValueError(f"grid_services_status {value!r} is not one of {GridServicesStatus.values}")


@dataclass(frozen=True)
class DeviceRef:
    """A portal device as an adapter needs it: its serial and what discovery stored about it."""

    serial: str
    external_id: str = ""
    oem_data: dict = field(default_factory=dict)
    device_type: str = ""


@dataclass(frozen=True)
class DiscoveredDevice:
    """One device the OEM account can reach. `serial` is matched against `Device.system_identifier`."""

    serial: str
    external_id: str
    kind: str
    online: bool = True
    site_external_id: str = ""
    model: str = ""
    firmware: str = ""
    last_seen_at: datetime | None = None
    oem_data: dict = field(default_factory=dict)
    # What the OEM shows of the device's grid-services enrollment (`GridServicesStatus`); None: nothing.
    grid_services_status: str | None = None

    def __post_init__(self):
        check_grid_services_status(self.grid_services_status)


@dataclass
class TelemetrySnapshot:
    """One normalized reading (fields and units of `fleet.models.TelemetryReading`)."""

    measured_at: datetime
    charge_percentage: float | None = None
    charge_rate_w: float | None = None
    grid_power_w: float | None = None
    solar_power_w: float | None = None
    backup_reserve_percent: float | None = None
    charging_state: str = "unknown"
    grid_status: str = "unknown"
    strategy: str = ""
    is_storm_mode_enabled: bool | None = None
    is_storm_mode_active: bool | None = None
    is_plugged_in: bool | None = None
    charger_wattage_w: float | None = None
    charge_limit_percent: float | None = None
    range_km: float | None = None
    # Not a reading field: stored on the device (read with the reading); None when this read says nothing.
    grid_services_status: str | None = None

    READING_FIELDS: ClassVar[tuple[str, ...]] = (
        "charge_percentage",
        "charge_rate_w",
        "grid_power_w",
        "solar_power_w",
        "backup_reserve_percent",
        "charging_state",
        "grid_status",
        "strategy",
        "is_storm_mode_enabled",
        "is_storm_mode_active",
        "is_plugged_in",
        "charger_wattage_w",
        "charge_limit_percent",
        "range_km",
    )

    def __post_init__(self):
        if self.measured_at.tzinfo is None:
            raise ValueError("measured_at must be timezone-aware (the OEM's time, in UTC)")
        self.measured_at = self.measured_at.astimezone(UTC)
        if self.charge_percentage is not None:
            self.charge_percentage = min(100.0, max(0.0, float(self.charge_percentage)))
        if self.charging_state == "unknown" and self.charge_rate_w is not None:
            self.charging_state = battery_charging_state(self.charge_rate_w)
        if self.grid_status == "unknown" and self.grid_power_w is not None:
            self.grid_status = grid_direction(self.grid_power_w)
        check_grid_services_status(self.grid_services_status)

    def reading_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.READING_FIELDS}


@dataclass
class CommandResult:
    """What the OEM said about a command: accepted (done), pending (async, check later), rejected, failed."""

    status: str
    oem_reference: str = ""
    message: str = ""
    verify_after: datetime | None = None


ALREADY_IN_EFFECT = "Already in effect at the OEM when taken over: not sent again."


def settings_applied(pairs: list[tuple[Any, Any]]) -> bool | None:
    """Whether a command's settings read back as written, from (written, read back) pairs: False as soon as one
    known pair differs, None when none differs but one side of a pair is unknown (None), True when all match.
    Numbers compare by value (Tesla's 20 and 20.0 are the same reserve)."""
    unknown = False
    for written, read in pairs:
        if written is None or read is None:
            unknown = True
        elif written != read:
            return False
    return None if unknown else True


# Power below this is noise (standby draw, meter jitter), not charging or importing.
POWER_DEADBAND_W = 50.0


def battery_charging_state(charge_rate_w: float) -> str:
    if charge_rate_w > POWER_DEADBAND_W:
        return "discharging"
    if charge_rate_w < -POWER_DEADBAND_W:
        return "charging"
    return "idle"


def grid_direction(grid_power_w: float) -> str:
    if grid_power_w > POWER_DEADBAND_W:
        return "importing"
    if grid_power_w < -POWER_DEADBAND_W:
        return "exporting"
    return "idle"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def oauth_error_reason(body: dict, status: int) -> str:
    """An OAuth error answer (`error`, `error_description`, RFC 6749 §5.2) as one line for staff."""
    reason = str(body.get("error") or body.get("message") or body.get("description") or status)
    return f"{reason} ({body['error_description']})" if body.get("error_description") else reason


def token_refresh_error(
    oem: str, response: requests.Response, reason, *, retry_after: float | None = None, action: str = "token refresh"
) -> IntegrationError:
    """What an unsuccessful token refresh (or sign-in: `action`) means. A rate limit or an outage at the OEM's
    token endpoint spends nothing, so the job is retried: 429 → RateLimited (after `retry_after`, or the
    response's Retry-After), 408 and 5xx → TransientError. Anything else (400/401/403 `invalid_grant`,
    `login_required`, a client secret refused…) is the OEM's verdict on the credentials: AuthError, a person
    must act."""
    status = response.status_code
    if status == 429:
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(f"{oem} {action} rate limited (429): {reason}", status=status, retry_after=retry_after)
    if status == 408 or status >= 500:
        return TransientError(f"{oem} {action} failed ({status}): {reason}", status=status)
    return AuthError(f"{oem} {action} refused: {reason}", status=status)


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 300.0, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the OEM's Retry-After."""
    delay = random.uniform(0, min(cap, base * 2**attempt))
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0, 1))
    return delay


# -- the adapter ------------------------------------------------------------------------------------------
class CredentialsStore(Protocol):
    """Where the integration's credentials live for every process that runs its jobs (the services layer
    passes one to the adapters it builds). Called by `OemAdapter.refresh_tokens` to run the refresh under the
    store's lock; returns True when the OEM issued new tokens, False when the adapter adopted stored ones."""

    def __call__(self, *, adapter: OemAdapter, failed: str | None) -> bool: ...


class OemAdapter:
    """Base of every OEM adapter: a pooled `requests` session, a timeout on every call, the shared per-OEM
    token bucket, and the contract (discover, fetch_telemetry, send_command, command_status, command_applied,
    enroll_grid_services).

    `credentials` is the integration's decrypted credentials. OEMs with rotating OAuth refresh tokens
    implement `request_tokens` and refresh through `refresh_tokens`: with a `credentials_store` the new tokens
    are stored at once, under a lock every process shares. Anything else the adapter sets (`set_credential`:
    a sign-in token, tokens refreshed without a store) is `credentials_pending`, for the caller to save back
    (encrypted) after the job.
    """

    channel: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # How often the OEM's telemetry is worth reading (beat runs each OEM at its cadence).
    telemetry_cadence: ClassVar[timedelta] = timedelta(minutes=5)
    # How often a device taking part in a running dispatch event is read (to confirm its commands): the
    # fastest the OEM's limits allow. None: its normal cadence.
    event_telemetry_cadence: ClassVar[timedelta | None] = None
    # OEM calls a command takes (the dispatch engine paces each OEM's share of the broker by its rate limit)
    calls_per_command: ClassVar[int] = 1
    required_credentials: ClassVar[tuple[str, ...]] = ()
    # An OEM with a daily call quota (SolarEdge) declares it: syncs are then paced by
    # `integrations.services.telemetry_pace`, keeping `daily_call_reserve` for connection tests. None: no quota.
    daily_call_quota: ClassVar[int | None] = None
    daily_call_reserve: ClassVar[int] = 0
    # OEMs whose look-up of a serial costs quota: a serial not found is looked up again only after this
    # (doubling up to a day). None: looked up on every discovery run.
    discovery_recheck_after: ClassVar[timedelta | None] = None
    # OEM ids already bound to portal devices, set by discovery before `discover`: an adapter that pays a call
    # per device can skip them.
    linked_external_ids: frozenset[str] = frozenset()
    # The credentials a token refresh writes (and adopts from the store when another process refreshed).
    token_keys: ClassVar[tuple[str, ...]] = ("access_token", "refresh_token")
    # Whether the OEM's API serves a device's past telemetry (`telemetry_history`), and if not, why: the
    # backfill says so on its run instead of calling.
    history_supported: ClassVar[bool] = False
    history_note: ClassVar[str] = "The OEM's API serves no telemetry history."

    def __init__(
        self,
        *,
        credentials: dict,
        base_url: str,
        timeout: float = 10.0,
        pool_size: int = 16,
        credentials_store: CredentialsStore | None = None,
    ):
        self.credentials = dict(credentials)
        self._credentials_stored = dict(credentials)  # what the adapter knows to be stored
        self.credentials_store = credentials_store
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        pool = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", pool)
        self.session.mount("https://", pool)
        self._auth_lock = threading.Lock()
        self.requests_made = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # contract --------------------------------------------------------------------------------------------
    def check_credentials(self) -> list[str]:
        """Names of required credential fields that are missing (checked before any call)."""
        return [name for name in self.required_credentials if not self.credentials.get(name)]

    def test_connection(self) -> str:
        """One cheap authenticated call; returns a short description of what the account sees."""
        devices = self.discover()
        return f"{len(devices)} device(s) visible to this account"

    def discover(self, serials: list[str] | None = None) -> list[DiscoveredDevice]:
        """Devices the account reaches. `serials` are the ones the portal is looking for: OEMs that list
        everything in one call ignore it; OEMs that can only look a serial up use it."""
        raise NotImplementedError

    def fetch_telemetry(self, device: DeviceRef) -> TelemetrySnapshot:
        raise NotImplementedError

    def fetch_telemetry_many(self, devices: list[DeviceRef]) -> dict[str, TelemetrySnapshot | IntegrationError]:
        """Telemetry of several devices, keyed by serial. Per-device failures (offline, not found) are returned
        in place of a snapshot; account-wide ones (auth, rate limit, outage) raise. OEMs with a batch endpoint
        override this."""
        results: dict[str, TelemetrySnapshot | IntegrationError] = {}
        for device in devices:
            try:
                results[device.serial] = self.fetch_telemetry(device)
            except (DeviceOffline, NotFound) as exc:
                results[device.serial] = exc
        return results

    def telemetry_history(
        self, devices: list[DeviceRef], start: datetime, end: datetime
    ) -> dict[str, list[TelemetrySnapshot] | IntegrationError]:
        """The devices' past readings measured in [start, end), keyed by serial: the same normalized snapshots
        `fetch_telemetry` returns, read through the OEM's history API page by page within its window limits.
        Per-device failures (offline, not found) are returned in place of the list; account-wide ones (auth,
        rate limit, outage) raise. An OEM without a history API (`history_supported` False) returns nothing."""
        return {}

    def history_each(self, devices: list[DeviceRef], read) -> dict[str, list[TelemetrySnapshot] | IntegrationError]:
        """`telemetry_history` of an OEM read device by device: `read(device)` → its snapshots."""
        results: dict[str, list[TelemetrySnapshot] | IntegrationError] = {}
        for device in devices:
            try:
                results[device.serial] = read(device)
            except (DeviceOffline, NotFound, CommandRejected) as exc:  # that device's answer (422: no battery…)
                results[device.serial] = exc
        return results

    def send_command(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        raise NotSupported(f"{self.channel} takes no commands through this integration.")

    def command_status(self, device: DeviceRef, result: CommandResult) -> CommandResult:
        """Synchronous OEMs answer at send time; async ones (202) override this."""
        return result

    def command_applied(self, device: DeviceRef, slug: str, payload: dict) -> bool | None:
        """Whether the effect `send_command(device, slug, payload)` writes is already in place at the OEM, read
        with calls that change nothing: True (every setting it writes reads back as written), False (one
        does not), None (cannot be told: the OEM does not show it, or the command writes a value known only
        at send time). For taking a command over from a worker that died mid-call without writing twice.
        OEM errors raise as from any other call. The base class cannot tell."""
        return None

    def command_resume(self, device: DeviceRef, slug: str, payload: dict) -> CommandResult:
        """`send_command` for a command another worker may have sent already (it died mid-call): nothing is
        written when the effect is in place (`command_applied`); otherwise it is sent. An adapter whose command
        is several writes overrides this to send only those not in place yet."""
        if self.command_applied(device, slug, payload):
            return CommandResult("accepted", message=ALREADY_IN_EFFECT)
        return self.send_command(device, slug, payload)

    def enroll_grid_services(self, device: DeviceRef) -> dict:
        """No OEM exposes a public "enroll in VPP" call: report what the device can take part with, so the
        platform records consent and capabilities itself (see oem-apis.md)."""
        return {
            "eligible": "grid_services" in self.capabilities,
            "capabilities": sorted(self.capabilities),
        }

    # HTTP ------------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path  # an OEM's separate auth host
        return f"{self.base_url}/{path.lstrip('/')}"

    def http(self, method: str, path: str, *, timeout: float | None = None, **kwargs) -> requests.Response:
        """One call: waits for the shared per-OEM token, then holds one of the OEM's call slots where it caps
        calls in flight (SolarEdge), applies the timeout, maps transport failures."""
        limiter = rate_limiter()
        limiter.acquire(self.channel)
        try:
            with limiter.slot(self.channel):
                self.requests_made += 1
                return self.session.request(method, self.url(path), timeout=timeout or self.timeout, **kwargs)
        except NoFreeSlot as exc:
            raise TransientError(
                f"{self.channel}: no call slot free within {limiter.slot_wait:g} s (the OEM allows "
                f"{limiter.concurrency[self.channel]} calls in flight, shared by every worker)"
            ) from exc
        except requests.Timeout as exc:
            raise TransientError(f"{self.channel}: no answer within {timeout or self.timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise TransientError(f"{self.channel}: connection failed ({exc.__class__.__name__})") from exc

    def set_credential(self, **values) -> None:
        self.credentials.update(values)

    def credentials_pending(self) -> dict[str, tuple[Any, Any]]:
        """Credentials the adapter changed and has not saved: {key: (value it was loaded with, new value)}."""
        return {
            key: (self._credentials_stored.get(key), value)
            for key, value in list(self.credentials.items())
            if self._credentials_stored.get(key) != value
        }

    @property
    def credentials_changed(self) -> bool:
        return bool(self.credentials_pending())

    def credentials_saved(self) -> None:
        """The caller stored (or deliberately dropped) what was pending."""
        self._credentials_stored = dict(self.credentials)

    # auth ------------------------------------------------------------------------------------------------
    def request_tokens(self, credentials: dict) -> dict:
        """One refresh at the OEM with `credentials`' refresh token: the new `token_keys` values. Rotating
        refresh tokens are spent by this call, so only `refresh_tokens` calls it."""
        raise NotImplementedError

    def refresh_tokens(self, failed: str | None = None) -> bool:
        """A new access token, after `failed` was refused (None: there is none yet).

        Threads of this adapter wait for each other: the first refreshes, the others use its token. With a
        `credentials_store`, processes do too: the store re-reads the stored tokens under its lock, adopts
        them when another process already refreshed, and otherwise refreshes and stores the new tokens before
        the lock is released, so a rotating refresh token is spent exactly once.

        Returns True when this call got a token from the OEM; False when it took one another thread or
        process got, which the caller may find refused in turn (expired since): then it refreshes again.
        """
        with self._auth_lock:
            current = self.credentials.get("access_token")
            if current and current != failed:
                return False  # another thread already (re)authenticated while this one waited
            if self.credentials_store is None:
                self.set_credential(**self.request_tokens(self.credentials))
                return True
            return self.credentials_store(adapter=self, failed=failed)

    def adopt_tokens(self, values: dict) -> None:
        """Take tokens that are already stored (by the store, under its lock): nothing left to save."""
        for key in self.token_keys:
            for credentials in (self.credentials, self._credentials_stored):
                if values.get(key) is None:
                    credentials.pop(key, None)
                else:
                    credentials[key] = values[key]


def utc_from_epoch(seconds: float | int | None) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def utc_from_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {value!r}")
    return parsed.astimezone(UTC)


def day_starts(start: datetime, end: datetime, zone) -> list[datetime]:
    """The local midnights (in `zone`) of every day that [start, end) touches: an OEM's per-day history pages."""
    day = start.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day < end:
        days.append(day)
        day += timedelta(days=1)  # wall-clock arithmetic: the next local midnight, DST days included
    return days


def in_window(snapshots: list[TelemetrySnapshot], start: datetime, end: datetime) -> list[TelemetrySnapshot]:
    """Snapshots measured in [start, end), in time order, one per instant."""
    unique = {s.measured_at: s for s in snapshots if start <= s.measured_at < end}
    return [unique[at] for at in sorted(unique)]
