"""Event reports compiled in SQL: held to the plain-Python reference (`dispatch.baselines`) device by device,
the reference's 2.0 / 2.6 / 1.0 kW example, DST days, missing readings, no baseline, a fleet that did nothing,
totals that are the sums of the rows, a constant number of queries, and the platform event."""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatch.baselines import (
    BATTERY,
    NET_AT_METER,
    Baseline,
    baseline_compute,
    baseline_method_of,
    delivery_compute,
    local_intervals,
)
from dispatch.choices import DispatchEventStatus, ParticipationStatus
from dispatch.models import DispatchAction, DispatchEvent, EventReport, EventReportDevice, Participation
from dispatch.reports import event_report_compile, report_slots
from fleet.models import TelemetryRollup
from programs.services import event_strategy_create_version
from tests.factories import DeviceFactory, WorkspaceFactory, make_program
from texture_portal.events.models import PlatformEvent

pytestmark = pytest.mark.django_db

LA = "America/Los_Angeles"
STEP = timedelta(minutes=15)


def program_with(**baseline):
    workspace = WorkspaceFactory()
    program = make_program(workspace, timezone=LA)
    event_strategy_create_version(
        program=program, data={"allowed_event_types": ["charge", "discharge", "idle"], **baseline}, actor=None
    )
    return program


def completed_event(program, *, starts: datetime, ends: datetime, devices, actions=None, **participation):
    strategy = program.strategies.order_by("-version").first()
    event = DispatchEvent.objects.create(
        workspace=program.workspace,
        program=program,
        strategy=strategy,
        name="Peak",
        status=DispatchEventStatus.COMPLETED,
        starts_at=starts,
        ends_at=ends,
    )
    for a_start, a_end in actions or [(starts, ends)]:
        DispatchAction.objects.create(
            workspace=program.workspace, event=event, action_type="discharge", starts_at=a_start, ends_at=a_end
        )
    for device in devices:
        Participation.objects.create(
            workspace=program.workspace,
            event=event,
            device=device,
            status=participation.get("status", ParticipationStatus.CONFIRMED),
            included_at=starts,
            commanded_at=starts + timedelta(minutes=1),
            confirmed_at=starts + timedelta(minutes=6),
            restored_at=ends + timedelta(minutes=1),
        )
    return event


def devices_of(program, n):
    return [DeviceFactory(site__contact__workspace=program.workspace, state="on_workspace") for _ in range(n)]


def write_rollups(device, values: dict[datetime, tuple[float | None, float | None]]):
    TelemetryRollup.objects.bulk_create(
        [
            TelemetryRollup(
                workspace_id=device.workspace_id,
                device=device,
                interval_start=at,
                samples=3,
                charge_rate_w=battery,
                grid_power_w=grid,
            )
            for at, (battery, grid) in values.items()
        ],
        batch_size=2000,
    )


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(LA)).astimezone(UTC)


def weekdays_before(day: date, n: int) -> list[date]:
    days = []
    while len(days) < n:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def every_interval(first: datetime, last: datetime):
    at = first
    while at < last:
        yield at
        at += STEP


# -- the reference's example ---------------------------------------------------------------------------------

EVENT_DAY = date(2026, 7, 15)  # a Wednesday


