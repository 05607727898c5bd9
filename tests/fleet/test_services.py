"""Fleet services: registration, updates and the audited device state machine."""

import pytest
from django.core.exceptions import ValidationError

from fleet.choices import DeviceState
from fleet.models import DeviceStateChange, Manufacturer
from fleet.services import (
    contact_update,
    device_change_state,
    device_mark_offline,
    device_mark_on_workspace,
    device_mark_registered,
    device_register,
    device_update,
    site_update,
)
from tests.factories import ContactFactory, DeviceFactory, SiteFactory, UserFactory
from texture_portal.choices import AuditAction
from texture_portal.exceptions import ApplicationError, InvalidTransition, WorkspaceMismatch
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def test_register_creates_a_registered_system_with_history_and_audit():
    site = SiteFactory()
    actor = UserFactory()
    device = device_register(
        workspace=site.workspace,
        site=site,
        manufacturer=Manufacturer.objects.get(slug="franklinwh"),
        system_identifier=" 10050000123 ",
        device_type="battery",
        tags=["feeder:12", "feeder:12", "zone:a"],
        actor=actor,
    )
    assert device.state == DeviceState.REGISTERED
    assert device.system_identifier == "10050000123"
    assert device.contact_id == site.contact_id
    assert sorted(device.tags.values_list("name", flat=True)) == ["feeder:12", "zone:a"]
    history = list(device.state_changes.values_list("from_state", "to_state"))
    assert history == [("", DeviceState.REGISTERED)]
    assert AuditLogEntry.objects.filter(action=AuditAction.DEVICE_REGISTERED, object_id=str(device.pk)).exists()


def test_register_refuses_a_device_type_the_manufacturer_does_not_make():
    site = SiteFactory()
    with pytest.raises(ValidationError) as excinfo:
        device_register(
            workspace=site.workspace,
            site=site,
            manufacturer=Manufacturer.objects.get(slug="emporia"),
            system_identifier="A2-1",
            device_type="battery",
            actor=None,
        )
    assert "device_type" in excinfo.value.message_dict


def test_register_refuses_a_site_of_another_workspace():
    site = SiteFactory()
    other = SiteFactory()
    with pytest.raises(WorkspaceMismatch):
        device_register(
            workspace=other.workspace,
            site=site,
            manufacturer=Manufacturer.objects.get(slug="tesla"),
            system_identifier="X",
            device_type="battery",
            actor=None,
        )


def test_state_machine_registered_online_offline_and_back():
    device = DeviceFactory()
    device_mark_on_workspace(device=device, reason="Discovered at the OEM")
    device_mark_offline(device=device, reason="No telemetry for 45 minutes")
    device_mark_on_workspace(device=device, reason="Reporting again")
    device.refresh_from_db()
    assert device.state == DeviceState.ON_WORKSPACE
    assert device.state_reason == "Reporting again"
    moves = list(
        DeviceStateChange.objects.filter(device=device)
        .order_by("changed_at", "id")
        .values_list("from_state", "to_state")
    )
    assert moves == [("registered", "on_workspace"), ("on_workspace", "offline"), ("offline", "on_workspace")]
    assert AuditLogEntry.objects.filter(action=AuditAction.DEVICE_STATE_CHANGED, object_id=str(device.pk)).count() == 3


def test_a_registered_device_cannot_go_offline():
    device = DeviceFactory()
    with pytest.raises(InvalidTransition) as excinfo:
        device_mark_offline(device=device, reason="x")
    assert "Registered System" in excinfo.value.message
    device.refresh_from_db()
    assert device.state == DeviceState.REGISTERED
    assert not DeviceStateChange.objects.filter(device=device).exists()


def test_unbinding_returns_a_device_to_registered():
    device = DeviceFactory()
    device_mark_on_workspace(device=device, reason="found")
    device_mark_registered(device=device, reason="Integration disabled")
    device.refresh_from_db()
    assert device.state == DeviceState.REGISTERED


def test_a_state_change_needs_a_reason():
    device = DeviceFactory()
    with pytest.raises(ApplicationError):
        device_change_state(device=device, to_state=DeviceState.ON_WORKSPACE, reason="  ", actor=None)


def test_contact_update_writes_only_changes_and_audits_them():
    contact = ContactFactory(email="old@example.com")
    assert contact_update(contact=contact, data={"email": "old@example.com"}, actor=None) == {}
    assert not AuditLogEntry.objects.filter(action=AuditAction.CONTACT_UPDATED).exists()
    changes = contact_update(contact=contact, data={"email": "new@example.com", "phone": "+15415550100"}, actor=None)
    assert changes == {"email": ["old@example.com", "new@example.com"], "phone": ["", "+15415550100"]}
    contact.refresh_from_db()
    assert contact.email == "new@example.com"


def test_moving_a_site_to_another_contact_moves_its_devices():
    device = DeviceFactory()
    new_owner = ContactFactory(workspace=device.workspace)
    site_update(site=device.site, data={"contact": new_owner}, actor=None)
    device.refresh_from_db()
    assert device.contact_id == new_owner.pk


def test_device_update_changes_tags_and_site_with_audit():
    device = DeviceFactory()
    other_site = SiteFactory(contact__workspace=device.workspace)
    changes = device_update(device=device, data={"site": other_site}, tags=["feeder:7"], actor=None)
    assert changes["tags"] == [[], ["feeder:7"]]
    device.refresh_from_db()
    assert device.site_id == other_site.pk and device.contact_id == other_site.contact_id


