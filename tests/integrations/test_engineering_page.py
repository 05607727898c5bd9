"""The engineering page (Integrations → Engineering): the seven OEM tiles with their health and runs, Test
connection and Discover now calling the integrations' services against the OEM simulator, API keys and
destinations created in place (their secret shown once), Send test event reaching a real receiver and landing in
the delivery log, the API's reference, docs/integrators.md readable in the portal, who may press what, the
Engineering home, and a constant number of queries whatever the fleet and the delivery log hold."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Device, Manufacturer
from integrations import services
from integrations.choices import IntegrationChannel, RunKind, RunStatus
from integrations.models import IntegrationRun, WorkspaceIntegration
from tests.factories import PASSWORD, DeviceFactory, WorkspaceFactory, staff_user
from tests.integrations.test_services import make_device, make_integration
from tests.texture_portal.events.test_webhooks import Receiver
from texture_portal.api_keys import ApiKey, api_key_hash
from texture_portal.choices import Role
from texture_portal.events import services as event_services
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent

pytestmark = pytest.mark.django_db

PAGE = "admin:integrations_engineering"


def page_url(workspace) -> str:
    return f"{reverse(PAGE)}?workspace={workspace.pk}"


def login(client, username, workspace, role):
    staff_user(username, workspace, role)
    assert client.login(username=username, password=PASSWORD)


def tile(html: str, channel: str) -> str:
    match = re.search(rf'<article class="eng-tile" id="tile-{channel}".*?</article>', html, re.S)
    assert match, f"no tile for {channel}"
    return match.group(0)


@pytest.fixture
def workspace():
    return WorkspaceFactory()


@pytest.fixture
def engineer(client, workspace):
    login(client, "eng", workspace, Role.ENGINEERING)
    return workspace


def run(integration, kind, status, message, *, minutes_ago=5, **counts):
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return IntegrationRun.objects.create(
        workspace_id=integration.workspace_id,
        integration=integration,
        kind=kind,
        status=status,
        started_at=started,
        finished_at=None if status == RunStatus.RUNNING else started + timedelta(seconds=20),
        message=message,
        **counts,
    )


# -- tiles --------------------------------------------------------------------------------------------------


def test_a_tile_per_oem_with_its_health_last_error_and_latest_runs(client, engineer):
    tesla = make_integration(engineer, "tesla")
    WorkspaceIntegration.objects.filter(pk=tesla.pk).update(status="connected", last_checked_at=timezone.now())
    run(tesla, RunKind.DISCOVERY, RunStatus.SUCCEEDED, "an older discovery", minutes_ago=60)
    run(tesla, RunKind.DISCOVERY, RunStatus.PARTIAL, "3 found, 1 not at the OEM", minutes_ago=10)
    run(tesla, RunKind.TELEMETRY, RunStatus.SUCCEEDED, "synced", readings_written=42)
    franklin = make_integration(engineer, "franklinwh")
    WorkspaceIntegration.objects.filter(pk=franklin.pk).update(
        status="error", last_error="401 Unauthorized: token expired", last_checked_at=timezone.now()
    )
    make_integration(engineer, "enphase", enabled=False)
    make_device(engineer, "tesla", "TG1000000000A1")
    DeviceFactory(site__contact__workspace=engineer, system_identifier="TG1000000000A2", state=DeviceState.OFFLINE)

    response = client.get(page_url(engineer))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<article class="eng-tile" id="tile-(\w+)"', html) == list(IntegrationChannel.values)
    health = dict(re.findall(r'data-channel="(\w+)" data-health="(\w+)"', html))
    assert health == {
        "tesla": "connected",
        "franklinwh": "error",
        "enphase": "disabled",
        "solaredge": "disabled",
        "emporia": "disabled",
        "chargepoint": "disabled",
        "smartcar": "disabled",
    }
    tesla_tile = tile(html, "tesla")
    assert "Credentials OK" in tesla_tile and "3 found, 1 not at the OEM" in tesla_tile
    assert "an older discovery" not in tesla_tile and "(42 readings)" in tesla_tile
    assert "0 on workspace · 1 offline · 1 registered" in tesla_tile
    franklin_tile = tile(html, "franklinwh")
    assert "401 Unauthorized: token expired" in franklin_tile and "checked" in franklin_tile
    assert re.search(r'data-role="last-discovery">Last discovery:\s+never', franklin_tile)
    for channel in ("tesla", "franklinwh", "enphase"):
        assert "Test connection" in tile(html, channel)  # credentials can be checked before enabling
    assert "Discover now" in tesla_tile and "Discover now" not in tile(html, "enphase")  # enphase is disabled
    assert "Not set up" in tile(html, "smartcar") and "channel=smartcar" in tile(html, "smartcar")
    assert "Test connection" not in tile(html, "smartcar")


def test_the_api_reference_and_the_integrators_guide(client, engineer, settings):
    settings.API_RATE_LIMIT = "120/minute"
    html = client.get(page_url(engineer)).content.decode()
    assert 'id="api-base-url">http://testserver/v1/<' in html
    assert "Texture-Api-Key: &lt;key&gt;" in html and "Authorization: Bearer &lt;key&gt;" in html
    assert "120 requests per minute per API key" in html
    assert 'href="/v1/docs"' in html and 'href="/v1/schema"' in html and 'href="/v1/redoc"' in html
    guide = client.get(reverse("admin:integrations_engineering_guide"))
    assert guide.status_code == 200
    text = guide.content.decode()
    assert "# Texture Portal API — guide for integrators" in text and "Texture-Signature" in text


# -- test connection and discover now --------------------------------------------------------------------


def test_test_connection_asks_the_oem_and_records_the_health_on_the_tile(client, engineer, sim):
    sim.state.add_device("tesla", "TG100000000601", kind="battery")
    integration = make_integration(engineer, "tesla")
    response = client.post(reverse("admin:integrations_engineering_test", args=[integration.pk]), follow=True)
    assert response.redirect_chain[-1][0] == f"{page_url(engineer)}#tile-tesla"
    html = response.content.decode()
    assert "Tesla Fleet API: Connected: 1 device(s) visible to this account." in html
    integration.refresh_from_db()
    assert integration.status == "connected" and integration.last_checked_at is not None
    assert 'data-channel="tesla" data-health="connected"' in html

    # credentials the OEM refuses: the error, and when, on the tile
    services.workspace_integration_save(
        workspace=engineer, channel="tesla", actor=None, credentials={"client_id": "nope", "client_secret": "nope"}
    )
    html = client.post(reverse("admin:integrations_engineering_test", args=[integration.pk]), follow=True)
    html = html.content.decode()
    assert "Tesla Fleet API: Connection failed" in html
    assert 'data-channel="tesla" data-health="error"' in html
    integration.refresh_from_db()
    assert integration.last_error and integration.last_error[:40] in tile(html, "tesla")


def test_discover_now_runs_a_discovery_that_the_tile_then_shows(
    client, engineer, sim, django_capture_on_commit_callbacks
):
    sim.state.add_device("tesla", "TG100000000602", kind="battery")
    integration = make_integration(engineer, "tesla")
    device = make_device(engineer, "tesla", "TG100000000602")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:integrations_engineering_discover", args=[integration.pk]))
    assert response.status_code == 302
    run_ = IntegrationRun.objects.get(integration=integration, kind=RunKind.DISCOVERY)
    assert run_.status == RunStatus.SUCCEEDED
    device.refresh_from_db()
    assert device.state == DeviceState.ON_WORKSPACE
    html = client.get(response["Location"]).content.decode()
    assert "discovery queued" in html and run_.message[:30] in tile(html, "tesla")
    assert "1 on workspace" in tile(html, "tesla")


def test_discover_now_on_a_disabled_integration_says_why_and_queues_nothing(client, engineer, monkeypatch):
    from integrations import tasks

    queued = []
    monkeypatch.setattr(tasks.discovery_run_task, "delay", lambda *args: queued.append(args))
    integration = make_integration(engineer, "enphase", enabled=False)
    html = client.post(reverse("admin:integrations_engineering_discover", args=[integration.pk]), follow=True)
    assert "Enphase Enlighten v4: not enabled: enable it first." in html.content.decode()
    assert queued == []


# -- who may press what -------------------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch):
    """Record the services the buttons call (no OEM is contacted)."""
    from integrations import engineering

    called = []
    monkeypatch.setattr(
        engineering.services, "integration_test_connection", lambda **kw: called.append("test") or "Connected: x"
    )
    monkeypatch.setattr(engineering.services, "integration_discovery_queue", lambda **kw: called.append("discover"))
    monkeypatch.setattr(engineering.event_services, "destination_test_send", lambda **kw: called.append("send"))
    return called


def test_customer_support_cannot_open_the_page_nor_press_its_buttons(client, workspace, calls):
    integration = make_integration(workspace, "tesla")
    destination = event_services.destination_create(
        workspace=workspace, label="ERP", url="https://8.8.8.8/hook", actor=None
    )
    login(client, "support", workspace, Role.CUSTOMER_SUPPORT)
    assert client.get(reverse(PAGE)).status_code == 403
    assert client.post(reverse("admin:integrations_engineering_test", args=[integration.pk])).status_code == 403
    assert client.post(reverse("admin:integrations_engineering_discover", args=[integration.pk])).status_code == 403
    assert (
        client.post(reverse("admin:integrations_engineering_destination_test", args=[destination.pk])).status_code
        == 403
    )
    response = client.post(
        reverse("admin:integrations_engineering_api_key"), {"workspace": workspace.pk, "name": "sneaky"}
    )
    assert response.status_code == 403
    assert calls == [] and not ApiKey.objects.exists()
    assert client.get(reverse("admin:integrations_engineering_guide")).status_code == 403


def test_ops_reads_the_page_but_its_buttons_are_not_theirs(client, workspace, calls):
    integration = make_integration(workspace, "tesla")
    destination = event_services.destination_create(
        workspace=workspace, label="ERP", url="https://8.8.8.8/hook", actor=None
    )
    login(client, "ops", workspace, Role.OPS)
    html = client.get(page_url(workspace)).content.decode()
    assert "Test connection" not in html and "Discover now" not in html and "Send test event" not in html
    assert 'id="api-keys"' not in html  # API keys are Engineering's and the Admin's
    assert "ERP" in html and 'id="deliveries"' in html  # destinations and their log are readable
    assert client.post(reverse("admin:integrations_engineering_test", args=[integration.pk])).status_code == 403
    assert client.post(reverse("admin:integrations_engineering_discover", args=[integration.pk])).status_code == 403
    assert (
        client.post(reverse("admin:integrations_engineering_destination_test", args=[destination.pk])).status_code
        == 403
    )
    assert (
        client.post(
            reverse("admin:integrations_engineering_destination"),
            {"workspace": workspace.pk, "label": "x", "url": "https://8.8.8.8/x"},
        ).status_code
        == 403
    )
    assert calls == [] and Destination.objects.count() == 1


def test_an_engineer_reaches_nothing_of_another_workspace(client, engineer, calls):
    other = WorkspaceFactory()
    integration = make_integration(other, "tesla")
    destination = event_services.destination_create(workspace=other, label="Theirs", url="https://8.8.8.8/", actor=None)
    assert client.get(f"{reverse(PAGE)}?workspace={other.pk}").status_code == 404
    assert client.post(reverse("admin:integrations_engineering_test", args=[integration.pk])).status_code == 404
    assert client.post(reverse("admin:integrations_engineering_discover", args=[integration.pk])).status_code == 404
    assert (
        client.post(reverse("admin:integrations_engineering_destination_test", args=[destination.pk])).status_code
        == 404
    )
    assert (
        client.post(reverse("admin:integrations_engineering_api_key"), {"workspace": other.pk, "name": "x"}).status_code
        == 404
    )
    assert calls == [] and not ApiKey.objects.exists()
    html = client.get(reverse(PAGE)).content.decode()
    assert "Theirs" not in html and "tile-tesla" in html


def test_the_buttons_are_posts_with_a_csrf_token(engineer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    staff_user("eng2", engineer, Role.ENGINEERING)
    client.login(username="eng2", password=PASSWORD)
    integration = make_integration(engineer, "tesla")
    assert client.get(reverse("admin:integrations_engineering_test", args=[integration.pk])).status_code == 405
    assert client.post(reverse("admin:integrations_engineering_test", args=[integration.pk])).status_code == 403
    html = client.get(page_url(engineer)).content.decode()
    assert html.count('name="csrfmiddlewaretoken"') >= 4  # test, discover, create key, add destination


# -- API keys and destinations ------------------------------------------------------------------------------


def test_an_api_key_is_created_and_shown_once(client, engineer):
    response = client.post(
        reverse("admin:integrations_engineering_api_key"),
        {"workspace": engineer.pk, "name": "MDMS sync", "scopes": ["*:read"]},
    )
    assert response.status_code == 200
    raw = re.search(r'<code id="new-secret">(tpk_[^<]+)</code>', response.content.decode()).group(1)
    key = ApiKey.objects.get()
    assert key.name == "MDMS sync" and key.workspace == engineer and key.key_hash == api_key_hash(raw)
    assert key.created_by.username == "eng"
    again = client.get(page_url(engineer)).content.decode()
    assert raw not in again and key.display_prefix in again  # listed by its prefix, never again in full
    assert raw not in str(response.cookies)  # not carried in a message cookie either
    from rest_framework.test import APIClient

    assert APIClient().get("/v1/devices", HTTP_TEXTURE_API_KEY=raw).status_code == 200


def test_a_bad_api_key_form_says_why(client, engineer):
    response = client.post(
        reverse("admin:integrations_engineering_api_key"),
        {"workspace": engineer.pk, "name": "", "expires_at": "2001-01-01T00:00"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html and not ApiKey.objects.exists()
    response = client.post(
        reverse("admin:integrations_engineering_api_key"),
        {"workspace": engineer.pk, "name": "late", "expires_at": "2001-01-01T00:00", "scopes": ["*:read"]},
    )
    assert response.status_code == 400 and "The expiry date must be in the future." in response.content.decode()


def test_keys_are_read_only_unless_the_engineer_ticks_more(client, engineer):
    form = client.get(page_url(engineer)).content.decode()
    assert re.search(r'<input[^>]*value="\*:read"[^>]*checked', form) and 'value="commands:write"' in form
    url = reverse("admin:integrations_engineering_api_key")
    page = client.post(url, {"workspace": engineer.pk, "name": "reporting", "scopes": ["*:read"]})
    assert page.status_code == 200 and ApiKey.objects.get(name="reporting").scopes == ["*:read"]
    assert re.search(r"data-scopes>read-only<", page.content.decode())
    client.post(url, {"workspace": engineer.pk, "name": "dispatcher", "scopes": ["dispatch:write", "devices:read"]})
    assert ApiKey.objects.get(name="dispatcher").scopes == ["devices:read", "dispatch:write"]
    refused = client.post(url, {"workspace": engineer.pk, "name": "bad", "scopes": ["devices:delete"]})
    assert refused.status_code == 400 and "not one of the available choices" in refused.content.decode()
    none = client.post(url, {"workspace": engineer.pk, "name": "none"})
    assert none.status_code == 400 and not ApiKey.objects.filter(name__in=["bad", "none"]).exists()


def test_a_destination_is_created_with_its_secret_shown_once_and_private_addresses_refused(client, engineer, settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    settings.WEBHOOK_ALLOWED_HOSTS = []
    refused = client.post(
        reverse("admin:integrations_engineering_destination"),
        {"workspace": engineer.pk, "label": "Local", "url": "http://127.0.0.1:9000/hook"},
    )
    assert refused.status_code == 400 and "private, loopback or reserved" in refused.content.decode()
    response = client.post(
        reverse("admin:integrations_engineering_destination"),
        {"workspace": engineer.pk, "label": "ERP", "url": "https://8.8.8.8/hook"},
    )
    assert response.status_code == 200
    destination = Destination.objects.get()
    html = response.content.decode()
    assert f'<code id="new-secret">{destination.secret}</code>' in html
    assert destination.secret not in client.get(page_url(engineer)).content.decode()
    assert destination.event_types == [] and destination.created_by.username == "eng"


def test_send_test_event_reaches_the_receiver_and_shows_in_the_delivery_log(client, engineer, settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    with Receiver() as receiver:
        destination = event_services.destination_create(
            workspace=engineer, label="Receiver", url=receiver.url, actor=None, event_types=["device.discovered"]
        )
        response = client.post(
            reverse("admin:integrations_engineering_destination_test", args=[destination.pk]), follow=True
        )
    assert len(receiver.requests) == 1 and receiver.requests[0]["headers"]["Texture-Event-Type"] == "webhook.test"
    assert response.redirect_chain[-1][0] == f"{page_url(engineer)}#deliveries"
    html = response.content.decode()
    assert "Test event delivered to “Receiver”: HTTP 200" in html
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status == DeliveryStatus.SUCCEEDED
    log = re.search(r'<table class="eng-table" id="delivery-log">.*?</table>', html, re.S).group(0)
    assert 'data-status="succeeded" data-event-type="webhook.test"' in log and "HTTP 200" in log

    with Receiver(script=[500]) as receiver:
        Destination.objects.filter(pk=destination.pk).update(url=receiver.url)
        html = client.post(
            reverse("admin:integrations_engineering_destination_test", args=[destination.pk]), follow=True
        ).content.decode()
    assert "Test event to “Receiver” failed: HTTP 500." in html
    assert 'data-status="failed" data-event-type="webhook.test"' in html


# -- the Engineering home -----------------------------------------------------------------------------------


def test_the_engineering_home_summarizes_the_tiles_and_lists_the_roles_pages(client, engineer):
    tesla = make_integration(engineer, "tesla")
    WorkspaceIntegration.objects.filter(pk=tesla.pk).update(status="error", last_error="boom")
    make_integration(engineer, "emporia")
    html = client.get(reverse("admin:index") + "?role=engineering").content.decode()
    panel = re.search(r'<section id="panel-integrations".*?</section>', html, re.S).group(0)
    assert 'data-channel="tesla" data-health="error"' in panel
    assert 'data-channel="emporia" data-health="not_configured"' in panel
    assert 'data-channel="smartcar" data-health="disabled"' in panel
    assert "1 integration with an error" in panel
    for url_name in (
        "admin:integrations_engineering",
        "admin:texture_portal_apikey_changelist",
        "admin:events_destination_changelist",
        "admin:events_deliveryattempt_changelist",
        "admin:integrations_workspaceintegration_changelist",
        "admin:events_platformevent_changelist",
    ):
        assert f'href="{reverse(url_name)}"' in html, url_name


def test_support_has_no_engineering_home(client, workspace):
    login(client, "support", workspace, Role.CUSTOMER_SUPPORT)
    html = client.get(reverse("admin:index") + "?role=engineering").content.decode()
    assert 'id="panel-integrations"' not in html and reverse(PAGE) not in html


# -- a constant number of queries ---------------------------------------------------------------------------


def grow(workspace, *, devices: int, destinations: int, attempts_each: int, runs_each: int):
    """Devices of every OEM (bulk), integrations with their runs, destinations with their delivery log."""
    manufacturers = list(Manufacturer.objects.filter(integration_channel__in=IntegrationChannel.values))
    site = DeviceFactory(site__contact__workspace=workspace).site
    offset = Device.objects.count()
    Device.objects.bulk_create(
        [
            Device(
                workspace=workspace,
                site=site,
                contact=site.contact,
                manufacturer=manufacturers[i % len(manufacturers)],
                system_identifier=f"BULK-{offset + i:07d}",
                device_type=manufacturers[i % len(manufacturers)].device_types[0],
                state=[DeviceState.REGISTERED, DeviceState.ON_WORKSPACE, DeviceState.OFFLINE][i % 3],
            )
            for i in range(devices)
        ]
    )
    for channel in IntegrationChannel.values[:5]:
        integration = WorkspaceIntegration.objects.filter(workspace=workspace, channel=channel).first() or (
            make_integration(workspace, channel)
        )
        for i in range(runs_each):
            run(
                integration,
                RunKind.DISCOVERY if i % 2 else RunKind.TELEMETRY,
                RunStatus.SUCCEEDED,
                f"run {i}",
                minutes_ago=i,
            )
    for d in range(destinations):
        destination = event_services.destination_create(
            workspace=workspace, label=f"D{Destination.objects.count()}", url=f"https://8.8.8.{d + 1}/", actor=None
        )
        events = PlatformEvent.objects.bulk_create(
            [
                PlatformEvent(workspace=workspace, type="device.updated", key=f"k-{destination.pk}-{i}", data={})
                for i in range(attempts_each)
            ]
        )
        DeliveryAttempt.objects.bulk_create(
            [
                DeliveryAttempt(
                    workspace=workspace,
                    destination=destination,
                    event=event,
                    attempt=1,
                    status=DeliveryStatus.SUCCEEDED if i % 4 else DeliveryStatus.FAILED,
                    response_status=200 if i % 4 else 500,
                )
                for i, event in enumerate(events)
            ]
        )
    keys = ApiKey.objects.count()
    ApiKey.objects.bulk_create(
        [
            ApiKey(workspace=workspace, name=f"k{i}", prefix=f"p{keys + i:07d}", key_hash=f"h{keys + i}")
            for i in range(3)
        ]
    )


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_the_page_and_the_home_cost_the_same_queries_at_any_size(client, engineer):
    make_integration(engineer, "tesla")
    grow(engineer, devices=5, destinations=1, attempts_each=2, runs_each=1)
    small_page = queries(client, page_url(engineer))
    small_home = queries(client, reverse("admin:index") + "?role=engineering")

    grow(engineer, devices=3000, destinations=8, attempts_each=60, runs_each=12)
    assert Destination.objects.count() == 9 and DeliveryAttempt.objects.count() > 480
    assert queries(client, page_url(engineer)) == small_page
    assert queries(client, reverse("admin:index") + "?role=engineering") == small_home
    assert small_page <= 20, small_page
