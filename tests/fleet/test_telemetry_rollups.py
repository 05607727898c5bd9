"""15-minute telemetry rollups: averaged from the raw readings in one statement, recomputed whole (so twice is
once, and late readings are folded in), on SQLite and PostgreSQL alike."""

from datetime import UTC, datetime, timedelta

import pytest

from fleet.models import TelemetryRollup
from fleet.services import rollup_interval_start, telemetry_rollups_refresh
from tests.factories import DeviceFactory, TelemetryReadingFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def readings(device, start, values):
    """One reading every 5 minutes from `start`: (charge rate W, grid W) each."""
    for n, (battery, grid) in enumerate(values):
        TelemetryReadingFactory(
            device=device, measured_at=start + timedelta(minutes=5 * n), charge_rate_w=battery, grid_power_w=grid
        )


def rollups(device) -> dict:
    return {
        r.interval_start: (r.samples, r.charge_rate_w, r.grid_power_w)
        for r in TelemetryRollup.objects.filter(device=device).order_by("interval_start")
    }


def test_readings_are_averaged_per_15_minutes_and_a_second_run_changes_nothing():
    device, other = DeviceFactory(), DeviceFactory()
    readings(device, T0, [(1000, 200), (2000, 400), (3000, 600), (-500, 1500)])  # 16:00–16:15, then 16:15
    readings(other, T0, [(0, 900)])
    assert telemetry_rollups_refresh(since=T0 + timedelta(minutes=7), until=T0 + timedelta(hours=1)) == 3
    assert rollups(device) == {
        T0: (3, pytest.approx(2000.0), pytest.approx(400.0)),
        T0 + timedelta(minutes=15): (1, pytest.approx(-500.0), pytest.approx(1500.0)),
    }
    assert rollups(other) == {T0: (1, pytest.approx(0.0), pytest.approx(900.0))}
    before = list(TelemetryRollup.objects.order_by("pk").values())
    telemetry_rollups_refresh(since=T0, until=T0 + timedelta(hours=1))
    assert list(TelemetryRollup.objects.order_by("pk").values()) == before


def test_a_late_reading_is_folded_into_its_interval_and_only_the_range_is_touched():
    device = DeviceFactory()
    readings(device, T0, [(1000, 0), (1000, 0)])
    telemetry_rollups_refresh(since=T0, until=T0 + timedelta(hours=1))
    readings(device, T0 + timedelta(minutes=10), [(4000, 0)])  # an OEM's history, read later
    readings(device, T0 + timedelta(hours=2), [(9000, 0)])  # outside the range refreshed below
    telemetry_rollups_refresh(since=T0, until=T0 + timedelta(hours=1), device_ids=[device.pk])
    assert rollups(device) == {T0: (3, pytest.approx(2000.0), pytest.approx(0.0))}


def test_interval_starts_are_aligned_to_the_quarter_hour():
    assert rollup_interval_start(datetime(2026, 11, 1, 9, 44, 59, 999, tzinfo=UTC)) == datetime(
        2026, 11, 1, 9, 30, tzinfo=UTC
    )
    assert telemetry_rollups_refresh(since=T0, device_ids=[]) == 0


def test_the_beat_task_rolls_up_the_last_hours():
    from django.utils import timezone

    from fleet.tasks import telemetry_rollups_task

    device = DeviceFactory()
    now = rollup_interval_start(timezone.now())
    readings(device, now - timedelta(minutes=30), [(500, 0)])
    readings(device, now - timedelta(hours=5), [(700, 0)])  # older than the task looks
    telemetry_rollups_task()
    assert list(rollups(device)) == [now - timedelta(minutes=30)]


def test_raw_readings_past_their_retention_go_and_their_rollups_stay(settings):
    from fleet.models import Device, TelemetryReading
    from fleet.services import telemetry_readings_prune

    settings.TELEMETRY_RAW_RETENTION_DAYS = 35
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    device, silent = DeviceFactory(), DeviceFactory()
    old = now - timedelta(days=40)
    readings(device, old, [(1000, 0), (2000, 0), (3000, 0)])  # never rolled up (from before rollups)
    readings(device, now - timedelta(days=1), [(500, 0)])
    readings(silent, old, [(700, 0)])
    last_word = TelemetryReading.objects.get(device=silent)
    Device.objects.filter(pk=silent.pk).update(latest_telemetry=last_word)
    recent = TelemetryReading.objects.get(device=device, measured_at=now - timedelta(days=1))
    Device.objects.filter(pk=device.pk).update(latest_telemetry=recent)
    assert telemetry_readings_prune(now=now, batch=2) == 3  # in batches of two
    assert list(TelemetryReading.objects.order_by("pk").values_list("pk", flat=True)) == sorted(
        [last_word.pk, recent.pk]
    )
    assert rollups(device)[old] == (3, pytest.approx(2000.0), pytest.approx(0.0))  # what reports read stays
    assert telemetry_readings_prune(now=now) == 0  # twice is once


def test_pruning_never_recomputes_a_rollup_from_a_partly_pruned_interval(settings):
    from fleet.models import TelemetryReading
    from fleet.services import telemetry_readings_prune

    settings.TELEMETRY_RAW_RETENTION_DAYS = 35
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    device = DeviceFactory()
    old = now - timedelta(days=40)
    readings(device, old, [(1000, 0), (2000, 0), (3000, 0)])
    telemetry_rollups_refresh(since=old, until=old + timedelta(hours=1))
    TelemetryReading.objects.filter(device=device).order_by("measured_at").first().delete()  # a run died mid-way
    telemetry_readings_prune(now=now)
    assert rollups(device)[old] == (3, pytest.approx(2000.0), pytest.approx(0.0))