def test_the_references_example_two_point_six_clamped_to_one_point_two_delivers_one_point_four_kw():
    """Baseline days flat at 2.0 kW, the window before the event at 2.6 kW (1.3, clamped to 1.2), the event at
    1.0 kW: 1.4 kW less import in each interval of a two-hour event = 2.8 kWh at the meter. The battery, idle
    on every day before and discharging 1.4 kW during the event, delivers the same 2.8 kWh."""
    program = program_with(baseline_days=10, baseline_adjustment="multiplicative")
    (device,) = devices_of(program, 1)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 19)
    values = {}
    for day in weekdays_before(EVENT_DAY, 10):
        for at in every_interval(local(day, 0), local(day, 23, 45) + STEP):
            values[at] = (0.0, 2000.0)
    for at in every_interval(local(EVENT_DAY, 13), local(EVENT_DAY, 16)):
        values[at] = (0.0, 2600.0)
    for at in every_interval(starts, ends):
        values[at] = (1400.0, 1000.0)
    write_rollups(device, values)
    event = completed_event(program, starts=starts, ends=ends, devices=[device])

    report = event_report_compile(event=event)

    row = EventReportDevice.objects.get(report=report, device=device)
    assert row.net_factor == pytest.approx(1.2)
    assert row.net_days == 10 and row.net_coverage == pytest.approx(1.0)
    assert row.net_baseline_kwh == pytest.approx(2.4 * 2) and row.net_actual_kwh == pytest.approx(1.0 * 2)
    assert row.net_delivered_kwh == pytest.approx(2.8)
    assert row.battery_delivered_kwh == pytest.approx(2.8)
    assert row.battery_factor is None  # nothing to scale: the battery was idle before every event
    assert report.totals["net_at_meter"]["delivered_kwh"] == pytest.approx(2.8)
    assert report.series["net_at_meter"]["baseline_kw"] == pytest.approx([2.4] * 8)
    assert report.series["net_at_meter"]["actual_kw"] == pytest.approx([1.0] * 8)
    assert report.actions[0]["net_at_meter"]["delivered_kwh"] == pytest.approx(2.8)
    assert "multiplicative adjustment clamped to 0.8–1.2" in report.method_description


# -- held to the reference -------------------------------------------------------------------------------


def reference_rows(program, event, device_series: dict[int, list[tuple[datetime, float | None, float | None]]]):
    """What `dispatch.baselines` says for each device and metric: (delivered, actual, baseline, days) or the
    reason there is no baseline."""
    strategy = event.strategy
    method = baseline_method_of(strategy)
    zone = ZoneInfo(program.timezone)
    event_day = event.starts_at.astimezone(zone).date()
    slots = report_slots(
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        actions=[(event.starts_at, event.ends_at)],
        zone=zone,
        method=method,
    )
    expected = {}
    for device_id, series in device_series.items():
        for metric, index in ((BATTERY, 1), (NET_AT_METER, 2)):
            readings = [(row[0], row[index]) for row in series if row[index] is not None]
            history = local_intervals(readings, timezone=program.timezone)
            before = [(at, v) for at, v in readings if at < event.starts_at]
            today_before = local_intervals(before, timezone=program.timezone).get(event_day, {})
            during = [(at, v) for at, v in readings if event.starts_at <= at < event.ends_at]
            actual = local_intervals(during, timezone=program.timezone).get(event_day, {})
            result = baseline_compute(
                event_day=event_day,
                event_slots=slots.event_slots,
                history={d: v for d, v in history.items() if d != event_day},
                event_day_values=today_before,
                method=method,
            )
            if isinstance(result, Baseline):
                delivery = delivery_compute(
                    metric=metric,
                    baseline=Baseline(values={s: v / 1000 for s, v in result.values.items()}, days=result.days),
                    actual_kw={s: v / 1000 for s, v in actual.items()},
                    event_slots=slots.event_slots,
                )
                expected[(device_id, metric)] = (
                    delivery.kwh,
                    delivery.actual_kwh,
                    delivery.baseline_kwh,
                    len(result.days),
                    delivery.coverage,
                )
            else:
                expected[(device_id, metric)] = result.reason
    return expected


def random_series(rng, first: datetime, last: datetime, *, missing: float, scale: float):
    series = []
    for at in every_interval(first, last):
        hour = at.astimezone(ZoneInfo(LA)).hour
        shape = 1.0 + (0.8 if 16 <= hour < 21 else 0.0) + rng.uniform(-0.3, 0.3)
        battery = None if rng.random() < missing else round(scale * rng.uniform(-1.0, 1.0), 1)
        grid = None if rng.random() < missing else round(scale * shape, 1)
        series.append((at, battery, grid))
    return series


