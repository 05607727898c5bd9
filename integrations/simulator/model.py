"""Each simulated home's daily model: what its load, solar and battery do on any day, past or present.

Deterministic, seeded per device (`SimDevice.noise_key`: the simulator's seed, the OEM and the serial), so the
same device shows the same numbers in every run and every test. The simulator's live physics and its history
endpoints read the same functions: a device left alone does now what its past says it does, so an event's
baseline from the device's own days before the event predicts what it would have done without the event.

* **Load**: a base load with a morning and an evening peak (a weekday's evening peak is the day's highest), a
  later, broader morning and a midday bump at weekends; each home's peaks shifted by up to ±45 minutes; ±5 %
  noise per 5-minute slot.
* **Solar**: zero at night, a bell between 06:30 and 19:30 local time scaled by the system's peak
  (`solar_peak_w`, 0 for homes without panels), and a per-day cloud factor (55–100 %).
* **Battery** (`self_consumption_w`): charges from the solar surplus, discharges to serve the load above the
  solar, within its power, down to its reserve and up to 100 %.
* **Grid** = load − solar − battery (+ importing; the battery + discharging), so load = grid + solar + battery.
* **EV charger**: an evening charging session on most days (when it starts and the energy it needs drawn per
  day), at the charger's rate.

Local time is the simulated homes' fixed UTC−07:00 (the offset Tesla's simulated `live_status` sends).
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime, timedelta, timezone

SITE_TZ = timezone(timedelta(hours=-7))
STEP = timedelta(minutes=5)  # the model's history resolution (and its noise slots)
# How far back a simulated device's past reaches (the portal reads up to 45 days before an event).
HISTORY_DAYS = 60
SUNRISE, SUNSET = 6.5, 19.5  # local hours


def unit(key: str, *parts) -> float:
    """A deterministic draw in [0, 1) for (key, parts): the same in every run and on every machine (BLAKE2b, not
    Python's salted `hash`), fast enough to be called for every 5-minute slot of 60 days."""
    digest = hashlib.blake2b(f"{key}|{'|'.join(map(str, parts))}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def local(at: datetime) -> tuple[float, int, date]:
    """(local hour with fraction, weekday 0 = Monday, local date) of a UTC instant."""
    moment = at.astimezone(SITE_TZ)
    return moment.hour + moment.minute / 60 + moment.second / 3600, moment.weekday(), moment.date()


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2) / 2)


def load_shape(hour: float, weekday: int, shift: float = 0.0) -> float:
    """The home's load as a multiple of its base load at a local hour (no noise)."""
    if weekday >= 5:  # weekend: a later, broader morning, people home at midday, a lower evening
        return (
            0.6
            + 0.8 * _bump(hour, 9.5 + shift, 1.5)
            + 0.5 * _bump(hour, 13.5, 2.0)
            + 1.4 * _bump(hour, 18.5 + shift, 1.8)
        )
    return 0.55 + 0.9 * _bump(hour, 7.0 + shift, 1.0) + 1.7 * _bump(hour, 19.0 + shift, 1.6)


def load_w(device, at: datetime) -> float:
    hour, weekday, _day = local(at)
    shift = (device.phase / (2 * math.pi) - 0.5) * 1.5  # each home's own routine: ±45 minutes
    slot = int(at.timestamp() // STEP.total_seconds())
    noise = 1 + (unit(device.noise_key, "load", slot) - 0.5) * 0.1
    return round(device.base_load_w * load_shape(hour, weekday, shift) * noise, 1)


def solar_shape(hour: float) -> float:
    """The clear-sky production as a fraction of the system's peak at a local hour: 0 at night."""
    if not SUNRISE < hour < SUNSET:
        return 0.0
    return math.sin(math.pi * (hour - SUNRISE) / (SUNSET - SUNRISE)) ** 1.5


def solar_w(device, at: datetime) -> float:
    if device.kind != "battery" or device.solar_peak_w <= 0:
        return 0.0
    hour, _weekday, day = local(at)
    shape = solar_shape(hour)
    if shape == 0.0:
        return 0.0
    clouds = 0.55 + 0.45 * unit(device.noise_key, "sky", day.isoformat())
    return round(device.solar_peak_w * shape * clouds, 1)


def self_consumption_w(net_w: float, soc: float, *, reserve: float, max_power_w: float) -> float:
    """The battery's own cycle (+ discharging): serve the load above the solar down to the reserve, store the
    solar surplus up to 100 %, within its power."""
    if net_w > 0:
        return min(net_w, max_power_w) if soc > reserve else 0.0
    return max(net_w, -max_power_w) if soc < 100 else 0.0


def charger_session_w(device, at: datetime) -> float:
    """An EV charger's draw by its usual routine (W, ≥ 0): most evenings a car plugs in between 17:30 and
    20:30 and charges the day's need (6–30 kWh) at the charger's rate."""
    rate_w = device.charging_rate_a * 240.0
    hour, weekday, day = local(at)
    for offset in (0, 1):  # a session that started yesterday evening may run past midnight
        session_day = day - timedelta(days=offset)
        key = session_day.isoformat()
        if unit(device.noise_key, "session", key) > (0.75 if session_day.weekday() < 5 else 0.5):
            continue
        start = 17.5 + 3 * unit(device.noise_key, "plug-in", key)
        hours = (6_000 + 24_000 * unit(device.noise_key, "need", key)) / rate_w
        elapsed = hour + 24 * offset - start
        if 0 <= elapsed < hours:
            return rate_w
    return 0.0


def history_origin(created_at: datetime) -> datetime:
    """Where a device's modelled past starts: HISTORY_DAYS before the UTC midnight of the day it was created
    (so the past of a device created at any time of one day is the same)."""
    day = created_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=HISTORY_DAYS)


def floor_step(at: datetime) -> datetime:
    seconds = int(STEP.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, tz=UTC)
