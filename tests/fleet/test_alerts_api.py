"""`/v1/alerts`: the body in Texture's shape, filters, cursor pages at a constant query count, status changes
and snooze (who and when recorded as the API key), and one workspace per key."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.models import Alert
from fleet.services import AlertRaise, alert_snooze, alerts_raise
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, WorkspaceFactory
from texture_portal.choices import AuditAction
from texture_portal.events.models import PlatformEvent
from texture_portal.models import AuditLogEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


def spec(cause, **fields) -> AlertRaise:
    return AlertRaise(
        **{
            "cause": cause,
            "type": "COMMUNICATIONS",
            "subtype": "DEVICE_OFFLINE",
            "severity": "WARNING",
            "title": f"Alert {cause}",
            **fields,
        }
    )


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["data"]]


@pytest.fixture
def scene():
    """A workspace with a device and three alerts (offline warning, critical dispatch, info on a site)."""
    workspace = WorkspaceFactory()
    device = DeviceFactory(site__contact__workspace=workspace, oem_device_id="1689", name="Garage")
    other_device = DeviceFactory(site__contact__workspace=workspace)
    alerts_raise(
        workspace_id=workspace.pk,
        alerts=[
            spec("offline", device_id=device.pk),
            spec("failed", type="DISPATCH", subtype="COMMAND_FAILED", severity="CRITICAL", device_id=other_device.pk),
            spec("site", severity="INFO", site_id=device.site_id, subject_label="Feeder 12"),
        ],
    )
    alerts = {a.cause: a for a in Alert.objects.filter(workspace=workspace)}
    return workspace, device, other_device, alerts


def test_an_alert_reads_in_texture_shape(scene):
    workspace, device, _, alerts = scene
    body = api_client_for(workspace).get(f"/v1/alerts/{alerts['offline'].pk}").json()
    assert body["type"] == "COMMUNICATIONS" and body["subtype"] == "DEVICE_OFFLINE"
    assert body["severity"] == "WARNING" and body["status"] == "OPEN"
    assert body["deviceId"] == device.pk and body["siteId"] == device.site_id
    assert body["manufacturerDeviceId"] == "1689" and body["deviceName"] == "Garage"
    assert body["deviceSerialNumber"] == device.system_identifier and body["manufacturer"] == "Tesla"
    assert body["deviceType"] == "battery" and body["sourceSystem"] == "fleet" and body["raiseCount"] == 1
    for name in ("acknowledgedAt", "ignoredAt", "resolvedAt", "snoozedUntil"):
        assert body[name] is None
    assert body["acknowledgedBy"] == "" and body["createdAt"] and body["lastSeenAt"]
    # the webhook's data is the same body (plus what changed, on alert.updated)
    event = PlatformEvent.objects.get(key=f"alert.created:{alerts['offline'].pk}")
    assert {k: v for k, v in event.data.items() if k not in ("createdAt", "updatedAt", "lastSeenAt")} == {
        k: v for k, v in body.items() if k not in ("createdAt", "updatedAt", "lastSeenAt")
    }


def test_filters(scene):
    workspace, device, other_device, alerts = scene
    client = api_client_for(workspace)
    offline, failed, site = alerts["offline"].pk, alerts["failed"].pk, alerts["site"].pk
    assert ids(client.get("/v1/alerts")) == [site, failed, offline]
    assert ids(client.get("/v1/alerts", {"severity": "CRITICAL"})) == [failed]
    assert ids(client.get("/v1/alerts?severity=CRITICAL&severity=INFO")) == [site, failed]
    assert ids(client.get("/v1/alerts", {"type": "DISPATCH"})) == [failed]
    assert ids(client.get("/v1/alerts", {"subtype": "COMMAND_FAILED"})) == [failed]
    assert ids(client.get("/v1/alerts", {"deviceId": device.pk})) == [offline]
    assert ids(client.get("/v1/alerts", {"siteId": device.site_id})) == [site, offline]
    client.post(f"/v1/alerts/{failed}/status", {"status": "ACKNOWLEDGED"}, format="json")
    assert ids(client.get("/v1/alerts", {"status": "ACKNOWLEDGED"})) == [failed]
    assert ids(client.get("/v1/alerts?status=OPEN")) == [site, offline]
    Alert.objects.filter(pk=offline).update(created=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(client.get("/v1/alerts", {"createdAfter": since})) == [site, failed]
    assert ids(client.get("/v1/alerts", {"createdBefore": since})) == [offline]
    alert_snooze(alert=alerts["site"], until=timezone.now() + timedelta(hours=2), actor=None)
    assert ids(client.get("/v1/alerts", {"needsAttention": "true"})) == [offline]  # open and not snoozed
    assert ids(client.get("/v1/alerts", {"needsAttention": "false"})) == [site, failed]
    error = assert_error(client.get("/v1/alerts", {"severity": "LOUD"}), 400, "validation_error")
    assert "severity" in error["fields"]


def test_status_change_records_the_api_key_and_announces_it(scene):
    workspace, _, _, alerts = scene
    client = api_client_for(workspace, name="MDMS")
    alert = alerts["offline"]
    response = client.post(
        f"/v1/alerts/{alert.pk}/status", {"status": "ACKNOWLEDGED", "reason": "on it"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ACKNOWLEDGED" and body["acknowledgedBy"].startswith("API key tpk_")
    assert body["acknowledgedBy"].endswith("(MDMS)") and body["acknowledgedAt"]
    entry = AuditLogEntry.objects.get(action=AuditAction.ALERT_STATUS_CHANGED, object_id=str(alert.pk))
    assert entry.source == "api" and entry.reason == "on it" and entry.actor_label == body["acknowledgedBy"]
    updated = PlatformEvent.objects.get(type="alert.updated", data__id=alert.pk)
    assert updated.data["changes"] == {"status": ["OPEN", "ACKNOWLEDGED"]}

    resolved = client.post(f"/v1/alerts/{alert.pk}/status", {"status": "RESOLVED"}, format="json").json()
    assert resolved["status"] == "RESOLVED" and resolved["resolvedBy"] == body["acknowledgedBy"]
    error = assert_error(
        client.post(f"/v1/alerts/{alert.pk}/status", {"status": "OPEN"}, format="json"), 409, "invalid_transition"
    )
    assert "Resolved" in error["message"]
    assert_error(client.post(f"/v1/alerts/{alert.pk}/status", {"status": "DONE"}, format="json"), 400)
    assert_error(client.post(f"/v1/alerts/{alert.pk}/status", ["ACKNOWLEDGED"], format="json"), 400)


def test_snooze_and_its_end(scene):
    workspace, _, _, alerts = scene
    client = api_client_for(workspace)
    alert = alerts["offline"]
    until = (timezone.now() + timedelta(hours=24)).replace(microsecond=0)
    body = client.post(f"/v1/alerts/{alert.pk}/snooze", {"until": until.isoformat()}, format="json").json()
    assert body["snoozedUntil"] == until.isoformat().replace("+00:00", "Z")
    assert client.post(f"/v1/alerts/{alert.pk}/snooze", {"until": None}, format="json").json()["snoozedUntil"] is None
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    assert_error(client.post(f"/v1/alerts/{alert.pk}/snooze", {"until": past}, format="json"), 400, "rejected")
    assert_error(client.post(f"/v1/alerts/{alert.pk}/snooze", {}, format="json"), 400, "validation_error")


def test_a_key_sees_and_changes_only_its_own_workspace_alerts(scene):
    workspace, _, _, alerts = scene
    stranger = api_client_for(WorkspaceFactory())
    alert = alerts["offline"]
    assert ids(stranger.get("/v1/alerts")) == []
    assert_error(stranger.get(f"/v1/alerts/{alert.pk}"), 404, "not_found")
    assert_error(stranger.post(f"/v1/alerts/{alert.pk}/status", {"status": "RESOLVED"}, format="json"), 404)
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert_error(stranger.post(f"/v1/alerts/{alert.pk}/snooze", {"until": future}, format="json"), 404)
    alert.refresh_from_db()
    assert alert.status == "OPEN" and alert.snoozed_until is None
    assert_error(api_client_for(workspace).get("/v1/alerts/99999999999999999999"), 404)


def test_list_query_count_does_not_grow_with_page_size(django_assert_max_num_queries):
    workspace = WorkspaceFactory()
    devices = [DeviceFactory(site__contact__workspace=workspace) for _ in range(30)]
    alerts_raise(workspace_id=workspace.pk, alerts=[spec(f"d{d.pk}", device_id=d.pk) for d in devices])
    client = api_client_for(workspace)
    client.get("/v1/alerts?perPage=1")  # last_used_at write happens here
    # key lookup, one page of alerts (every field is the alert's own column)
    for per_page in (1, 5, 30):
        with django_assert_max_num_queries(2):
            assert len(client.get(f"/v1/alerts?perPage={per_page}").json()["data"]) == per_page
    with django_assert_max_num_queries(2) as captured:
        client.get("/v1/alerts?perPage=30&status=OPEN&status=ACKNOWLEDGED&severity=WARNING&needsAttention=true")
    assert not any("DISTINCT" in q["sql"].upper() for q in captured.captured_queries)
