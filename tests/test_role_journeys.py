"""Each role's daily work on the demo's own data, in a real browser (Debian's chromium through Playwright),
offline: the demo is seeded as `make demo` seeds it (yesterday's test event run against the simulator, one user
per role), the portal is served by a live server, and each role logs in, lands on its home and does the job the
implementation guide trains it for. The screenshots are the README's (docs/screenshots/)."""

import csv
import io
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine

from dispatch import engine
from dispatch.choices import DispatchEventStatus
from dispatch.models import DispatchEvent, EventReport
from fleet.choices import DeviceState
from fleet.models import Alert, Device
from integrations.models import WorkspaceIntegration
from integrations.services import telemetry_sync
from texture_portal.demo.rehearsal import REHEARSAL_EVENT_NAME
from texture_portal.demo.seed import DEMO_FLEET_CSV, DEMO_OFFLINE_DEVICES, seed_demo
from texture_portal.demo.webhooks import DEMO_DESTINATION_LABEL, RECEIVER_PATH
from texture_portal.events.models import Destination
from texture_portal.testing.simulator import running_simulator

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PASSWORD = "demo-journeys-123"


def offline(page) -> list[str]:
    """Refuse (and remember) every request that would leave the portal."""
    outside: list[str] = []

    def route(route):
        if route.request.url.startswith(("http://localhost", "http://127.0.0.1")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return outside


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_selector("#home-panels")


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"demo-{name}.png"), full_page=False)


@pytest.fixture
def demo(settings, reference_data, live_server):
    from django.core.cache import cache

    from integrations.ratelimit import rate_limiter

    cache.clear()
    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    # the demo's settings: its own webhook receiver, on the live server's address
    settings.DEMO_WEBHOOK_RECEIVER = True
    settings.WEBHOOK_ALLOWED_HOSTS = [urlsplit(live_server.url).netloc]
    return seed_demo(password=PASSWORD)


def program_lead_journey(page, live_server, demo) -> None:
    """Opens yesterday's event report from the home and downloads its CSV, whose rows add up to the report."""
    log_in(page, live_server, "programlead")
    assert page.locator("#home-panels").get_attribute("data-role") == "program_lead"
    shot(page, "program-lead-home")
    page.click("#home-programs >> text=Performance and reports")
    page.wait_for_function("() => window.Chart && Chart.getChart('delivered-chart') !== undefined")
    page.click(f"#history >> text={REHEARSAL_EVENT_NAME}")
    page.wait_for_selector("#power-chart")
    page.wait_for_function("() => window.Chart && Chart.getChart('power-chart') !== undefined")
    shot(page, "program-lead-report")

    event = DispatchEvent.objects.get(name=REHEARSAL_EVENT_NAME)
    report = EventReport.objects.get(event=event)
    page.click("button[data-tab=participation]")
    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == report.counts["targeted"]
    delivered = sum(float(row["batteryDeliveredKwh"]) for row in rows if row["batteryDeliveredKwh"])
    assert delivered == pytest.approx(report.totals["battery"]["delivered_kwh"], abs=0.01)
    assert delivered > 0


def support_journey(page, live_server, demo) -> None:
    """Finds the customer whose charger dropped offline by account number (without its prefix) and by the
    charger's serial, and reads why it is offline."""
    charger = Device.objects.get(workspace=demo.workspace, state=DeviceState.OFFLINE)
    account = charger.contact.reference_id
    log_in(page, live_server, "support")
    assert page.locator("#home-panels").get_attribute("data-role") == "customer_support"
    page.fill("#support-search-q", account.split("-")[-1])  # the account number without its TRE- prefix
    shot(page, "support-home")
    page.press("#support-search-q", "Enter")
    page.wait_for_selector("#customer-results")
    page.locator("#customer-results tbody tr", has_text=account).locator(".customer-result-link").first.click()
    page.wait_for_selector("#customer-map[data-states-loaded]")
    assert page.locator("#customer-reference").inner_text() == account
    card = page.locator(f"#device-{charger.pk}")
    assert card.locator(".state-pill").inner_text() == "Offline"
    assert card.locator(".device-headline").inner_text().startswith("Offline for ")
    assert "No telemetry since" in card.inner_text()  # the offline sweep's reason, as recorded
    shot(page, "support-customer")

    page.keyboard.press("Control+k")  # the search box of every page, by serial
    page.wait_for_selector("#search-input-command", state="visible")
    page.fill("#search-input-command", charger.system_identifier)
    page.locator("#search-input-command").dispatch_event("keyup")
    result = page.locator("#command-results-list a", has_text=account)
    result.first.wait_for()
    result.first.click()
    page.wait_for_selector(f"#device-{charger.pk}.is-highlighted")


