"""The simulated OEM clouds' shared state: a clock, accounts, devices with simple physics, and faults.

Deterministic: the clock can be frozen and advanced, per-device variation comes from a seeded RNG, and
every fault is an explicit, counted injection.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
import secrets
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from integrations.simulator import model

# Modes a battery can be in (normalized names; each OEM module maps its own vocabulary onto these).
SELF_CONSUMPTION, BACKUP, TIME_OF_USE, AUTONOMOUS = "self_consumption", "backup", "time_of_use", "autonomous"
# A device's grid-services enrollment at its OEM: most are in; a few are still being tested and configured by
# the OEM (enrollment is not instantaneous), a few are not in.
GRID_SERVICES_ENROLLED, GRID_SERVICES_PENDING, GRID_SERVICES_NOT_ENROLLED = "enrolled", "pending", "not_enrolled"


def grid_services_mix(seed: int, oem: str, serial: str) -> str:
    """The enrollment a device gets unless told: deterministic per serial (its own draw, so the device's other
    attributes are what they were before it existed), about 80 % enrolled, 10 % pending, 10 % not enrolled."""
    draw = (
        int(hashlib.sha256(f"{seed}:{oem}:{serial}:grid-services-enrollment".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    )
    if draw < 0.8:
        return GRID_SERVICES_ENROLLED
    return GRID_SERVICES_PENDING if draw < 0.9 else GRID_SERVICES_NOT_ENROLLED


class SimClock:
    """Real time plus an offset, or frozen at a fixed instant; `advance` moves it forward."""

    def __init__(self, frozen_at: datetime | None = None):
        self._frozen = frozen_at
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._frozen if self._frozen is not None else datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            if self._frozen is not None:
                self._frozen += timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)
        return self.now()


@dataclass
class SimAccount:
    """One customer/partner account at one OEM, with the credentials the simulator accepts."""

    oem: str
    name: str
    secret: str  # password / client secret / API key, per OEM
    api_key: str = ""  # Enphase's application key, sent beside the bearer token
    refresh_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tokens: dict[str, datetime] = field(default_factory=dict)  # access token → expiry
    used_refresh_tokens: set[str] = field(default_factory=set)
    daily_quota: int = 300  # SolarEdge's calls per key per day (counted in SimState.daily_counts)

    def issue_token(self, now: datetime, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = now + ttl
        return token


@dataclass(frozen=True)
class HistoryPoint:
    """What a device did at one 5-minute point of its past: W (battery + discharging, grid + importing,
    charger the EV's draw), SoC %. load = grid + solar + battery."""

    at: datetime
    soc: float
    battery_w: float
    load_w: float
    solar_w: float
    grid_w: float
    charger_w: float = 0.0
    plugged_in: bool | None = None


@dataclass
class SimDevice:
    """One device at one OEM. Battery power is + discharging; grid power is + importing (like Tesla)."""

    oem: str
    account: str
    serial: str
    kind: str  # battery | charger | vehicle
    number: int  # OEM-side numeric id (energy_site_id, system_id, deviceGid…)
    site_number: int | None = None  # SolarEdge: the site it shares with other batteries (None: a site of its own)
    capacity_wh: float = 13_500.0
    max_power_w: float = 5_000.0
    soc: float = 60.0
    reserve: float = 20.0
    mode: str = SELF_CONSUMPTION
    export_rule: str = "pv_only"  # Tesla's grid export rule: battery_ok lets the battery export to the grid
    # FranklinWH's grid-export setting (getPowerControlSetting): gridFeedMaxFlag 2 lets the aPower export
    power_control: dict = field(default_factory=lambda: dict(FRANKLINWH_POWER_CONTROL))
    grid_charging: bool = False
    storm_enabled: bool = True
    storm_active: bool = False
    # The device's grid-services enrollment at its OEM (each OEM's API shows what it shows of it), and a
    # grid-services event of the OEM's own running on it (Tesla `grid_services_active`, Enphase "DR Event Active")
    grid_services: str = GRID_SERVICES_ENROLLED
    grid_services_event: bool = False
    online: bool = True
    offline_since: datetime | None = None
    solar_peak_w: float = 6_000.0
    base_load_w: float = 900.0
    phase: float = 0.0
    # chargers and vehicles
    charger_on: bool = False
    plugged_in: bool = True
    charging_rate_a: float = 32.0
    max_charging_rate_a: float = 48.0
    charge_limit: float = 80.0
    range_km_per_pct: float = 4.5
    shed_kw: float | None = None  # ChargePoint load shed: allowed kW until cleared or `shed_until`
    shed_until: datetime | None = None
    last_tick: datetime | None = None
    # the device's own account of the energy it moved (Wh, integrated with its SoC): what a report's figures
    # are checked against
    battery_out_wh: float = 0.0
    battery_in_wh: float = 0.0
    grid_import_wh: float = 0.0
    grid_export_wh: float = 0.0
    profile_ids: dict[int, int] = field(default_factory=dict)  # FranklinWH per-account TOU profile ids
    # FranklinWH's counters since local midnight (Wh), summed up to `daily_totals["upto"]`: each call adds only the
    # 5-minute points since, as the points before never change
    daily_totals: dict = field(default_factory=dict, repr=False)
    # The daily model's seed (`integrations.simulator.model`): the simulator's seed, the OEM and the serial.
    noise_key: str = ""
    # When the simulator learnt of the device: before it, the device's past is its daily model; since, what the
    # live physics recorded (`recorded`, a point every 5 minutes while online), commands' effects included.
    created_at: datetime | None = None
    recorded: deque = field(default_factory=lambda: deque(maxlen=model.HISTORY_DAYS * 288), repr=False)
    _soc_path: list = field(default_factory=list, repr=False)  # the modelled past's SoC, a value per STEP

    def __post_init__(self):
        self.noise_key = self.noise_key or f"{self.oem}:{self.serial}"

    # -- physics (the daily model: integrations.simulator.model) -----------------------------------------------
    def solar_w(self, at: datetime) -> float:
        return model.solar_w(self, at)

    def load_w(self, at: datetime) -> float:
        return model.load_w(self, at)

    def battery_w(self, at: datetime) -> float:
        """+ discharging, − charging (batteries); charger/vehicle draw is returned negative (charging)."""
        if self.kind == "charger":
            return -self.charging_rate_a * 240.0 if (self.charger_on and self.plugged_in) else 0.0
        if self.kind == "vehicle":
            charging = self.charger_on and self.plugged_in and self.soc < self.charge_limit
            return -7_200.0 if charging else 0.0
        mode = BACKUP if self.storm_active else self.mode
        if mode == BACKUP:
            return -self.max_power_w if self.soc < 100 else 0.0
        if mode in (TIME_OF_USE, AUTONOMOUS) and self.battery_exports():
            # the "discharge" emulation: export down to the reserve
            return self.max_power_w if self.soc > self.reserve else 0.0
        if mode == AUTONOMOUS or (mode == TIME_OF_USE and self.oem == "franklinwh"):
            # a discharge the export setting keeps off the grid: the battery serves the home's load only, down
            # to the reserve
            net = self.load_w(at) - self.solar_w(at)
            return min(max(net, 0.0), self.max_power_w) if self.soc > self.reserve else 0.0
        # left alone: the battery's own self-consumption cycle, as in its modelled past
        return model.self_consumption_w(
            self.load_w(at) - self.solar_w(at), self.soc, reserve=self.reserve, max_power_w=self.max_power_w
        )

    def battery_exports(self) -> bool:
        """May the battery push power to the grid? Tesla's export rule and FranklinWH's export flag say;
        the other OEMs' discharge emulation always exports."""
        if self.oem == "tesla":
            return self.export_rule == "battery_ok"
        if self.oem == "franklinwh":
            return self.power_control.get("gridFeedMaxFlag") == 2
        return True

    def grid_w(self, at: datetime) -> float:
        battery = self.battery_w(at)
        if self.kind != "battery":
            return round(self.load_w(at) - battery, 1)
        return round(self.load_w(at) - self.solar_w(at) - battery, 1)

    def tick(self, now: datetime) -> None:
        """Integrate SoC from battery power since the last tick (one-minute steps)."""
        if self.last_tick is None or not self.online:
            self.last_tick = now
            return
        at = self.last_tick
        while at < now:
            step = min(timedelta(minutes=1), now - at)
            hours = step.total_seconds() / 3600
            battery, grid = self.battery_w(at), self.grid_w(at)
            point = model.floor_step(at)
            if point < at:
                point += model.STEP
            if point < at + step:  # a 5-minute point of the device's history falls in this step
                self.recorded.append(self._point(point, self.soc, battery))
            self.soc -= battery * hours / self.capacity_wh * 100
            self.soc = min(max(self.soc, 0.0), 100.0)
            self.battery_out_wh += max(battery, 0.0) * hours
            self.battery_in_wh += max(-battery, 0.0) * hours
            self.grid_import_wh += max(grid, 0.0) * hours
            self.grid_export_wh += max(-grid, 0.0) * hours
            at += step
        self.last_tick = now

    # -- history ----------------------------------------------------------------------------------------------
    def _point(self, at: datetime, soc: float, battery: float) -> HistoryPoint:
        """A point of the device's history; its grid power balances it (load = grid + solar + battery)."""
        load, solar = self.load_w(at), self.solar_w(at)
        grid = round(load - solar - battery, 1)
        charger = max(-battery, 0.0) if self.kind != "battery" else 0.0
        return HistoryPoint(
            at=at,
            soc=round(soc, 2),
            battery_w=round(battery, 1),
            load_w=load,
            solar_w=solar,
            grid_w=grid,
            charger_w=charger,
            plugged_in=(charger > 0 or None) if self.kind != "battery" else None,
        )

    def _modelled_battery_w(self, at: datetime, soc: float) -> float:
        """What the device did on its own at `at` in its modelled past (+ discharging; an EV's draw negative)."""
        if self.kind == "charger":
            return -model.charger_session_w(self, at)
        if self.kind != "battery":
            return 0.0
        net = self.load_w(at) - self.solar_w(at)
        return model.self_consumption_w(net, soc, reserve=self.reserve, max_power_w=self.max_power_w)

    def modelled_soc(self, index: int) -> float:
        """The modelled past's SoC at its `index`-th 5-minute point (from `model.history_origin`), integrated
        forward once from half-way between the reserve and full, and cached."""
        path = self._soc_path
        if not path:
            path.append(self.reserve + (100 - self.reserve) / 2)
        origin = model.history_origin(self.created_at)
        hours = model.STEP.total_seconds() / 3600
        while len(path) <= index:
            at = origin + model.STEP * (len(path) - 1)
            battery = self._modelled_battery_w(at, path[-1]) if self.kind == "battery" else 0.0
            path.append(min(max(path[-1] - battery * hours / self.capacity_wh * 100, 0.0), 100.0))
        return path[index]

    def modelled_soc_at(self, at: datetime) -> float:
        origin = model.history_origin(self.created_at)
        return self.modelled_soc(max(0, int((model.floor_step(at) - origin) / model.STEP)))

    def history(self, start: datetime, end: datetime) -> list[HistoryPoint]:
        """The device's 5-minute points in [start, end): its daily model before the simulator learnt of it
        (reaching back `model.HISTORY_DAYS`), what the live physics recorded since (nothing while offline).
        Call through `SimState.history`, which brings the device up to the current time first."""
        points: list[HistoryPoint] = []
        if self.created_at is not None:
            origin = model.history_origin(self.created_at)
            at = max(model.floor_step(start), origin)
            if at < start:
                at += model.STEP
            stop = min(end, self.created_at)
            while at < stop:
                index = int((at - origin) / model.STEP)
                soc = self.modelled_soc(index)
                points.append(
                    self._point(at, soc if self.kind != "charger" else 0.0, self._modelled_battery_w(at, soc))
                )
                at += model.STEP
        since = self.created_at or datetime.min.replace(tzinfo=UTC)
        points += [p for p in list(self.recorded) if start <= p.at < end and p.at >= since]
        return points

    def measured_at(self, now: datetime) -> datetime:
        """The device's last report: the current minute when online, the moment it went quiet otherwise."""
        if not self.online and self.offline_since is not None:
            return self.offline_since.replace(microsecond=0)
        return now.replace(second=0, microsecond=0)


@dataclass
class Fault:
    """An injected failure: `kind` for the next `times` matching requests (None: until cleared)."""

    kind: str
    times: int | None = 1
    params: dict = field(default_factory=dict)


# The grid-export setting a FranklinWH gateway starts with: gridFeedMaxFlag 1 solar only | 2 solar + aPower |
# 3 no export; gridFeedMax a kW cap (-1 unlimited); globalGridDischargeMax (-1 unlimited).
FRANKLINWH_POWER_CONTROL = {"gridFeedMaxFlag": 1, "gridFeedMax": -1, "globalGridDischargeMax": -1}
FAULT_KINDS = {"expired_token", "unauthorized", "forbidden", "rate_limit", "server_error", "slow", "drop"}


class SimState:
    """Everything the simulated clouds know. Thread-safe: the HTTP server handles requests concurrently."""

    def __init__(self, *, clock: SimClock | None = None, seed: int = 7):
        self.clock = clock or SimClock()
        self.seed = seed
        self.lock = threading.RLock()
        self.accounts: dict[tuple[str, str], SimAccount] = {}
        self.devices: dict[tuple[str, str], SimDevice] = {}
        self.by_number: dict[tuple[str, int], SimDevice] = {}
        self.faults: dict[tuple[str, str], list[Fault]] = {}  # (oem, account name or serial) → faults
        self.request_count = 0
        self.requests_by_oem: dict[str, int] = {}
        self.requests_by_path: Counter[tuple[str, str, str]] = Counter()  # (oem, method, path) → calls
        self.writes: Counter[tuple[str, str, str, str]] = Counter()  # (oem, method, path, body hash) → calls
        # Seconds each answer of an OEM takes, so that concurrent calls overlap as they do at the real cloud.
        self.latency: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}  # calls being answered now, per OEM (every client is one IP here)
        self.max_in_flight: dict[str, int] = {}
        self.daily_counts: dict[tuple[str, str], tuple[str, int]] = {}  # (oem, what) → (day, calls that day)
        self.token_ttl = timedelta(hours=8)
        # the Emporia account PyEmVue's simulator mode (its fixed `authtoken: simulator`) reads; None refuses it
        self.emporia_simulator_mode_account: str | None = "demo"
        # customers' OAuth consents (integrations.simulator.oauth): codes by value, grants by refresh token
        # (current and spent ones)
        self.oauth_codes: dict = {}
        self.oauth_grants: dict = {}
        self._numbers: dict[str, int] = {}

    # -- building --------------------------------------------------------------------------------------------
    def add_account(self, oem: str, name: str, secret: str, *, api_key: str = "") -> SimAccount:
        with self.lock:
            account = SimAccount(oem=oem, name=name, secret=secret, api_key=api_key)
            self.accounts[(oem, name)] = account
            return account

    def account(self, oem: str, name: str) -> SimAccount | None:
        return self.accounts.get((oem, name))

    def add_device(self, oem: str, serial: str, *, kind: str, account: str = "demo", **attrs) -> SimDevice:
        with self.lock:
            rng = random.Random(int(hashlib.sha256(f"{self.seed}:{oem}:{serial}".encode()).hexdigest()[:12], 16))
            number = attrs.pop("number", None) or self._numbers.get(oem, 0) + 1
            self._numbers[oem] = max(self._numbers.get(oem, 0), number)
            defaults = {
                "soc": round(rng.uniform(35, 90), 1),
                "reserve": rng.choice([10.0, 20.0, 30.0]),
                "solar_peak_w": rng.choice([0.0, 4_000.0, 6_500.0, 8_000.0]),
                "base_load_w": round(rng.uniform(500, 1_500), 0),
                "phase": rng.uniform(0, 2 * math.pi),
                "storm_enabled": rng.random() < 0.8,
                "plugged_in": kind != "battery" and rng.random() < 0.7,
                "grid_services": grid_services_mix(self.seed, oem, serial),
            }
            if kind == "vehicle":
                defaults["capacity_wh"] = 75_000.0
            if kind == "battery":
                defaults["profile_ids"] = {mode: rng.randint(100_000, 999_999) for mode in (1, 2, 3)}
            explicit_soc = "soc" in attrs
            defaults.update(attrs)
            device = SimDevice(
                oem=oem,
                account=account,
                serial=serial,
                kind=kind,
                number=1_000 + number,
                noise_key=f"{self.seed}:{oem}:{serial}",
                **defaults,
            )
            device.created_at = device.last_tick = self.clock.now()
            if kind == "battery" and not explicit_soc:
                # the device carries on from its modelled past (the draw above kept the other draws as they were)
                device.soc = round(device.modelled_soc_at(device.created_at), 1)
            self.devices[(oem, serial)] = device
            self.by_number[(oem, device.number)] = device
            return device

    def load_fleet_csv(self, path: str | Path, *, account: str = "demo") -> int:
        """Devices from a bulk-import CSV (`manufacturerSlug`, `systemIdentifier`, `deviceType`; an optional
        `account` column). Unknown OEMs are ignored."""
        from integrations.simulator.server import OEM_MODULES

        count = 0
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                oem = row.get("manufacturerSlug", "").strip()
                if row.get("deviceType", "").strip() == "vehicle":
                    oem = "smartcar"  # every EV brand is reached through Smartcar
                if oem not in OEM_MODULES:
                    continue
                kind = {"battery": "battery", "charger": "charger", "vehicle": "vehicle"}.get(
                    row.get("deviceType", "").strip(), "battery"
                )
                self.add_device(oem, row["systemIdentifier"].strip(), kind=kind, account=row.get("account") or account)
                count += 1
        return count

    def device(self, oem: str, serial: str) -> SimDevice | None:
        return self.devices.get((oem, serial))

    def device_by_number(self, oem: str, number) -> SimDevice | None:
        try:
            return self.by_number.get((oem, int(number)))
        except (TypeError, ValueError):
            return None

    def account_devices(self, oem: str, account: str) -> list[SimDevice]:
        return [d for d in list(self.devices.values()) if d.oem == oem and d.account == account]

    def energy(self, oem: str, serial: str) -> dict:
        """The device's energy account up to now, in Wh (battery out and in, grid import and export)."""
        with self.lock:
            device = self.live(self.devices[(oem, serial)])
            return {
                "batteryOutWh": round(device.battery_out_wh, 3),
                "batteryInWh": round(device.battery_in_wh, 3),
                "gridImportWh": round(device.grid_import_wh, 3),
                "gridExportWh": round(device.grid_export_wh, 3),
                "at": self.clock.now().isoformat(),
            }

    def history(self, device: SimDevice, start: datetime, end: datetime) -> list[HistoryPoint]:
        """The device's 5-minute points in [start, end), never past the current simulated time."""
        with self.lock:
            self.live(device)
            return device.history(start, min(end, self.clock.now()))

    def live(self, device: SimDevice) -> SimDevice:
        """The device with its SoC brought up to the current simulated time."""
        device.tick(self.clock.now())
        return device

    # -- operator controls (also exposed over HTTP under /_sim/) -----------------------------------------------
    def inject(self, oem: str, target: str, kind: str, *, times: int | None = 1, **params) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        with self.lock:
            self.faults.setdefault((oem, target), []).append(Fault(kind=kind, times=times, params=params))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, oem: str, *targets: str) -> Fault | None:
        """The next fault for any of the targets (account name, device serial, `<account>:token`), consuming
        one use."""
        with self.lock:
            for target in targets:
                queue = self.faults.get((oem, target))
                if not queue:
                    continue
                fault = queue[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                return fault
        return None

    def set_online(self, oem: str, serial: str, online: bool) -> SimDevice:
        with self.lock:
            device = self.devices[(oem, serial)]
            device.tick(self.clock.now())
            device.online = online
            device.offline_since = None if online else self.clock.now()
            return device

    def set_storm(self, oem: str, serial: str, active: bool) -> SimDevice:
        with self.lock:
            device = self.devices[(oem, serial)]
            device.tick(self.clock.now())
            device.storm_active = active and device.storm_enabled
            return device

    def set_grid_services_event(self, oem: str, serial: str, active: bool) -> SimDevice:
        """Start or end a grid-services event of the OEM's own on the device (only an enrolled one takes part)."""
        with self.lock:
            device = self.devices[(oem, serial)]
            device.tick(self.clock.now())
            device.grid_services_event = active and device.grid_services == GRID_SERVICES_ENROLLED
            return device

    def advance(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    def count_write(self, oem: str, method: str, path: str, body: bytes, *, query: dict | None = None) -> None:
        """A write (every method but GET), by its path, query and body: the same write received twice is a
        command sent twice (some OEMs put the device in the body or the query, not the path)."""
        digest = hashlib.sha1(body or b"", usedforsecurity=False)
        digest.update(repr(sorted((query or {}).items())).encode())
        key = (oem, method, path, digest.hexdigest())
        with self.lock:
            self.writes[key] += 1

    def write_counts(self) -> dict:
        """Writes received (sign-ins and token calls aside), and how many repeated an earlier one exactly (the
        fan-out benchmark reports it)."""
        auth = ("token", "login", "oauth", "auth", "cognito")
        with self.lock:
            counts = [n for (_oem, _m, path, _b), n in self.writes.items() if not any(a in path.lower() for a in auth)]
        return {"writes": sum(counts), "repeated": sum(n - 1 for n in counts if n > 1)}

    def count_request(self, oem: str, method: str = "", path: str = "") -> None:
        with self.lock:
            self.request_count += 1
            self.requests_by_oem[oem] = self.requests_by_oem.get(oem, 0) + 1
            self.requests_by_path[(oem, method, path)] += 1

    def call_started(self, oem: str) -> int:
        """One more call of `oem` being answered; returns how many are in flight with it."""
        with self.lock:
            self.in_flight[oem] = self.in_flight.get(oem, 0) + 1
            self.max_in_flight[oem] = max(self.max_in_flight.get(oem, 0), self.in_flight[oem])
            return self.in_flight[oem]

    def call_finished(self, oem: str) -> None:
        with self.lock:
            self.in_flight[oem] -= 1

    def count_daily(self, oem: str, what: str) -> int:
        """Count one call against a per-day quota (`what`: an API key, a site…); returns the day's count so far.
        Days are UTC calendar days of the simulated clock."""
        day = self.clock.now().date().isoformat()
        with self.lock:
            counted_day, count = self.daily_counts.get((oem, what), (day, 0))
            count = count + 1 if counted_day == day else 1
            self.daily_counts[(oem, what)] = (day, count)
            return count

    def daily_count(self, oem: str, what: str) -> int:
        """Calls counted against `what` on the simulated clock's current day."""
        day, count = self.daily_counts.get((oem, what), ("", 0))
        return count if day == self.clock.now().date().isoformat() else 0