METHODS = {
    "ten_of_ten_multiplicative": {"baseline_days": 10, "baseline_adjustment": "multiplicative"},
    # a lookback past what one integer's bits hold: the chosen days joined day by day instead
    "ten_of_ten_seventy_days_back": {
        "baseline_days": 10,
        "baseline_lookback_days": 70,
        "baseline_adjustment": "multiplicative",
    },
    "high_five_of_ten_additive": {"baseline_days": 10, "baseline_highest": 5, "baseline_adjustment": "additive"},
    "high_four_of_five_none": {
        "baseline_days": 5,
        "baseline_highest": 4,
        "baseline_min_days": 3,
        "baseline_adjustment": "none",
        "baseline_same_day_type": False,
    },
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize(
    ("event_local", "hours"),
    [
        ((2026, 7, 15, 17, 0), 3),  # a summer weekday evening
        ((2026, 11, 4, 1, 0), 2),  # after the fall-back change: 1 November's 01:00–02:00 twice
        ((2026, 3, 11, 1, 30), 2),  # after the spring-forward change: 8 March has no 02:00–03:00
    ],
    ids=["summer", "after-fall-back", "after-spring-forward"],
)
def test_the_sql_agrees_with_the_reference_device_by_device(method, event_local, hours):
    program = program_with(**METHODS[method])
    devices = devices_of(program, 4)
    zone = ZoneInfo(LA)
    starts = datetime(*event_local, tzinfo=zone).astimezone(UTC)
    ends = starts + timedelta(hours=hours)
    rng = random.Random(f"{method}-{event_local}")
    series = {}
    for n, device in enumerate(devices):
        # the last device's history is too thin: it has no baseline, counted, not guessed
        first = starts - timedelta(days=2 if n == 3 else 50)
        series[device.pk] = random_series(rng, first, ends, missing=0.01 * n, scale=1000 + 500 * n)
        write_rollups(device, {at: (b, g) for at, b, g in series[device.pk]})
    event = completed_event(program, starts=starts, ends=ends, devices=devices)

    report = event_report_compile(event=event)

    expected = reference_rows(program, event, series)
    rows = {row.device_id: row for row in EventReportDevice.objects.filter(report=report)}
    assert len(rows) == 4
    for (device_id, metric), want in expected.items():
        row = rows[device_id]
        prefix = "battery" if metric == BATTERY else "net"
        if isinstance(want, str):
            assert getattr(row, f"{prefix}_no_baseline") == want
            assert getattr(row, f"{prefix}_delivered_kwh") is None
            continue
        delivered, actual, baseline, days, coverage = want
        assert getattr(row, f"{prefix}_no_baseline") == ""
        assert getattr(row, f"{prefix}_delivered_kwh") == pytest.approx(delivered, abs=1e-6)
        assert getattr(row, f"{prefix}_actual_kwh") == pytest.approx(actual, abs=1e-6)
        assert getattr(row, f"{prefix}_baseline_kwh") == pytest.approx(baseline, abs=1e-6)
        assert getattr(row, f"{prefix}_days") == days
        assert getattr(row, f"{prefix}_coverage") == pytest.approx(coverage)
    assert rows[devices[3].pk].battery_no_baseline.startswith(("0 eligible days", "1 eligible day", "2 eligible"))
    assert report.totals["battery"]["no_baseline"] >= 1


def test_the_slots_of_a_fall_back_day_have_two_instants_and_a_spring_forward_day_none():
    program = program_with(
        baseline_same_day_type=False,
        baseline_adjustment="none",
        baseline_lookback_days=5,
        baseline_days=3,
        baseline_min_days=1,
    )
    method = baseline_method_of(program.strategies.order_by("-version").first())
    zone = ZoneInfo(LA)
    starts = datetime(2026, 11, 3, 1, 0, tzinfo=zone).astimezone(UTC)  # Tuesday 01:00 local
    slots = report_slots(starts_at=starts, ends_at=starts + timedelta(hours=1), actions=[], zone=zone, method=method)
    by_day = {}
    for day_no, _slot, at, _role, _action in slots.rows:
        by_day.setdefault(day_no, []).append(at)
    assert len(by_day[0]) == 4 and len(by_day[1]) == 4  # 3 November, 2 November
    assert len(by_day[2]) == 8  # 1 November: 01:00–02:00 PDT, then again in PST
    starts = datetime(2026, 3, 10, 2, 0, tzinfo=zone).astimezone(UTC)
    slots = report_slots(starts_at=starts, ends_at=starts + timedelta(hours=1), actions=[], zone=zone, method=method)
    by_day = {}
    for day_no, _slot, at, _role, _action in slots.rows:
        by_day.setdefault(day_no, []).append(at)
    assert 2 not in by_day  # 8 March: 02:00–03:00 does not exist
    assert len(by_day[1]) == 4


# -- what a report shows -------------------------------------------------------------------------------------


def daily_shape(at: datetime, device_index: int) -> tuple[float, float]:
    """A home that does the same thing every weekday: battery charging by day, serving the evening; the grid
    following the load."""
    hour = at.astimezone(ZoneInfo(LA)).hour + at.astimezone(ZoneInfo(LA)).minute / 60
    battery = -2000.0 if 9 <= hour < 15 else (1500.0 if 17 <= hour < 21 else 0.0)
    grid = 800.0 + 400 * device_index + (1200.0 if 16 <= hour < 22 else 0.0) - max(0.0, battery)
    return battery, grid


def test_a_fleet_that_did_nothing_delivers_about_zero_against_an_honest_baseline():
    program = program_with(baseline_days=10, baseline_adjustment="multiplicative")
    devices = devices_of(program, 3)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 20)
    rng = random.Random(7)
    for n, device in enumerate(devices):
        values = {}
        for at in every_interval(starts - timedelta(days=20), ends):
            battery, grid = daily_shape(at, n)
            values[at] = (battery * rng.uniform(0.97, 1.03), grid * rng.uniform(0.97, 1.03))
        write_rollups(device, values)
    event = completed_event(program, starts=starts, ends=ends, devices=devices)

    report = event_report_compile(event=event)

    for metric in ("battery", "net_at_meter"):
        totals = report.totals[metric]
        assert totals["devices"] == 3 and totals["no_baseline"] == 0
        assert abs(totals["delivered_kwh"]) < 0.05 * abs(totals["baseline_kwh"])


