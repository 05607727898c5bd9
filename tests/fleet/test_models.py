"""Database constraints of the fleet: what must never be false is refused by the database itself."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from fleet.models import Contact, Device, Manufacturer, Site, TelemetryReading
from tests.factories import (
    ContactFactory,
    DeviceFactory,
    SiteFactory,
    TelemetryReadingFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db


def refused(make):
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


def test_reference_id_is_unique_per_workspace_only():
    a, b = WorkspaceFactory(), WorkspaceFactory()
    ContactFactory(workspace=a, reference_id="ACCT-1")
    refused(lambda: Contact.objects.create(workspace=a, reference_id="ACCT-1", first_name="x", last_name="y"))
    ContactFactory(workspace=b, reference_id="ACCT-1")  # another workspace may reuse it
    assert Contact.objects.filter(reference_id="ACCT-1").count() == 2


def test_reference_id_cannot_be_blank():
    workspace = WorkspaceFactory()
    refused(lambda: Contact.objects.create(workspace=workspace, reference_id="", first_name="x", last_name="y"))


def test_device_serial_is_unique_per_workspace_and_manufacturer():
    device = DeviceFactory(system_identifier="SN-1")
    site = device.site
    tesla = device.manufacturer
    franklin = Manufacturer.objects.get(slug="franklinwh")

    def same(manufacturer, workspace=None, site_=None):
        site_ = site_ or site
        return Device.objects.create(
            workspace=workspace or site_.workspace,
            site=site_,
            contact=site_.contact,
            manufacturer=manufacturer,
            system_identifier="SN-1",
            device_type="battery",
        )

    refused(lambda: same(tesla))
    same(franklin)  # the same serial at another OEM is another device
    other_site = SiteFactory()
    same(tesla, site_=other_site)  # and in another workspace too
    assert Device.objects.filter(system_identifier="SN-1").count() == 3


def test_device_state_and_type_must_be_known_values():
    device = DeviceFactory()
    refused(lambda: Device.objects.filter(pk=device.pk).update(state="exploded"))
    refused(lambda: Device.objects.filter(pk=device.pk).update(device_type="toaster"))
    refused(lambda: Device.objects.filter(pk=device.pk).update(system_identifier=""))


def test_telemetry_is_unique_per_device_and_measurement_time():
    reading = TelemetryReadingFactory()
    refused(
        lambda: TelemetryReading.objects.create(
            workspace=reading.workspace,
            device=reading.device,
            measured_at=reading.measured_at,
            charge_percentage=10,
        )
    )


@pytest.mark.parametrize("soc", [-0.1, 100.5])
def test_telemetry_soc_must_be_a_percentage(soc):
    device = DeviceFactory()
    refused(
        lambda: TelemetryReading.objects.create(
            workspace=device.workspace, device=device, measured_at=timezone.now(), charge_percentage=soc
        )
    )


def test_site_coordinates_must_be_valid_and_paired():
    contact = ContactFactory()
    base = {
        "workspace": contact.workspace,
        "contact": contact,
        "street_one": "1 A St",
        "city": "Bend",
        "state": "OR",
        "postal_code": "97701",
    }
    refused(lambda: Site.objects.create(**base, latitude=91, longitude=0))
    refused(lambda: Site.objects.create(**base, latitude=44, longitude=-181))
    refused(lambda: Site.objects.create(**base, latitude=44, longitude=None))
    Site.objects.create(**base, latitude=44.05, longitude=-121.31)


def test_site_reference_id_is_unique_when_given():
    contact = ContactFactory()
    SiteFactory(contact=contact, site_reference_id="")
    SiteFactory(contact=contact, site_reference_id="")  # blanks do not collide
    SiteFactory(contact=contact, site_reference_id="SITE-9")
    refused(lambda: SiteFactory(contact=contact, site_reference_id="SITE-9"))


def test_state_history_row_must_change_state():
    device = DeviceFactory()
    from fleet.models import DeviceStateChange

    refused(
        lambda: DeviceStateChange.objects.create(
            workspace=device.workspace,
            device=device,
            from_state="offline",
            to_state="offline",
            source="service",
        )
    )


def test_model_clean_refuses_links_across_workspaces():
    from django.core.exceptions import ValidationError

    site_elsewhere = SiteFactory()
    device = DeviceFactory()
    device.site = site_elsewhere
    with pytest.raises(ValidationError) as excinfo:
        device.full_clean()
    assert "site" in excinfo.value.message_dict


def test_telemetry_reading_str_is_readable():
    reading = TelemetryReadingFactory(charge_percentage=64.4, measured_at=timezone.now() - timedelta(hours=1))
    assert "SoC 64%" in str(reading)


def test_deleting_the_latest_reading_clears_the_device_pointer_and_a_device_takes_its_readings_along():
    """`latest_telemetry` has no database constraint (for in-place sync updates): Django keeps it consistent."""
    device = DeviceFactory()
    reading = TelemetryReading.objects.create(
        workspace=device.workspace, device=device, measured_at=timezone.now(), charge_percentage=50
    )
    Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
    reading.delete()
    device.refresh_from_db()
    assert device.latest_telemetry_id is None

    again = TelemetryReading.objects.create(workspace=device.workspace, device=device, measured_at=timezone.now())
    Device.objects.filter(pk=device.pk).update(latest_telemetry=again)
    device.delete()
    assert not TelemetryReading.objects.filter(pk=again.pk).exists()
