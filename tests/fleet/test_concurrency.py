"""Two workers changing one device's state at once: the row lock makes the second see the first's result."""

import threading

import pytest
from django.db import connection

from fleet.choices import DeviceState
from fleet.models import DeviceStateChange
from fleet.services import device_mark_offline, device_mark_on_workspace
from tests.factories import DeviceFactory
from texture_portal.exceptions import InvalidTransition


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_offline_marks_record_one_transition(reference_data):
    device = DeviceFactory()
    device_mark_on_workspace(device=device, reason="found")
    barrier = threading.Barrier(4)
    outcomes = []

    def mark():
        try:
            barrier.wait()
            device_mark_offline(device=type(device).objects.get(pk=device.pk), reason="no telemetry")
            outcomes.append("moved")
        except InvalidTransition:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=mark) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["moved", "refused", "refused", "refused"]
    device.refresh_from_db()
    assert device.state == DeviceState.OFFLINE
    assert DeviceStateChange.objects.filter(device=device, to_state=DeviceState.OFFLINE).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rollup_refreshes_at_once_write_each_interval_once(reference_data):
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from fleet.models import TelemetryRollup
    from fleet.services import rollup_interval_start, telemetry_rollups_refresh
    from tests.factories import TelemetryReadingFactory

    device = DeviceFactory()
    start = rollup_interval_start(timezone.now()) - timedelta(hours=2)
    for n in range(12):
        TelemetryReadingFactory(device=device, measured_at=start + timedelta(minutes=5 * n), charge_rate_w=100.0 * n)
    barrier = threading.Barrier(4)
    outcomes = []

    def refresh():
        try:
            with transaction.atomic():
                barrier.wait()
                outcomes.append(telemetry_rollups_refresh(since=start, until=start + timedelta(hours=1)))
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 4 in outcomes and set(outcomes) <= {4, -1}  # each wrote all four intervals, or stepped aside
    means = list(
        TelemetryRollup.objects.filter(device=device).order_by("interval_start").values_list("charge_rate_w", "samples")
    )
    assert means == [(100.0, 3), (400.0, 3), (700.0, 3), (1000.0, 3)]
