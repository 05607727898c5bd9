"""A driver connects their own Smartcar account through Texture Connect in a real browser (Debian's chromium
through Playwright, headless, every host but the portal and the simulator unreachable): the link → their
details → the manufacturer → the simulated Smartcar Connect sign-in and consent → back to the integrator's
redirect URL, and their vehicle is a Device on Workspace with telemetry. Also a denied consent and an expired
link, each a clear page. Screenshots go to docs/screenshots/connect-*.png (the README shows them)."""

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Contact, Device, TelemetryReading
from integrations.choices import ConnectSessionStatus
from integrations.connect import services as connect
from integrations.models import ConnectSession, CustomerConnection
from integrations.simulator import oauth as sim_oauth
from tests.dispatch.test_report_browser import offline
from tests.factories import WorkspaceFactory
from tests.integrations.test_services import make_integration

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DRIVER, PASSWORD, VIN = "maria@example.com", "maria-smartcar-password", "1HGCM82633A004352"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"connect-{name}.png"), full_page=True)


@pytest.fixture
def workspace(reference_data, sim):
    sim_oauth.customer_add(sim.state, "smartcar", DRIVER, PASSWORD)
    sim.state.add_device("smartcar", VIN, kind="vehicle", account=DRIVER, soc=62.0)
    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric Co-op")
    make_integration(workspace, "smartcar")
    make_integration(workspace, "tesla")  # two on offer: the picker is shown
    return workspace


def session_for(workspace, live_server):
    return connect.connect_session_create(
        workspace=workspace,
        actor=None,
        redirect_url=f"{live_server.url}/connect/done",
        reference_id="EV-7731",
        client_name="Timber Ridge EV Rewards",
    )


def details_and_manufacturer(page, live_server, session) -> None:
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the customer opens the link from a text
    page.goto(live_server.url + connect.connect_link_path(session))
    page.wait_for_selector("#cx-details")
    assert page.locator("#cx-client").inner_text() == "Timber Ridge EV Rewards"
    for name, value in {
        "first_name": "Maria",
        "last_name": "Okafor",
        "email": "maria@example.com",
        "street_one": "88 Ponderosa Dr",
        "city": "Bend",
        "state": "OR",
        "postal_code": "97702",
    }.items():
        page.fill(f"#id_{name}", value)
    shot(page, "details")
    page.click("#cx-details-next")
    page.wait_for_selector("#cx-manufacturer")
    page.check("#cx-channel-smartcar")
    shot(page, "manufacturer")
    page.click("#cx-manufacturer-next")
    page.wait_for_selector("#sim-consent")  # the simulated Smartcar Connect
    page.fill("#sim-username", DRIVER)
    page.fill("#sim-password", PASSWORD)


def test_a_driver_connects_their_vehicle_in_the_browser(live_server, sim, workspace, page):
    outside = offline(page)
    session = session_for(workspace, live_server)
    details_and_manufacturer(page, live_server, session)
    shot(page, "consent")
    page.click("#sim-allow")

    page.wait_for_selector("#cx-done")
    assert page.locator("#cx-done").get_attribute("data-status") == "connected"
    shot(page, "done")
    query = parse_qs(urlsplit(page.url).query)
    assert query["status"] == ["connected"] and query["sessionId"] == [str(session.public_id)]
    contact = Contact.objects.get(pk=query["customerId"][0])
    assert (contact.first_name, contact.last_name, contact.reference_id) == ("Maria", "Okafor", "EV-7731")
    device = Device.objects.get(workspace=workspace, system_identifier=VIN)
    assert device.state == DeviceState.ON_WORKSPACE and device.contact_id == contact.pk
    assert TelemetryReading.objects.get(device=device).charge_percentage == 62.0
    assert CustomerConnection.objects.get(contact=contact).channel == "smartcar"
    assert ConnectSession.objects.get(pk=session.pk).status == ConnectSessionStatus.CONNECTED
    assert outside == []


def test_a_denied_consent_and_an_expired_link_end_on_clear_pages(live_server, sim, workspace, page):
    outside = offline(page)
    session = session_for(workspace, live_server)
    details_and_manufacturer(page, live_server, session)
    page.click("#sim-deny")

    page.wait_for_selector("#cx-outcome")
    assert page.locator("#cx-outcome").get_attribute("data-status") == "denied"
    assert "You declined" in page.locator("#cx-outcome-message").inner_text()
    shot(page, "denied")
    assert not Device.objects.exists() and not CustomerConnection.objects.exists()
    # "Try again" goes back to the start of the same link
    page.click("#cx-retry")
    page.wait_for_selector("#cx-details")

    ConnectSession.objects.filter(pk=session.pk).update(expires_at=timezone.now())
    page.goto(live_server.url + connect.connect_link_path(session))
    page.wait_for_selector("#cx-problem")
    assert "This link has expired" in page.locator("#cx-problem h1").inner_text()
    shot(page, "expired")
    assert outside == []
