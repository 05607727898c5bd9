"""Baselines with known numbers (dispatch-anchors.md §1): X of Y with a clamped multiplicative adjustment (the
reference's 2.0 / 2.6 / 1.0 kW example), high X of Y, additive, eligible days, DST, missing readings, none."""

from datetime import UTC, date, datetime, timedelta

import pytest

from dispatch.baselines import (
    ADDITIVE,
    NO_ADJUSTMENT,
    Baseline,
    BaselineMethod,
    NoBaseline,
    baseline_compute,
    local_intervals,
)

EVENT_DAY = date(2026, 7, 15)  # a Wednesday
EVENT = list(range(17 * 60, 20 * 60, 15))  # 17:00–20:00, twelve 15-minute intervals
WINDOW = list(range(13 * 60, 16 * 60, 15))  # 4 h to 1 h before


def weekdays_before(day: date, n: int) -> list[date]:
    days = []
    while len(days) < n:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def flat(value: float) -> dict[int, float]:
    return dict.fromkeys(range(0, 24 * 60, 15), value)


def test_the_references_example_ten_of_ten_clamped_to_1_2():
    history = {day: flat(2.0) for day in weekdays_before(EVENT_DAY, 10)}
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values=dict.fromkeys(WINDOW, 2.6)
    )
    assert isinstance(baseline, Baseline) and len(baseline.days) == 10
    assert baseline.raw_factor == pytest.approx(1.3) and baseline.factor == pytest.approx(1.2)
    assert set(baseline.values) == set(EVENT) and all(v == pytest.approx(2.4) for v in baseline.values.values())
    event_load = 1.0
    assert [baseline.values[s] - event_load for s in EVENT] == pytest.approx([1.4] * 12)  # kW reduced per interval


def test_high_five_of_ten_averages_the_five_highest_days():
    days = weekdays_before(EVENT_DAY, 10)
    history = {day: flat(float(n)) for n, day in enumerate(days, start=1)}  # 1 kW … 10 kW
    method = BaselineMethod(highest=5, adjustment=NO_ADJUSTMENT)
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values={}, method=method
    )
    assert baseline.values[17 * 60] == pytest.approx(8.0)  # (6 + 7 + 8 + 9 + 10) / 5
    assert sorted(baseline.days) == sorted(days[5:])


@pytest.mark.parametrize(("limit", "expected"), [(None, 2.5), (0.3, 2.3)])
def test_an_additive_adjustment_adds_the_windows_difference(limit, expected):
    history = {day: flat(2.0) for day in weekdays_before(EVENT_DAY, 10)}
    method = BaselineMethod(adjustment=ADDITIVE, offset_limit=limit)
    baseline = baseline_compute(
        event_day=EVENT_DAY,
        event_slots=EVENT,
        history=history,
        event_day_values=dict.fromkeys(WINDOW, 2.5),
        method=method,
    )
    assert baseline.offset == pytest.approx(expected - 2.0)
    assert all(v == pytest.approx(expected) for v in baseline.values.values())


def test_event_days_outages_and_weekends_are_skipped_for_older_days():
    weekdays = weekdays_before(EVENT_DAY, 12)
    history = {EVENT_DAY - timedelta(days=n): flat(2.0) for n in range(1, 30)}  # weekends too
    excluded = {weekdays[0], weekdays[3]}  # an event day and an outage
    method = BaselineMethod(adjustment=NO_ADJUSTMENT)
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values={}, excluded=excluded, method=method
    )
    assert list(baseline.days) == [d for d in weekdays if d not in excluded]  # the ten most recent others
    saturday = date(2026, 7, 18)
    weekend = baseline_compute(
        event_day=saturday,
        event_slots=EVENT,
        history=history,
        event_day_values={},
        method=BaselineMethod(days=4, min_days=4, adjustment=NO_ADJUSTMENT),
    )
    assert all(day.weekday() >= 5 for day in weekend.days) and len(weekend.days) == 4


def test_days_match_by_local_wall_clock_across_the_fall_back_change():
    """The home draws 3 kW from 17:00 to 20:00 Pacific every day, 1 kW otherwise. The event on Tuesday
    3 November 2026 follows the change of Sunday 1 November (UTC−7 → UTC−8): matched by UTC, half the
    baseline days would be an hour off; by local time every interval is 3 kW."""
    zone = "America/Los_Angeles"
    from zoneinfo import ZoneInfo

    readings = []
    at = datetime(2026, 10, 12, 7, 0, tzinfo=UTC)
    while at < datetime(2026, 11, 3, 8, 0, tzinfo=UTC):
        local = at.astimezone(ZoneInfo(zone))
        readings.append((at, 3.0 if 17 <= local.hour < 20 else 1.0))
        at += timedelta(minutes=5)
    history = local_intervals(readings, timezone=zone)
    assert len(history[date(2026, 11, 1)]) == 96  # the repeated hour in the same intervals: 25 h, 96 slots
    method = BaselineMethod(adjustment=NO_ADJUSTMENT)
    baseline = baseline_compute(
        event_day=date(2026, 11, 3), event_slots=EVENT, history=history, event_day_values={}, method=method
    )
    assert date(2026, 10, 30) in baseline.days and date(2026, 11, 2) in baseline.days  # both sides of it
    assert all(v == pytest.approx(3.0) for v in baseline.values.values())


