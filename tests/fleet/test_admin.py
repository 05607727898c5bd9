"""Fleet admin as staff use it: changelists that stay a handful of queries, the device page, saves."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fleet.choices import DeviceState
from fleet.models import Device
from programs.services import enrollment_submit
from tests.factories import (
    PASSWORD,
    ContactFactory,
    DeviceFactory,
    DeviceTagFactory,
    SiteFactory,
    TelemetryReadingFactory,
    WorkspaceFactory,
    make_program,
    staff_user,
)
from texture_portal.choices import AuditAction, Role
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db

# The whole page, pinned: session, user, the admin's timezone (the user's workspaces' zones), 4 for
# permissions (direct, group, memberships, role groups), the roles the sidebar shows, the filter choices
# (Device: manufacturers, programs, tags; both: workspaces and their organizations), one COUNT and one page of
# rows joined to what list_display shows. An N+1 in list_display, or any new query, fails here.
DEVICE_CHANGELIST_QUERIES = 13
CONTACT_CHANGELIST_QUERIES = 10


def add_devices(workspace, program, tag, count):
    for _ in range(count):
        device = DeviceFactory(site__contact__workspace=workspace, state=DeviceState.ON_WORKSPACE)
        device.tags.add(tag)
        reading = TelemetryReadingFactory(device=device)
        Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
        enrollment_submit(device=device, program=program, actor=None)


def count_queries(client, url, params=None):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(ctx.captured_queries), response


@pytest.fixture
def ops(client):
    workspace = WorkspaceFactory()
    staff_user("ops", workspace, Role.OPS)
    assert client.login(username="ops", password=PASSWORD)
    return workspace


def test_device_changelist_query_count_does_not_grow_with_rows(client, ops):
    program = make_program(ops)
    tag = DeviceTagFactory(workspace=ops, name="feeder:12")
    url = reverse("admin:fleet_device_changelist")
    add_devices(ops, program, tag, 3)
    few, response = count_queries(client, url)
    assert len(response.context["cl"].result_list) == 3
    add_devices(ops, program, tag, 40)
    many, response = count_queries(client, url)
    assert len(response.context["cl"].result_list) == 43
    assert few == many == DEVICE_CHANGELIST_QUERIES
    # filtered by state, program and tag, and searched: still the same handful
    filtered, response = count_queries(
        client, url, {"state": "on_workspace", "program": program.pk, "tag": tag.pk, "q": "TG1"}
    )
    assert len(response.context["cl"].result_list) == 43
    assert filtered == DEVICE_CHANGELIST_QUERIES


def test_contact_changelist_query_count_does_not_grow_with_rows(client, ops):
    url = reverse("admin:fleet_contact_changelist")
    ContactFactory.create_batch(3, workspace=ops)
    few, _ = count_queries(client, url)
    ContactFactory.create_batch(40, workspace=ops)
    many, response = count_queries(client, url)
    assert len(response.context["cl"].result_list) == 43
    assert few == many == CONTACT_CHANGELIST_QUERIES


def test_contact_search_by_account_number_name_and_email(client, ops):
    ContactFactory(workspace=ops, reference_id="TRE-100200", first_name="Ava", last_name="Alvarez", email="ava@x.org")
    ContactFactory(workspace=ops, reference_id="TRE-999999", first_name="Ben", last_name="Brooks", email="ben@y.org")
    url = reverse("admin:fleet_contact_changelist")
    for term in ("TRE-1002", "Alvarez", "ava", "ava@x"):
        rows = client.get(url, {"q": term}).context["cl"].result_list
        assert [c.reference_id for c in rows] == ["TRE-100200"], term


def test_device_search_by_serial_and_filters(client, ops):
    program = make_program(ops)
    tag = DeviceTagFactory(workspace=ops, name="feeder:9")
    enrolled = DeviceFactory(site__contact__workspace=ops, system_identifier="TG-ENROLLED-1")
    enrolled.tags.add(tag)
    enrollment_submit(device=enrolled, program=program, actor=None)
    DeviceFactory(site__contact__workspace=ops, system_identifier="TG-OTHER-2", state=DeviceState.OFFLINE)
    url = reverse("admin:fleet_device_changelist")

    def serials(params):
        return sorted(d.system_identifier for d in client.get(url, params).context["cl"].result_list)

    assert serials({"q": "TG-ENR"}) == ["TG-ENROLLED-1"]
    assert serials({"program": program.pk}) == ["TG-ENROLLED-1"]
    assert serials({"tag": tag.pk}) == ["TG-ENROLLED-1"]
    assert serials({"state": "offline"}) == ["TG-OTHER-2"]
    assert serials({"manufacturer__id__exact": enrolled.manufacturer_id}) == ["TG-ENROLLED-1", "TG-OTHER-2"]


def test_device_page_shows_latest_telemetry_and_state_history(client, ops):
    device = DeviceFactory(site__contact__workspace=ops)
    from fleet.services import device_mark_on_workspace

    device_mark_on_workspace(device=device, reason="Found at Tesla")
    reading = TelemetryReadingFactory(device=device, charge_percentage=73.0, charge_rate_w=-2500.0, grid_power_w=-800.0)
    Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
    page = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert "73%" in page
    assert "-2,500 W" in page and "-800 W" in page
    assert "Found at Tesla" in page  # state history inline


def test_device_page_without_telemetry_says_so(client, ops):
    device = DeviceFactory(site__contact__workspace=ops)
    page = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert "No telemetry yet" in page


def test_contact_page_shows_its_sites_and_devices(client, ops):
    device = DeviceFactory(site__contact__workspace=ops, system_identifier="SERIAL-ON-CONTACT")
    page = client.get(reverse("admin:fleet_contact_change", args=[device.contact_id])).content.decode()
    assert "SERIAL-ON-CONTACT" in page
    assert device.site.street_one in page


def test_adding_a_device_in_the_admin_registers_it_through_the_service(client):
    workspace = WorkspaceFactory()
    staff_user("admin-a", workspace, Role.ADMIN)
    client.login(username="admin-a", password=PASSWORD)
    site = SiteFactory(contact__workspace=workspace)
    from fleet.models import Manufacturer

    response = client.post(
        reverse("admin:fleet_device_add"),
        {
            "workspace": workspace.pk,
            "site": site.pk,
            "manufacturer": Manufacturer.objects.get(slug="tesla").pk,
            "system_identifier": "TG-NEW-1",
            "device_type": "battery",
            "name": "Garage Powerwall",
            "state_changes-TOTAL_FORMS": "0",
            "state_changes-INITIAL_FORMS": "0",
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    device = Device.objects.get(system_identifier="TG-NEW-1")
    assert device.state == DeviceState.REGISTERED and device.contact_id == site.contact_id
    assert device.state_changes.count() == 1
    assert AuditLogEntry.objects.filter(action=AuditAction.DEVICE_REGISTERED, object_id=str(device.pk)).exists()


def test_duplicate_serial_in_the_admin_is_a_form_error_not_a_crash(client):
    workspace = WorkspaceFactory()
    staff_user("admin-a", workspace, Role.ADMIN)
    client.login(username="admin-a", password=PASSWORD)
    existing = DeviceFactory(site__contact__workspace=workspace, system_identifier="DUP-1")
    response = client.post(
        reverse("admin:fleet_device_add"),
        {
            "workspace": workspace.pk,
            "site": existing.site_id,
            "manufacturer": existing.manufacturer_id,
            "system_identifier": "DUP-1",
            "device_type": "battery",
            "state_changes-TOTAL_FORMS": "0",
            "state_changes-INITIAL_FORMS": "0",
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()
    assert Device.objects.filter(system_identifier="DUP-1").count() == 1


def test_device_changelist_shows_and_filters_by_grid_services_status(client, ops):
    from django.utils import timezone

    enrolled = DeviceFactory(site__contact__workspace=ops, system_identifier="TG-GRID-IN")
    pending = DeviceFactory(site__contact__workspace=ops, system_identifier="TG-GRID-WAIT")
    DeviceFactory(site__contact__workspace=ops, system_identifier="TG-GRID-NEVER-READ")
    Device.objects.filter(pk=enrolled.pk).update(
        grid_services_status="enrolled", grid_services_checked_at=timezone.now()
    )
    Device.objects.filter(pk=pending.pk).update(grid_services_status="pending")
    url = reverse("admin:fleet_device_changelist")
    response = client.get(url)
    page = response.content.decode()
    assert "grid services" in page.lower() and "column-grid_services" in page
    assert "Enrolled" in page and "Pending (OEM testing)" in page and "Unknown" in page

    def serials(params):
        return sorted(d.system_identifier for d in client.get(url, params).context["cl"].result_list)

    assert serials({"grid_services_status__exact": "enrolled"}) == ["TG-GRID-IN"]
    assert serials({"grid_services_status__exact": "pending"}) == ["TG-GRID-WAIT"]
    assert serials({"grid_services_status__exact": "unknown"}) == ["TG-GRID-NEVER-READ"]
    filtered, _ = count_queries(client, url, {"grid_services_status__exact": "enrolled"})
    assert filtered == DEVICE_CHANGELIST_QUERIES

    detail = client.get(reverse("admin:fleet_device_change", args=[enrolled.pk])).content.decode()
    assert "Grid services" in detail and "grid services checked" in detail.lower()
    assert 'name="grid_services_status"' not in detail  # read-only: only OEM reads write it
