"""Who changed what: admin edits and service calls leave audit rows, readable (not editable) in the admin."""

import pytest
from django.urls import reverse

from fleet.choices import DeviceState
from fleet.services import device_mark_on_workspace
from tests.factories import PASSWORD, ContactFactory
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def test_admin_edit_writes_an_audit_row_with_old_and_new_values(client, tenants):
    contact = tenants.device_a.contact
    client.login(username="alice", password=PASSWORD)
    response = client.post(
        reverse("admin:fleet_contact_change", args=[contact.pk]),
        {
            "reference_id": contact.reference_id,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": "new.address@example.com",
            "phone": "",
            # the read-only inlines still post their management forms
            "sites-TOTAL_FORMS": "0",
            "sites-INITIAL_FORMS": "0",
            "devices-TOTAL_FORMS": "0",
            "devices-INITIAL_FORMS": "0",
        },
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditLogEntry.objects.get(action=AuditAction.CONTACT_UPDATED)
    assert entry.actor == tenants.alice
    assert entry.source == AuditSource.ADMIN
    assert entry.workspace == tenants.a
    assert entry.changes == {"email": [contact.email, "new.address@example.com"]}
    assert entry.correlation_id == "req-42"


def test_saving_without_changes_writes_no_audit_row(client, tenants):
    contact = tenants.device_a.contact
    client.login(username="alice", password=PASSWORD)
    before = AuditLogEntry.objects.count()
    client.post(
        reverse("admin:fleet_contact_change", args=[contact.pk]),
        {
            "reference_id": contact.reference_id,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "phone": "",
            "sites-TOTAL_FORMS": "0",
            "sites-INITIAL_FORMS": "0",
            "devices-TOTAL_FORMS": "0",
            "devices-INITIAL_FORMS": "0",
        },
    )
    assert AuditLogEntry.objects.count() == before


def test_service_state_change_is_audited_with_reason(tenants):
    device_mark_on_workspace(device=tenants.device_a, reason="Found at Tesla as energy site 1234", actor=tenants.alice)
    entry = AuditLogEntry.objects.get(action=AuditAction.DEVICE_STATE_CHANGED)
    assert entry.changes == {"state": [DeviceState.REGISTERED, DeviceState.ON_WORKSPACE]}
    assert entry.reason == "Found at Tesla as energy site 1234"
    assert entry.object_id == str(tenants.device_a.pk)


def test_audit_log_is_read_only_and_scoped_in_the_admin(client, tenants):
    ContactFactory(workspace=tenants.b)
    device_mark_on_workspace(device=tenants.device_a, reason="a", actor=None)
    device_mark_on_workspace(device=tenants.device_b, reason="b", actor=None)
    client.login(username="alice", password=PASSWORD)
    response = client.get(reverse("admin:texture_portal_auditlogentry_changelist"))
    entries = list(response.context["cl"].result_list)
    assert entries and {e.workspace_id for e in entries} == {tenants.a.pk}
    entry = entries[0]
    page = client.get(reverse("admin:texture_portal_auditlogentry_change", args=[entry.pk]))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert client.post(reverse("admin:texture_portal_auditlogentry_delete", args=[entry.pk])).status_code == 403
    assert client.get(reverse("admin:texture_portal_auditlogentry_add")).status_code == 403
