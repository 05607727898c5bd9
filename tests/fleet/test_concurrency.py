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
