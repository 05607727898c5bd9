"""Customer support on a call, in a real browser (Debian's chromium through Playwright), offline: from the
Support home, the caller's account number finds the customer; the customer page draws the sites with Leaflet
over the bundled states outline; support reads why the charger is offline; the search box of every page finds
the customer by a device's serial and opens the page on that device. Screenshots: docs/screenshots/support-*.png."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import PASSWORD, staff_user
from tests.fleet.customer_scene import customer_scene
from texture_portal.choices import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


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


@pytest.fixture(autouse=True)
def clean_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_support_finds_a_customer_by_account_number_and_by_serial_and_reads_why_a_device_is_offline(
    live_server, reference_data, page
):
    scene = customer_scene()
    staff_user("support-browser", scene.workspace, Role.CUSTOMER_SUPPORT)
    outside = offline(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "support-browser")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form [type=submit]")

    # the Support home: the search form first
    page.wait_for_selector("#support-search-q")
    page.fill("#support-search-q", "100214")  # the account number without its TRE- prefix
    page.screenshot(path=str(SCREENSHOTS / "support-home.png"), full_page=True)
    page.press("#support-search-q", "Enter")

    page.wait_for_selector("#customer-results")
    rows = page.locator("#customer-results tbody tr")
    assert rows.count() == 1
    assert "Account number TRE-100214" in rows.first.locator(".match-list").text_content()
    page.screenshot(path=str(SCREENSHOTS / "support-search-results.png"), full_page=True)
    page.click(".customer-result-link")

    # the customer page: the map drawn offline, the states outline under the sites
    page.wait_for_selector("#customer-map.leaflet-container")
    page.wait_for_selector("#customer-map[data-states-loaded]")
    assert int(page.get_attribute("#customer-map", "data-states-loaded")) >= 51
    assert page.locator("#customer-map path.us-state").count() >= 51
    assert page.locator("#customer-map path.site-marker").count() == 2  # the home and the cabin
    assert page.locator("#customer-reference").inner_text() == "TRE-100214"

    offline_card = page.locator(f"#device-{scene.offline.pk}")
    assert offline_card.locator(".state-pill").inner_text() == "Offline"
    headline = offline_card.locator(".device-headline").inner_text()
    assert headline.startswith("Offline for 3\xa0hours, since ")
    why = offline_card.locator(".device-explanations").inner_text()
    assert "this device lost its own connection" in why
    assert "device offline (not connected to Emporia cloud)" in why
    registered = page.locator(f"#device-{scene.not_found.pk} .device-headline").inner_text()
    assert registered == "Not live yet: serial not found at FranklinWH"
    page.screenshot(path=str(SCREENSHOTS / "support-customer.png"), full_page=True)
    offline_card.screenshot(path=str(SCREENSHOTS / "support-offline-device.png"))

    # the search box of every page (Ctrl+K): a device's serial opens the page on that device
    page.keyboard.press("Control+k")
    page.wait_for_selector("#search-input-command", state="visible")
    page.fill("#search-input-command", "A230968745")
    page.locator("#search-input-command").dispatch_event("keyup")
    result = page.locator("#command-results-list a", has_text="Carmen Chen · TRE-100214")
    result.wait_for()
    assert "Device serial A230968745 (Emporia)" in result.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "support-command-search.png"))
    result.click()
    page.wait_for_selector(f"#device-{scene.offline.pk}.is-highlighted")
    assert f"device={scene.offline.pk}" in page.url

    assert outside == []
