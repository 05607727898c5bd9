"""Integration tiles and the device page's telemetry in the admin."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from fleet.models import Device
from integrations import services
from integrations.models import IntegrationRun
from tests.factories import PASSWORD, TelemetryReadingFactory, WorkspaceFactory, staff_user
from tests.integrations.test_services import make_device, make_integration
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def eng(client, sim):
    workspace = WorkspaceFactory()
    staff_user("eng", workspace, Role.ENGINEERING)
    assert client.login(username="eng", password=PASSWORD)
    return workspace


def test_test_connection_action_reports_and_records_health(client, eng, sim):
    sim.state.add_device("tesla", "TG100000000601", kind="battery")
    integration = make_integration(eng, "tesla")
    response = client.post(
        reverse("admin:integrations_workspaceintegration_changelist"),
        {"action": "test_connection", "_selected_action": [integration.pk]},
        follow=True,
    )
    assert "Connected: 1 device(s) visible to this account." in response.content.decode()
    integration.refresh_from_db()
    assert integration.status == "connected"
    page = client.get(reverse("admin:integrations_workspaceintegration_change", args=[integration.pk]))
    html = page.content.decode()
    assert "demo-tesla-secret" not in html and "••••" not in html  # nothing of a value (test_credentials.py)
    assert "refresh_token" in html and integration.credentials["refresh_token"] not in html


def test_discover_now_runs_discovery_and_the_run_is_visible(client, eng, sim, django_capture_on_commit_callbacks):
    sim.state.add_device("tesla", "TG100000000602", kind="battery")
    integration = make_integration(eng, "tesla")
    device = make_device(eng, "tesla", "TG100000000602")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:integrations_workspaceintegration_changelist"),
            {"action": "discover_now", "_selected_action": [integration.pk]},
        )
    device.refresh_from_db()
    assert device.state == "on_workspace"
    run = IntegrationRun.objects.get(kind="discovery")
    page = client.get(reverse("admin:integrations_workspaceintegration_change", args=[integration.pk]))
    assert run.message in page.content.decode()
    assert client.get(reverse("admin:integrations_integrationrun_change", args=[run.pk])).status_code == 200


def test_device_discover_now_action_names_oems_that_are_not_enabled(client, sim, django_capture_on_commit_callbacks):
    workspace = WorkspaceFactory()
    staff_user("ops", workspace, Role.OPS)
    assert client.login(username="ops", password=PASSWORD)
    sim.state.add_device("tesla", "TG100000000603", kind="battery")
    make_integration(workspace, "tesla")
    tesla = make_device(workspace, "tesla", "TG100000000603")
    franklin = make_device(workspace, "franklinwh", "1005000000000603")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:fleet_device_changelist"),
            {"action": "discover_now", "_selected_action": [tesla.pk, franklin.pk]},
            follow=True,
        )
    html = response.content.decode()
    assert "Discovery queued for: Tesla Fleet API." in html
    assert "Not enabled in this workspace, so not discovered: franklinwh." in html
    assert Device.objects.get(pk=tesla.pk).state == "on_workspace"
    assert Device.objects.get(pk=franklin.pk).state == "registered"


def test_device_page_charts_the_last_day_and_last_seen_filter(client, sim):
    workspace = WorkspaceFactory()
    staff_user("ops2", workspace, Role.OPS)
    assert client.login(username="ops2", password=PASSWORD)
    device = make_device(workspace, "tesla", "TG100000000604")
    now = timezone.now()
    for minutes in range(0, 24 * 60, 60):
        TelemetryReadingFactory(device=device, measured_at=now - timedelta(minutes=minutes), charge_percentage=50)
    TelemetryReadingFactory(device=device, measured_at=now - timedelta(days=3))  # outside the chart
    Device.objects.filter(pk=device.pk).update(last_seen_at=now - timedelta(minutes=5))
    page = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert "<svg" in page and "24 readings" in page and "<polyline" in page
    stale = make_device(workspace, "tesla", "TG100000000605")
    listing = client.get(reverse("admin:fleet_device_changelist"), {"lastSeen": "1h"})
    assert [d.pk for d in listing.context["cl"].result_list] == [device.pk]
    never = client.get(reverse("admin:fleet_device_changelist"), {"lastSeen": "never"})
    assert [d.pk for d in never.context["cl"].result_list] == [stale.pk]


def test_runs_are_read_only_and_scoped(client, eng, sim):
    integration = make_integration(eng, "emporia")
    other = make_integration(WorkspaceFactory(), "emporia")
    services.telemetry_sync(integration=integration)
    services.telemetry_sync(integration=other)
    listing = client.get(reverse("admin:integrations_integrationrun_changelist"))
    assert [r.integration_id for r in listing.context["cl"].result_list] == [integration.pk]
    run = IntegrationRun.objects.get(integration=other)
    assert client.get(reverse("admin:integrations_integrationrun_change", args=[run.pk])).status_code == 404
    assert client.get(reverse("admin:integrations_integrationrun_add")).status_code == 403


def test_backfill_history_now_fills_the_days_and_the_run_is_visible(
    client, eng, sim, settings, django_capture_on_commit_callbacks
):
    from fleet.models import TelemetryRollup

    settings.TELEMETRY_HISTORY_DAYS = 1
    sim.state.add_device("tesla", "TG100000000612", kind="battery")
    integration = make_integration(eng, "tesla")
    device = make_device(eng, "tesla", "TG100000000612")
    services.discovery_run(integration=integration)  # its own backfill waits for a commit that never comes
    smartcar = make_integration(eng, "smartcar")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:integrations_workspaceintegration_changelist"),
            {"action": "backfill_history_now", "_selected_action": [integration.pk, smartcar.pk]},
            follow=True,
        )
    html = response.content.decode()
    assert "History backfill queued: 1." in html and "its OEM serves no telemetry history" in html
    run = IntegrationRun.objects.get(kind="history")
    assert run.integration == integration and run.devices_ok == 1
    assert TelemetryRollup.objects.filter(device=device).count() >= 96
    page = client.get(reverse("admin:integrations_integrationrun_change", args=[run.pk]))
    assert page.status_code == 200 and "Telemetry history backfill" in page.content.decode()