def ops_journey(page, live_server, demo, event) -> None:
    """From the home's events in progress to the event's timeline; then acknowledges the alert the rules raised
    when the charger went offline."""
    log_in(page, live_server, "ops")
    assert page.locator("#home-panels").get_attribute("data-role") == "ops"
    shot(page, "ops-home")
    page.click(f"#panel-events-in-progress tr[data-event='{event.pk}'] a.event-timeline-link")
    page.wait_for_selector("#timeline")
    assert "In progress" in page.locator("#event-status").inner_text()
    shot(page, "ops-event-timeline")

    offline = Alert.objects.get(workspace=demo.workspace, subtype="DEVICE_OFFLINE", status="OPEN")
    page.goto(f"{live_server.url}/admin/?role=ops")
    needing = int(page.locator("[data-figure=alerts-needing-attention] .figure-value").inner_text())
    assert needing == Alert.objects.filter(workspace=demo.workspace, status="OPEN").count() >= 1
    page.click("[data-figure=alerts-needing-attention]")  # the rows behind the number
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == needing
    page.locator("#result_list tbody tr", has_text=offline.device_serial_number).locator("input.action-select").check()
    page.select_option("select[name=action]", "acknowledge")
    page.click("button[name=index]")
    page.wait_for_selector("#result_list, .messagelist, [role=alert]")
    offline.refresh_from_db()
    assert offline.status == "ACKNOWLEDGED" and offline.acknowledged_by.username == "ops"
    shot(page, "ops-alerts")


def engineering_journey(page, live_server, demo) -> None:
    """Creates an API key and sees the demo's destination deliver a test event to the demo's receiver."""
    log_in(page, live_server, "engineering")
    assert page.locator("#home-panels").get_attribute("data-role") == "engineering"
    page.click("#home-deliveries >> text=Engineering page")
    page.wait_for_selector("#tile-tesla")
    page.fill("#api-key-form input[name=name]", "MDMS sync")
    page.click("#api-key-form button[name=create-api-key]")
    key = page.locator("#shown-once #new-secret").inner_text().strip()
    assert key.startswith("tpk_")
    destination = Destination.objects.get(workspace=demo.workspace, label=DEMO_DESTINATION_LABEL)
    page.locator(f"tr[data-destination='{destination.pk}'] button[name=send-test]").click()
    page.wait_for_selector(f"text=Test event delivered to “{destination.label}”: HTTP 200")
    assert page.locator("#delivery-log tbody tr").first.get_attribute("data-status") == "succeeded"
    page.locator("#deliveries").scroll_into_view_if_needed()
    shot(page, "engineering-delivery")


def test_each_role_does_its_daily_work_on_the_demo_data(live_server, demo, page, settings):
    outside = offline(page)
    program_lead_journey(page, live_server, demo)
    support_journey(page, live_server, demo)

    # the demo's upcoming event, started by the engine at its time (the clock moved there, the simulator's with it)
    event = DispatchEvent.objects.get(program=demo.program, status=DispatchEventStatus.SCHEDULED)
    with running_simulator(frozen_at=event.starts_at) as sim, time_machine.travel(event.starts_at, tick=True):
        sim.state.load_fleet_csv(str(DEMO_FLEET_CSV))
        for oem, serial in DEMO_OFFLINE_DEVICES:  # as `run_oem_simulator` serves the demo: that charger still off
            sim.state.set_online(oem, serial, False)
        settings.OEM_BASE_URLS = sim.base_urls()
        for integration in WorkspaceIntegration.objects.filter(workspace=demo.workspace, enabled=True):
            telemetry_sync(integration=integration)
        assert not Alert.objects.filter(subtype="CREDENTIALS_REFUSED").exists()  # a fresh simulator takes them
        engine.dispatch_tick(now=event.starts_at)
        event.refresh_from_db()
        assert event.status == DispatchEventStatus.IN_PROGRESS
        ops_journey(page, live_server, demo, event)

    assert Destination.objects.get(label=DEMO_DESTINATION_LABEL).url == f"{live_server.url}{RECEIVER_PATH}"
    engineering_journey(page, live_server, demo)
    assert outside == []
