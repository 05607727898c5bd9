"""Alerts: raising (one live alert per cause, also under concurrency), the status workflow and snooze, each rule
that raises and resolves them, the `alert.*` events and the e-mail."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from fleet.choices import AlertSeverity, AlertStatus, AlertSubtype, AlertType, DeviceState
from fleet.models import Alert, AlertNotificationSetting
from fleet.services import (
    AlertRaise,
    alert_change_status,
    alert_raise,
    alert_snooze,
    alert_snoozes_expire,
    alerts_raise,
    alerts_resolve,
    device_mark_offline,
    device_mark_on_workspace,
    device_mark_registered,
    telemetry_stuck_alerts_evaluate,
)
from tests.factories import DeviceFactory, TelemetryReadingFactory, WorkspaceFactory, staff_user
from texture_portal.choices import AuditAction, Role
from texture_portal.events.models import PlatformEvent
from texture_portal.exceptions import ApplicationError, InvalidTransition
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def offline_alert(**overrides) -> AlertRaise:
    return AlertRaise(
        **{
            "cause": "test:cause",
            "type": AlertType.COMMUNICATIONS,
            "subtype": AlertSubtype.DEVICE_OFFLINE,
            "severity": AlertSeverity.WARNING,
            "title": "Something is wrong",
            "description": "first",
            **overrides,
        }
    )


def alert_events(alert, type_=None):
    events = PlatformEvent.objects.filter(workspace_id=alert.workspace_id, data__id=alert.pk)
    events = events.filter(type__startswith="alert.")
    return list(events.filter(type=type_) if type_ else events.order_by("id"))


@pytest.fixture
def device():
    return DeviceFactory(name="Garage Powerwall", oem_device_id="1689", oem_data={"model": "Powerwall 3"})


@pytest.fixture
def mailed(settings, device):
    """The device's workspace mails every alert to ops@ (Django's locmem outbox in tests)."""
    AlertNotificationSetting.objects.create(workspace=device.workspace, email="ops@utility.example")
    return device


# -- raising and dedupe ---------------------------------------------------------------------------------------


def test_raising_makes_an_open_alert_with_the_device_snapshot_audited_and_announced(device):
    assert alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk)) is True
    alert = Alert.objects.get()
    assert (alert.status, alert.severity, alert.type, alert.subtype) == (
        "OPEN",
        "WARNING",
        "COMMUNICATIONS",
        "DEVICE_OFFLINE",
    )
    assert (alert.device_id, alert.site_id) == (device.pk, device.site_id)
    assert alert.manufacturer_device_id == "1689" and alert.device_name == "Garage Powerwall"
    assert alert.device_model == "Powerwall 3" and alert.device_type == "battery"
    assert alert.device_serial_number == device.system_identifier and alert.manufacturer == "Tesla"
    assert alert.raise_count == 1 and alert.source_system == "fleet"
    assert AuditLogEntry.objects.filter(action=AuditAction.ALERT_RAISED, object_id=str(alert.pk)).count() == 1
    [event] = alert_events(alert)
    assert event.type == "alert.created" and event.key == f"alert.created:{alert.pk}"
    assert event.data["deviceSerialNumber"] == device.system_identifier and event.data["status"] == "OPEN"


def test_raising_again_while_live_counts_on_the_same_alert(device):
    first = timezone.now() - timedelta(minutes=10)
    assert alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk), at=first)
    later = offline_alert(device_id=device.pk, description="second")
    assert alert_raise(workspace_id=device.workspace_id, alert=later) is False
    alert = Alert.objects.get()
    assert alert.raise_count == 2 and alert.description == "second" and alert.last_seen_at > first
    assert len(alert_events(alert)) == 1  # a count, not news: no second event
    # acknowledged or ignored, it is still the live one
    alert_change_status(alert=alert, status="ACKNOWLEDGED", actor=None)
    alert_raise(workspace_id=device.workspace_id, alert=later)
    alert_change_status(alert=alert, status="IGNORED", actor=None)
    alert_raise(workspace_id=device.workspace_id, alert=later)
    assert Alert.objects.get().raise_count == 4


def test_a_resolved_alert_is_final_and_the_cause_coming_back_is_a_new_alert(device):
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    assert len(alerts_resolve(workspace_id=device.workspace_id, causes=["test:cause"], reason="fixed")) == 1
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    assert list(Alert.objects.order_by("pk").values_list("status", flat=True)) == ["RESOLVED", "OPEN"]
    with pytest.raises(InvalidTransition):
        alert_change_status(alert=Alert.objects.order_by("pk").first(), status="OPEN", actor=None)


def test_the_database_holds_one_live_alert_per_cause(device):
    from django.db import IntegrityError, transaction

    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    row = Alert.objects.values().get()
    row.pop("id")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**{**row, "status": "IGNORED", "ignored_at": timezone.now()})
    Alert.objects.create(**{**row, "status": "RESOLVED", "resolved_at": timezone.now()})  # history is free
    other = WorkspaceFactory()
    alert_raise(workspace_id=other.pk, alert=offline_alert())  # the same cause in another workspace
    assert Alert.objects.filter(cause="test:cause").count() == 3


def test_many_alerts_are_raised_in_one_statement_per_batch(device, django_assert_max_num_queries):
    others = [DeviceFactory(site=device.site) for _ in range(5)]
    specs = [offline_alert(cause=f"test:{d.pk}", device_id=d.pk) for d in [device, *others]]
    # devices, upsert, the new rows, audit, events, (savepoints)
    with django_assert_max_num_queries(8):
        created = alerts_raise(workspace_id=device.workspace_id, alerts=specs)
    assert len(created) == 6
    with django_assert_max_num_queries(4):
        assert alerts_raise(workspace_id=device.workspace_id, alerts=specs) == []
    assert set(Alert.objects.values_list("raise_count", flat=True)) == {2}


def test_an_alert_names_only_devices_of_its_workspace(device):
    from texture_portal.exceptions import WorkspaceMismatch

    with pytest.raises(WorkspaceMismatch):
        alert_raise(workspace_id=WorkspaceFactory().pk, alert=offline_alert(device_id=device.pk))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_raising_one_cause_at_once_make_one_row(reference_data):
    device = DeviceFactory()
    barrier = threading.Barrier(6)
    outcomes = []

    def raise_it():
        try:
            barrier.wait()
            outcomes.append(alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 5 + [True]
    alert = Alert.objects.get()
    assert alert.raise_count == 6
    assert PlatformEvent.objects.filter(type="alert.created").count() == 1