def test_missing_readings_a_thin_day_is_skipped_a_gap_averages_the_other_days():
    days = weekdays_before(EVENT_DAY, 11)
    history = {day: flat(2.0) for day in days}
    thin = days[0]
    history[thin] = {s: v for s, v in flat(9.0).items() if s not in EVENT[:6]}  # half the event missing
    gap = days[1]
    history[gap] = {**flat(4.0)}
    del history[gap][EVENT[0]]  # one interval of twelve missing: still eligible
    method = BaselineMethod(adjustment=NO_ADJUSTMENT)
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values={}, method=method
    )
    assert thin not in baseline.days and gap in baseline.days and len(baseline.days) == 10
    assert baseline.values[EVENT[0]] == pytest.approx(2.0)  # the nine others
    assert baseline.values[EVENT[1]] == pytest.approx((9 * 2.0 + 4.0) / 10)


def test_too_few_eligible_days_is_no_baseline_with_why():
    history = {day: flat(2.0) for day in weekdays_before(EVENT_DAY, 3)}
    result = baseline_compute(event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values={})
    assert isinstance(result, NoBaseline) and len(result.days) == 3
    assert result.reason == "3 eligible days in the 45 before the event; the method needs at least 5."
    empty = baseline_compute(event_day=EVENT_DAY, event_slots=EVENT, history={}, event_day_values={})
    assert isinstance(empty, NoBaseline) and empty.reason.startswith("0 eligible days")


def test_a_device_that_did_nothing_has_a_baseline_of_nothing_and_delivers_nothing():
    history = {day: flat(0.0) for day in weekdays_before(EVENT_DAY, 10)}
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values=dict.fromkeys(WINDOW, 0.0)
    )
    assert baseline.factor is None  # nothing to scale against: unadjusted, and said so
    assert sum(baseline.values.values()) == 0.0


def test_a_method_that_cannot_work_is_refused_with_why():
    with pytest.raises(ValueError, match=r"X \(highest\) must be between 1 and Y \(10\)"):
        BaselineMethod(highest=12)
    with pytest.raises(ValueError, match="the factor's limits must be"):
        BaselineMethod(factor_limits=(1.1, 1.2))
    assert BaselineMethod(highest=5).describe() == (
        "highest 5 of 10 eligible days (same kind of day, within 45 days), multiplicative adjustment clamped to "
        "0.8–1.2 over 4 h to 1 h before the event"
    )


def test_delivered_energy_of_the_references_example_at_the_meter_and_from_a_battery():
    from dispatch.baselines import BATTERY, NET_AT_METER, delivery_compute

    history = {day: flat(2.0) for day in weekdays_before(EVENT_DAY, 10)}
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values=dict.fromkeys(WINDOW, 2.6)
    )
    at_meter = delivery_compute(
        metric=NET_AT_METER, baseline=baseline, actual_kw=dict.fromkeys(EVENT, 1.0), event_slots=EVENT
    )
    assert at_meter.kwh == pytest.approx(1.4 * 3)  # 1.4 kW less import for 3 h
    assert (at_meter.actual_kwh, at_meter.baseline_kwh) == (pytest.approx(3.0), pytest.approx(7.2))
    # a battery that usually idles in those hours and discharged 5 kW: 15 kWh out of it, all delivered
    idle = {day: flat(0.0) for day in weekdays_before(EVENT_DAY, 10)}
    none_usual = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=idle, event_day_values=dict.fromkeys(WINDOW, 0.0)
    )
    battery = delivery_compute(
        metric=BATTERY, baseline=none_usual, actual_kw=dict.fromkeys(EVENT, 5.0), event_slots=EVENT
    )
    assert battery.kwh == pytest.approx(15.0) and battery.coverage == 1.0


def test_missing_event_readings_are_left_out_and_reported_as_coverage():
    from dispatch.baselines import BATTERY, delivery_compute

    history = {day: flat(1.0) for day in weekdays_before(EVENT_DAY, 10)}
    baseline = baseline_compute(
        event_day=EVENT_DAY,
        event_slots=EVENT,
        history=history,
        event_day_values={},
        method=BaselineMethod(adjustment=NO_ADJUSTMENT),
    )
    actual = dict.fromkeys(EVENT[3:], 3.0)  # the first 45 minutes unread
    delivered = delivery_compute(metric=BATTERY, baseline=baseline, actual_kw=actual, event_slots=EVENT)
    assert (delivered.covered, delivered.intervals) == (9, 12) and delivered.coverage == pytest.approx(0.75)
    assert delivered.kwh == pytest.approx((3.0 - 1.0) * 9 * 0.25)  # not extrapolated to the gap


def test_a_device_that_did_nothing_delivers_nothing_against_an_honest_baseline():
    from dispatch.baselines import BATTERY, NET_AT_METER, delivery_compute

    usual = dict.fromkeys(range(0, 24 * 60, 15), 1.2)
    history = {day: dict(usual) for day in weekdays_before(EVENT_DAY, 10)}
    baseline = baseline_compute(
        event_day=EVENT_DAY, event_slots=EVENT, history=history, event_day_values=dict.fromkeys(WINDOW, 1.2)
    )
    for metric in (BATTERY, NET_AT_METER):
        delivered = delivery_compute(
            metric=metric, baseline=baseline, actual_kw=dict.fromkeys(EVENT, 1.2), event_slots=EVENT
        )
        assert delivered.kwh == pytest.approx(0.0, abs=1e-9)