def test_clearing_sync_errors_is_one_update_that_keeps_the_other_oem_data(django_assert_num_queries):
    from fleet.models import Device
    from fleet.services import devices_clear_sync_error, devices_record_sync_error

    failed, other_failed, clean = (DeviceFactory(oem_data={"energy_site_id": n}) for n in (1, 2, 3))
    devices_record_sync_error(errors={failed.pk: "Tesla 408", other_failed.pk: "Tesla 408"})
    with django_assert_num_queries(1):
        assert devices_clear_sync_error(device_ids=[failed.pk, clean.pk]) == 1
    assert Device.objects.get(pk=failed.pk).oem_data == {"energy_site_id": 1}
    assert Device.objects.get(pk=clean.pk).oem_data == {"energy_site_id": 3}
    assert Device.objects.get(pk=other_failed.pk).oem_data["lastSyncError"]["message"] == "Tesla 408"
    with django_assert_num_queries(0):
        devices_clear_sync_error(device_ids=[])


# -- grid-services status, written by discovery and telemetry sync ----------------------------------------
BACKENDS = [pytest.param("postgresql", marks=pytest.mark.postgres), "portable"]


def _ingest(backend, monkeypatch, workspace_id, readings):
    from fleet import services

    if backend == "portable" and services.connection.vendor != "sqlite":
        monkeypatch.setattr(services.connection, "vendor", "sqlite")
    return services.telemetry_ingest(workspace_id=workspace_id, readings=readings)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reading_that_moves_the_device_brings_its_grid_services_status(backend, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from fleet.choices import GridServicesStatus
    from fleet.models import Device
    from integrations.adapters.base import TelemetrySnapshot

    enrolled, silent, stays = (DeviceFactory(state="on_workspace") for _ in range(3))
    workspace_id = enrolled.workspace_id
    for device in (silent, stays):
        Device.objects.filter(pk=device.pk).update(workspace_id=workspace_id)
    Device.objects.filter(pk=stays.pk).update(grid_services_status=GridServicesStatus.PENDING)
    at = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    status = GridServicesStatus.ENROLLED
    readings = [
        (enrolled.pk, TelemetrySnapshot(measured_at=at - timedelta(minutes=5), grid_services_status="not_enrolled")),
        (enrolled.pk, TelemetrySnapshot(measured_at=at, charge_percentage=50.0, grid_services_status=status)),
        (silent.pk, TelemetrySnapshot(measured_at=at, charge_percentage=50.0)),  # this OEM's read says nothing
        (stays.pk, TelemetrySnapshot(measured_at=at, charge_percentage=50.0)),
    ]
    before = timezone_now()
    assert _ingest(backend, monkeypatch, workspace_id, readings).devices_updated == 3

    rows = {d.pk: d for d in Device.objects.filter(pk__in=[enrolled.pk, silent.pk, stays.pk])}
    assert rows[enrolled.pk].grid_services_status == "enrolled"  # the newest reading's
    assert rows[enrolled.pk].grid_services_checked_at >= before
    assert (rows[silent.pk].grid_services_status, rows[silent.pk].grid_services_checked_at) == ("unknown", None)
    assert (rows[stays.pk].grid_services_status, rows[stays.pk].grid_services_checked_at) == ("pending", None)

    # a reading that does not move the device forward (older, or already stored) changes nothing
    checked = rows[enrolled.pk].grid_services_checked_at
    older = TelemetrySnapshot(measured_at=at - timedelta(hours=1), grid_services_status="not_enrolled")
    assert _ingest(backend, monkeypatch, workspace_id, [(enrolled.pk, older)]).devices_updated == 0
    device = Device.objects.get(pk=enrolled.pk)
    assert (device.grid_services_status, device.grid_services_checked_at) == ("enrolled", checked)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_services_statuses_cost_no_query_per_device(backend, monkeypatch, django_assert_num_queries):
    from datetime import UTC, datetime, timedelta

    from fleet.models import Device
    from integrations.adapters.base import TelemetrySnapshot

    first = DeviceFactory(state="on_workspace")
    devices = [first, *(DeviceFactory(state="on_workspace", site=first.site) for _ in range(29))]
    at = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)

    def batch(size, minutes):
        return [
            (d.pk, TelemetrySnapshot(measured_at=at + timedelta(minutes=minutes), grid_services_status="enrolled"))
            for d in devices[:size]
        ]

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        _ingest(backend, monkeypatch, first.workspace_id, batch(1, 0))
    with CaptureQueriesContext(connection) as thirty:
        _ingest(backend, monkeypatch, first.workspace_id, batch(30, 5))
    assert len(thirty) == len(one)
    if backend == "postgresql":
        assert sum("UPDATE" in q["sql"] for q in thirty.captured_queries) == 1  # the ingest's one statement
    assert Device.objects.filter(grid_services_status="enrolled").count() == 30


def test_discovery_stores_the_grid_services_status_the_oem_listed():
    from fleet.services import device_mark_discovered

    shown = DeviceFactory()
    device_mark_discovered(
        device=shown, oem_device_id="42", oem_data={}, reason="Found.", grid_services_status="unsupported"
    )
    shown.refresh_from_db()
    assert shown.state == "on_workspace" and shown.grid_services_status == "unsupported"
    assert shown.grid_services_checked_at is not None
    silent = DeviceFactory()
    device_mark_discovered(device=silent, oem_device_id="43", oem_data={}, reason="Found.")
    silent.refresh_from_db()
    assert (silent.grid_services_status, silent.grid_services_checked_at) == ("unknown", None)


def test_the_database_refuses_a_grid_services_status_it_does_not_know():
    from django.db import IntegrityError, transaction

    from fleet.models import Device

    device = DeviceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.filter(pk=device.pk).update(grid_services_status="maybe")


def timezone_now():
    from django.utils import timezone

    return timezone.now()
