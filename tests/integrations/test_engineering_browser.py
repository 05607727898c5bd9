"""An engineer's journey in a real browser (Debian's chromium through Playwright), with every host but the portal
unreachable: from the Engineering home to the engineering page, a connection test against the OEM simulator, an
API key created (shown once, and it works), a destination pointed at the demo's own webhook receiver, a test event
sent and its delivery seen in the log. Screenshots go to docs/screenshots/engineering-*.png (the README shows
them)."""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.core.cache import cache

from tests.dispatch.test_report_browser import offline
from tests.factories import PASSWORD, staff_user
from tests.integrations.test_services import make_device, make_integration
from texture_portal.choices import Role
from texture_portal.demo import webhooks as demo
from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def demo_receiver(live_server, settings):
    """The demo's settings: the receiver on, and the portal's own host:port the one private address allowed."""
    settings.DEMO_WEBHOOK_RECEIVER = True
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    settings.WEBHOOK_ALLOWED_HOSTS = [urlsplit(live_server.url).netloc]
    cache.delete(demo.CACHE_KEY)
    yield f"{live_server.url}{demo.RECEIVER_PATH}"
    cache.delete(demo.CACHE_KEY)


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"engineering-{name}.png"), full_page=True)


def test_engineering_creates_a_key_and_a_destination_and_sees_a_test_delivery(
    live_server, reference_data, sim, demo_receiver, page
):
    from tests.factories import WorkspaceFactory

    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric Co-op", name="production")
    staff_user("engineer", workspace, Role.ENGINEERING)
    sim.state.add_device("tesla", "TG100000000701", kind="battery")
    make_integration(workspace, "tesla")
    make_integration(workspace, "franklinwh", enabled=False)
    make_device(workspace, "tesla", "TG100000000701")
    outside = offline(page)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "engineer")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit], input[type=submit]")

    # the Engineering home: the tiles' summary, then the engineering page
    page.wait_for_selector("#panel-integrations")
    assert page.locator("#home-integration-tiles [data-channel]").count() == 7
    shot(page, "home")
    page.click("#home-deliveries >> text=Engineering page")
    page.wait_for_selector("#tile-tesla")
    assert page.locator(".eng-tile").count() == 7

    # test the Tesla connection against the OEM simulator
    page.locator("#tile-tesla button[name=test]").click()
    page.wait_for_selector("text=Tesla Fleet API: Connected")
    assert page.locator("#tile-tesla").get_attribute("data-health") == "connected"

    # an API key, shown once, that the API accepts
    page.fill("#api-key-form input[name=name]", "MDMS sync")
    page.click("#api-key-form button[name=create-api-key]")
    key = page.locator("#shown-once #new-secret").inner_text().strip()
    assert key.startswith("tpk_")
    shot(page, "api-key")
    answer = requests.get(f"{live_server.url}/v1/devices", headers={"Texture-Api-Key": key}, timeout=10)
    assert answer.status_code == 200 and answer.json()["data"][0]["systemIdentifier"] == "TG100000000701"

    # a destination pointing at the demo's receiver (its address is on the page), and a test event
    assert page.locator("#demo-receiver-url").inner_text() == demo_receiver
    page.fill("#destination-form input[name=label]", "Utility ERP (demo receiver)")
    page.fill("#destination-form input[name=url]", demo_receiver)
    page.click("#destination-form button[name=create-destination]")
    assert page.locator("#shown-once #new-secret").inner_text().startswith("whsec_")
    destination = Destination.objects.get()
    page.locator(f"tr[data-destination='{destination.pk}'] button[name=send-test]").click()
    page.wait_for_selector("text=Test event delivered to “Utility ERP (demo receiver)”: HTTP 200")

    row = page.locator("#delivery-log tbody tr").first
    assert row.get_attribute("data-status") == "succeeded" and row.get_attribute("data-event-type") == "webhook.test"
    assert '"signature": "verified"' in row.inner_text()  # the receiver's answer, as logged
    assert "webhook.test" in page.locator("#demo-receiver-log").inner_text()
    assert "verified" in page.locator("#demo-receiver-log").inner_text()
    page.locator("#deliveries").scroll_into_view_if_needed()
    shot(page, "delivery")
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status, attempt.response_status, attempt.destination_id) == (
        DeliveryStatus.SUCCEEDED,
        200,
        destination.pk,
    )

    # the integrator guide, readable in the portal
    page.click("#integrators-guide-link")
    page.wait_for_selector("#integrators-guide")
    assert "Texture-Signature" in page.locator("#integrators-guide").inner_text()
    assert outside == []