def test_the_totals_are_the_sums_of_the_device_rows_and_counts_say_who_did_what():
    program = program_with()
    devices = devices_of(program, 5)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 19)
    rng = random.Random(3)
    for device in devices[:4]:
        write_rollups(
            device,
            {at: (b, g) for at, b, g in random_series(rng, starts - timedelta(days=30), ends, missing=0, scale=900)},
        )
    event = completed_event(program, starts=starts, ends=ends, devices=devices[:4])
    Participation.objects.create(
        workspace=program.workspace,
        event=event,
        device=devices[4],
        status=ParticipationStatus.EXCLUDED,
        reason_code="offline",
        reason="Offline",
    )

    report = event_report_compile(event=event)

    rows = EventReportDevice.objects.filter(report=report)
    assert rows.count() == 5
    for metric, prefix in (("battery", "battery"), ("net_at_meter", "net")):
        for field in ("actual", "baseline", "delivered"):
            total = sum(getattr(r, f"{prefix}_{field}_kwh") or 0.0 for r in rows)
            assert report.totals[metric][f"{field}_kwh"] == pytest.approx(total, abs=1e-3)
        per_action = sum(a[metric]["delivered_kwh"] for a in report.actions)
        assert per_action == pytest.approx(report.totals[metric]["delivered_kwh"], abs=1e-3)
    excluded = rows.get(device=devices[4])
    assert excluded.status == "excluded" and excluded.battery_delivered_kwh is None and not excluded.commanded
    assert report.counts["targeted"] == 5 and report.counts["included"] == 4
    assert report.counts["excluded_by_reason"] == {"offline": 1}
    assert report.counts["commanded"] == 4 and report.counts["restored"] == 4
    timeline = report.series["participation"]
    assert timeline["commanded"][-1] == 4 and timeline["restored"][-1] == 4 and timeline["commanded"][0] == 0


def test_recompiling_replaces_the_report_and_announces_each_compile():
    program = program_with()
    devices = devices_of(program, 2)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 18)
    event = completed_event(program, starts=starts, ends=ends, devices=devices)

    first = event_report_compile(event=event, now=ends + timedelta(minutes=30))
    second = event_report_compile(event=event, now=ends + timedelta(hours=2))

    assert EventReport.objects.filter(event=event).get().pk == second.pk != first.pk
    assert EventReportDevice.objects.filter(report=second).count() == 2
    assert EventReportDevice.objects.filter(report_id=first.pk).count() == 0
    announced = PlatformEvent.objects.filter(type="program_event.report_compiled", data__id=event.pk)
    assert announced.count() == 2
    # no history at all: both devices are counted without a baseline, nothing is guessed
    assert second.totals["battery"] == {
        "actual_kwh": 0.0,
        "baseline_kwh": 0.0,
        "delivered_kwh": 0.0,
        "devices": 0,
        "no_baseline": 2,
        "coverage": None,
    }


