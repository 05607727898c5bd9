"""Baselines and delivered energy (M&V): what a device would have done without the event, from its own recent
non-event days, and what it delivered against that.

The methods of the reference (`dispatch-anchors.md` §1), as parameters of one calculation:

- **X of Y**: the Y most recent eligible days before the event (same kind of day: weekdays for a weekday
  event, weekend days for a weekend one; no event, no outage, within the lookback), averaged interval by
  interval; **high X of Y** averages the X of them with the highest load over the event window instead.
- **Day-of adjustment** over a window before the event (4 h to 1 h before, by default): *multiplicative*,
  `a = clamp(mean_W(L_event) / mean_W(B), low, high)` and `B' = a·B`; or *additive*, `B' = B + mean_W(L_event − B)`
  (optionally capped); or none.

Intervals are keyed by their local wall-clock start (minutes after local midnight, in the program's
timezone), so a day's 17:00 matches every other day's 17:00 across a DST change; the caller aggregates
readings into those intervals (a fall-back day's repeated hour averaged). A day lacking readings for more than
`1 − min_coverage` of the event intervals is not eligible; fewer than `min_days` eligible days gives no
baseline, with why: counted, never guessed.

Plain Python over one device's intervals: the reference the report's set-based computation is held to.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MULTIPLICATIVE, ADDITIVE, NO_ADJUSTMENT = "multiplicative", "additive", "none"


@dataclass(frozen=True)
class BaselineMethod:
    days: int = 10  # Y: eligible days looked at
    highest: int | None = None  # X: average the X days with the highest event-window load (None: all Y)
    lookback_days: int = 45  # eligible days are searched this far back
    same_day_type: bool = True  # weekday events from weekdays, weekend events from weekend days
    adjustment: str = MULTIPLICATIVE
    window_minutes: tuple[int, int] = (240, 60)  # the adjustment window: from … to … minutes before the event
    factor_limits: tuple[float, float] = (0.8, 1.2)  # the multiplicative factor's clamp
    offset_limit: float | None = None  # the additive offset's cap (absolute, in the series' unit; None: none)
    min_days: int = 5  # fewer eligible days: no baseline
    min_coverage: float = 0.9  # share of the event intervals a day must have readings for

    def __post_init__(self):
        problems = []
        if self.days < 1:
            problems.append("Y (days) must be at least 1")
        if self.highest is not None and not 1 <= self.highest <= self.days:
            problems.append(f"X (highest) must be between 1 and Y ({self.days})")
        if not 1 <= self.min_days <= self.days:
            problems.append(f"the minimum of eligible days must be between 1 and Y ({self.days})")
        if self.adjustment not in (MULTIPLICATIVE, ADDITIVE, NO_ADJUSTMENT):
            problems.append(f"unknown adjustment {self.adjustment!r}")
        start, end = self.window_minutes
        if self.adjustment != NO_ADJUSTMENT and not start > end >= 0:
            problems.append("the adjustment window must start before it ends, both before the event")
        low, high = self.factor_limits
        if not 0 < low <= 1 <= high:
            problems.append("the factor's limits must be 0 < low ≤ 1 ≤ high")
        if not 0 < self.min_coverage <= 1:
            problems.append("the minimum coverage must be a share above 0, at most 1")
        if problems:
            raise ValueError("Baseline method: " + "; ".join(problems) + ".")

    def describe(self) -> str:
        """The parameters in words, for the report."""
        pick = f"highest {self.highest} of {self.days}" if self.highest else f"{self.days} of {self.days}"
        kind = "same kind of day, " if self.same_day_type else ""
        if self.adjustment == MULTIPLICATIVE:
            adjust = f"multiplicative adjustment clamped to {self.factor_limits[0]:g}–{self.factor_limits[1]:g}"
        elif self.adjustment == ADDITIVE:
            cap = f" capped at ±{self.offset_limit:g}" if self.offset_limit is not None else ""
            adjust = f"additive adjustment{cap}"
        else:
            adjust = "no day-of adjustment"
        if self.adjustment != NO_ADJUSTMENT:
            start, end = self.window_minutes
            adjust += f" over {start / 60:g} h to {end / 60:g} h before the event"
        return f"{pick} eligible days ({kind}within {self.lookback_days} days), {adjust}"


def baseline_method_of(strategy) -> BaselineMethod:
    """The baseline method an event strategy (programs.EventStrategy, a version) sets for its reports."""
    return BaselineMethod(
        days=strategy.baseline_days,
        highest=strategy.baseline_highest,
        lookback_days=strategy.baseline_lookback_days,
        same_day_type=strategy.baseline_same_day_type,
        adjustment=strategy.baseline_adjustment,
        window_minutes=(strategy.baseline_window_start_minutes, strategy.baseline_window_end_minutes),
        factor_limits=(strategy.baseline_factor_min, strategy.baseline_factor_max),
        min_days=strategy.baseline_min_days,
    )


@dataclass(frozen=True)
class Baseline:
    values: dict[int, float]  # B'(t) per event interval (minutes after local midnight)
    days: tuple[date, ...]  # the days it averages
    factor: float | None = None  # multiplicative adjustment applied (after the clamp)
    raw_factor: float | None = None  # before the clamp
    offset: float | None = None  # additive adjustment applied


@dataclass(frozen=True)
class NoBaseline:
    reason: str
    days: tuple[date, ...] = ()


def _weekend(day: date) -> bool:
    return day.weekday() >= 5


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def local_intervals(
    readings: list[tuple[datetime, float]], *, timezone: str, slot_minutes: int = 15
) -> dict[date, dict[int, float]]:
    """Readings (aware datetimes, any zone) averaged into local intervals: {local day: {minutes after local
    midnight of the interval's start: mean}}. A fall-back day's repeated hour lands in the same intervals
    (averaged); a spring-forward day simply has none for the hour that does not exist."""
    zone = ZoneInfo(timezone)
    sums: dict[tuple[date, int], list[float]] = defaultdict(lambda: [0.0, 0])
    for at, value in readings:
        if value is None:
            continue
        local = at.astimezone(zone)
        slot = (local.hour * 60 + local.minute) // slot_minutes * slot_minutes
        bucket = sums[(local.date(), slot)]
        bucket[0] += value
        bucket[1] += 1
    days: dict[date, dict[int, float]] = defaultdict(dict)
    for (day, slot), (total, count) in sums.items():
        days[day][slot] = total / count
    return dict(days)


def baseline_days(
    *,
    event_day: date,
    history: dict[date, dict[int, float]],
    event_slots: list[int],
    excluded: set[date],
    method: BaselineMethod,
) -> list[date]:
    """The eligible days, most recent first (at most Y): before the event day, within the lookback, not
    excluded (event days, outages, holidays), of the event day's kind when the method matches kinds, and
    with readings for enough of the event intervals."""
    eligible = []
    for back in range(1, method.lookback_days + 1):
        day = event_day - timedelta(days=back)
        if day in excluded or day not in history:
            continue
        if method.same_day_type and _weekend(day) != _weekend(event_day):
            continue
        present = sum(1 for slot in event_slots if history[day].get(slot) is not None)
        if present < method.min_coverage * len(event_slots):
            continue
        eligible.append(day)
        if len(eligible) == method.days:
            break
    return eligible


def baseline_compute(
    *,
    event_day: date,
    event_slots: list[int],
    history: dict[date, dict[int, float]],
    event_day_values: dict[int, float],
    excluded: set[date] = frozenset(),
    method: BaselineMethod = BaselineMethod(),
    slot_minutes: int = 15,
) -> Baseline | NoBaseline:
    """The baseline of one device over the event's intervals (`event_slots`: their local starts in minutes
    after midnight), from its `history` ({day: {slot: value}}) and, for the adjustment, its readings of the
    event day before the event (`event_day_values`)."""
    if not event_slots:
        return NoBaseline("The event has no intervals.")
    days = baseline_days(
        event_day=event_day, history=history, event_slots=event_slots, excluded=excluded, method=method
    )
    if len(days) < method.min_days:
        return NoBaseline(
            f"{len(days)} eligible day{'s' if len(days) != 1 else ''} in the {method.lookback_days} before the "
            f"event; the method needs at least {method.min_days}.",
            tuple(days),
        )
    if method.highest:
        # ranked by their load over the event window (ties: the more recent day first)
        ranked = sorted(days, key=lambda d: -(_mean(history[d].get(s) for s in event_slots) or 0.0))
        days = ranked[: method.highest]
    unadjusted = {}
    for slot in event_slots:
        value = _mean(history[d].get(slot) for d in days)
        if value is not None:
            unadjusted[slot] = value
    if method.adjustment == NO_ADJUSTMENT:
        return Baseline(values=unadjusted, days=tuple(days))
    start, end = method.window_minutes
    first = min(event_slots)
    # the window's intervals, by local wall-clock: an event at 17:00 adjusts on 13:00–16:00 (and one early in
    # the morning on the day before's evening is not looked at: those slots are not in the day)
    window = [s for s in range(first - start, first - end, slot_minutes) if s >= 0]
    pairs = [(event_day_values.get(slot), _mean(history[d].get(slot) for d in days)) for slot in window]
    pairs = [(seen, usual) for seen, usual in pairs if seen is not None and usual is not None]
    if not pairs:
        return NoBaseline("No readings in the adjustment window before the event.", tuple(days))
    if method.adjustment == MULTIPLICATIVE:
        usual = sum(u for _, u in pairs) / len(pairs)
        seen = sum(s for s, _ in pairs) / len(pairs)
        if math.isclose(usual, 0.0, abs_tol=1e-9):
            # nothing to scale against: the unadjusted baseline, said so by the missing factor
            return Baseline(values=unadjusted, days=tuple(days))
        raw = seen / usual
        low, high = method.factor_limits
        factor = min(max(raw, low), high)
        return Baseline(
            values={slot: factor * value for slot, value in unadjusted.items()},
            days=tuple(days),
            factor=factor,
            raw_factor=raw,
        )
    offset = sum(s - u for s, u in pairs) / len(pairs)
    if method.offset_limit is not None:
        offset = min(max(offset, -method.offset_limit), method.offset_limit)
    return Baseline(
        values={slot: value + offset for slot, value in unadjusted.items()}, days=tuple(days), offset=offset
    )


# -- delivered energy ---------------------------------------------------------------------------------------

BATTERY, NET_AT_METER = "battery", "net_at_meter"
# what "more" means for each metric's series: battery power is + discharging (more output delivers), the
# site's grid power is + importing (less import delivers)
DELIVERY_SIGN = {BATTERY: 1.0, NET_AT_METER: -1.0}


@dataclass(frozen=True)
class Delivery:
    kwh: float  # delivered against the baseline over the covered intervals
    actual_kwh: float
    baseline_kwh: float
    covered: int  # event intervals with both a reading and a baseline
    intervals: int

    @property
    def coverage(self) -> float:
        return self.covered / self.intervals if self.intervals else 0.0


def delivery_compute(
    *,
    metric: str,
    baseline: Baseline,
    actual_kw: dict[int, float],
    event_slots: list[int],
    slot_minutes: int = 15,
) -> Delivery:
    """Energy delivered over the event's intervals, in kWh: Σ sign·(actual − baseline)·Δt, where `actual_kw` is
    the device's mean power per local interval (battery: + discharging; net at meter: + importing). Intervals
    without a reading or a baseline are left out, not filled: the coverage says how much was measured."""
    sign = DELIVERY_SIGN[metric]
    hours = slot_minutes / 60
    covered = [s for s in event_slots if actual_kw.get(s) is not None and baseline.values.get(s) is not None]
    actual = sum(actual_kw[s] for s in covered) * hours
    expected = sum(baseline.values[s] for s in covered) * hours
    return Delivery(
        kwh=sign * (actual - expected),
        actual_kwh=actual,
        baseline_kwh=expected,
        covered=len(covered),
        intervals=len(event_slots),
    )
