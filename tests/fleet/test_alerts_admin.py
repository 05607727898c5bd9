"""The alert pages staff use: the changelist (scoped, filtered, a fixed number of queries), its actions (through the
services, who and when recorded), the read-only page with the device snapshot, and the e-mail setting."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from fleet.models import Alert, AlertNotificationSetting
from fleet.services import AlertRaise, alerts_raise
from tests.factories import PASSWORD, DeviceFactory, staff_user
from texture_portal.choices import AuditAction, Role
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:fleet_alert_changelist")


def raise_for(devices, **fields):
    workspace_id = devices[0].workspace_id
    specs = [
        AlertRaise(
            **{
                "cause": f"test:{device.pk}",
                "type": "COMMUNICATIONS",
                "subtype": "DEVICE_OFFLINE",
                "severity": "WARNING",
                "title": f"Device offline: {device.system_identifier}",
                "device_id": device.pk,
                **fields,
            }
        )
        for device in devices
    ]
    alerts_raise(workspace_id=workspace_id, alerts=specs)
    return list(Alert.objects.filter(device__in=devices).order_by("pk"))


@pytest.fixture
def ops(tenants):
    return staff_user("olga", tenants.a, Role.OPS)


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def rows(response) -> list:
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


def test_the_changelist_shows_only_the_users_workspaces(client, tenants, ops):
    mine = raise_for([tenants.device_a])
    raise_for([tenants.device_b])
    assert rows(login(client, ops).get(CHANGELIST)) == mine
    page = client.get(reverse("admin:fleet_alert_change", args=[Alert.objects.get(device=tenants.device_b).pk]))
    assert page.status_code == 404


def test_filters_and_search(client, tenants, ops):
    a = tenants.device_a
    other = DeviceFactory(site=a.site, system_identifier="ZZ-42")
    offline, critical = raise_for([a]), raise_for([other], severity="CRITICAL", type="DISPATCH")
    login(client, ops)
    assert rows(client.get(CHANGELIST, {"severity__exact": "CRITICAL"})) == critical
    assert rows(client.get(CHANGELIST, {"type__exact": "COMMUNICATIONS"})) == offline
    assert rows(client.get(CHANGELIST, {"device": str(other.pk)})) == critical
    assert rows(client.get(CHANGELIST, {"deviceId": str(a.pk)})) == offline  # the API's names work too
    assert rows(client.get(CHANGELIST, {"q": "ZZ-4"})) == critical
    client.post(CHANGELIST, {"action": "snooze_24h", "_selected_action": [critical[0].pk]})
    assert rows(client.get(CHANGELIST, {"attention": "needed"})) == offline
    assert rows(client.get(CHANGELIST, {"attention": "snoozed"})) == critical
    assert rows(client.get(CHANGELIST, {"status__exact": "OPEN"})) == [*critical, *offline]  # newest first
    assert rows(client.get(CHANGELIST, {"status__exact": "RESOLVED"})) == []


def test_actions_go_through_the_services_and_record_who(client, tenants, ops):
    alert, other = raise_for([tenants.device_a, DeviceFactory(site=tenants.device_a.site)])
    login(client, ops)
    client.post(CHANGELIST, {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == "ACKNOWLEDGED" and alert.acknowledged_by == ops and alert.acknowledged_at is not None
    client.post(CHANGELIST, {"action": "ignore", "_selected_action": [other.pk]})
    client.post(CHANGELIST, {"action": "resolve", "_selected_action": [alert.pk, other.pk]})
    alert.refresh_from_db(), other.refresh_from_db()
    assert (alert.status, alert.resolved_by_label, other.status) == ("RESOLVED", "olga", "RESOLVED")
    entries = AuditLogEntry.objects.filter(action=AuditAction.ALERT_STATUS_CHANGED, object_id=str(alert.pk))
    assert {(e.source, e.actor_id) for e in entries} == {("admin", ops.pk)}
    # a refused move says why, and the rest of the selection is done
    response = client.post(CHANGELIST, {"action": "acknowledge", "_selected_action": [alert.pk]}, follow=True)
    assert "cannot go from “Resolved” to “Acknowledged”" in response.content.decode()


def test_snooze_24h(client, tenants, ops):
    [alert] = raise_for([tenants.device_a])
    login(client, ops).post(CHANGELIST, {"action": "snooze_24h", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    hours = (alert.snoozed_until - timezone.now()).total_seconds() / 3600
    assert 23.9 < hours <= 24 and alert.status == "OPEN"
    assert AuditLogEntry.objects.get(action=AuditAction.ALERT_SNOOZED).actor == ops


def test_support_reads_alerts_but_has_no_actions(client, tenants):
    support = staff_user("sam", tenants.a, Role.CUSTOMER_SUPPORT)
    [alert] = raise_for([tenants.device_a])
    response = login(client, support).get(CHANGELIST)
    assert rows(response) == [alert]
    assert response.context["action_form"] is None  # no action it may run
    client.post(CHANGELIST, {"action": "resolve", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == "OPEN"


def test_the_page_is_read_only_with_the_device_snapshot(client, tenants, ops):
    device = tenants.device_a
    device.oem_device_id, device.name, device.oem_data = "1689", "Garage Powerwall", {"model": "Powerwall 3"}
    device.save()
    [alert] = raise_for([device])
    page = login(client, ops).get(reverse("admin:fleet_alert_change", args=[alert.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    for text in ("Device (as it was when raised)", "Powerwall 3", "Garage Powerwall", "1689", "ALPHA-0001", "Tesla"):
        assert text in html
    assert 'name="_save"' not in html
    assert client.get(reverse("admin:fleet_alert_add")).status_code == 403


def changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(CHANGELIST).status_code == 200
    return len(captured)


def test_the_changelist_costs_the_same_whatever_the_number_of_alerts(client, tenants, ops):
    device = tenants.device_a
    raise_for([device, *[DeviceFactory(site=device.site) for _ in range(2)]])
    login(client, ops)
    few = changelist_queries(client)
    raise_for([DeviceFactory(site=device.site) for _ in range(30)])
    assert changelist_queries(client) == few


def test_the_email_setting_is_chosen_with_checkboxes(client, tenants):
    admin = tenants.alice
    login(client, admin)
    response = client.post(
        reverse("admin:fleet_alertnotificationsetting_add"),
        {
            "workspace": tenants.a.pk,
            "email": "ops@alpha.example",
            "alert_types": ["COMMUNICATIONS", "DISPATCH"],
            "severities": ["CRITICAL"],
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    setting = AlertNotificationSetting.objects.get(workspace=tenants.a)
    assert setting.alert_types == ["COMMUNICATIONS", "DISPATCH"] and setting.severities == ["CRITICAL"]
    assert AuditLogEntry.objects.filter(action=AuditAction.OBJECT_CREATED, object_id=str(setting.pk)).exists()