def test_days_of_the_programs_other_events_are_not_baseline_days():
    program = program_with(baseline_days=5, baseline_min_days=1, baseline_adjustment="none")
    (device,) = devices_of(program, 1)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 18)
    values = {}
    for n, day in enumerate(weekdays_before(EVENT_DAY, 6)):
        for at in every_interval(local(day, 17), local(day, 18)):
            values[at] = (0.0, 9000.0 if n == 0 else 1000.0)  # the day before had an event: 9 kW
    for at in every_interval(starts, ends):
        values[at] = (0.0, 500.0)
    write_rollups(device, values)
    yesterday = weekdays_before(EVENT_DAY, 1)[0]
    completed_event(program, starts=local(yesterday, 17), ends=local(yesterday, 18), devices=[])
    event = completed_event(program, starts=starts, ends=ends, devices=[device])

    report = event_report_compile(event=event)

    row = EventReportDevice.objects.get(report=report)
    assert row.net_days == 5
    assert row.net_baseline_kwh == pytest.approx(1.0)  # 1 kW for an hour: the 9 kW event day left out
    assert row.net_delivered_kwh == pytest.approx(0.5)


def test_baseline_days_more_than_thirty_one_days_back_are_the_ones_averaged():
    """A device silent for the last month, with readings 32 to 44 days back: those are its baseline days (each
    device's chosen days are bits of a 64-bit integer; a 32-bit one took day 33 for day 1)."""
    program = program_with(baseline_days=5, baseline_min_days=3, baseline_adjustment="none")
    (device,) = devices_of(program, 1)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 18)
    values = {}
    for day in [EVENT_DAY - timedelta(days=n) for n in range(32, 45)]:
        if day.weekday() < 5:
            for at in every_interval(local(day, 17), local(day, 18)):
                values[at] = (0.0, 2000.0 + 100 * (EVENT_DAY - day).days)
    for at in every_interval(starts, ends):
        values[at] = (0.0, 500.0)
    write_rollups(device, values)
    event = completed_event(program, starts=starts, ends=ends, devices=[device])

    report = event_report_compile(event=event)

    row = EventReportDevice.objects.get(report=report)
    # the 5 most recent weekdays with readings: 33 to 37 days back (32 is a Saturday), 5.5 kW on average
    assert row.net_days == 5
    assert row.net_baseline_kwh == pytest.approx(5.5)
    assert row.net_no_baseline == ""


def test_compiling_takes_the_same_number_of_queries_for_two_devices_or_twenty():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for n in (2, 20):
        program = program_with()
        devices = devices_of(program, n)
        starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 18)
        for device in devices:
            write_rollups(device, dict.fromkeys(every_interval(starts - timedelta(days=15), ends), (100.0, 500.0)))
        event = completed_event(program, starts=starts, ends=ends, devices=devices)
        with CaptureQueriesContext(connection) as queries:
            event_report_compile(event=event)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_compile_that_fails_half_way_leaves_the_previous_report_whole(monkeypatch):
    from dispatch import reports

    program = program_with()
    devices = devices_of(program, 2)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 18)
    for device in devices:
        write_rollups(device, dict.fromkeys(every_interval(starts - timedelta(days=15), ends), (100.0, 500.0)))
    event = completed_event(program, starts=starts, ends=ends, devices=devices)
    first = event_report_compile(event=event)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(reports, "_series", broken)
    with pytest.raises(RuntimeError):
        event_report_compile(event=event)

    assert EventReport.objects.get(event=event).pk == first.pk
    assert EventReportDevice.objects.filter(report=first).count() == 2
    assert PlatformEvent.objects.filter(type="program_event.report_compiled").count() == 1
    monkeypatch.undo()
    assert event_report_compile(event=event).devices.count() == 2  # no temporary table left in the way
