"""Each role's daily work on the demo's own data, in a real browser (Debian's chromium through Playwright),
offline: the demo is seeded as `make demo` seeds it (yesterday's test event run against the simulator, one user
per role), the portal is served by a live server, and each role logs in, lands on its home and does the job the
implementation guide trains it for. The screenshots are the README's (docs/screenshots/)."""

import csv
import io
from pathlib import Path

import pytest

from dispatch.models import DispatchEvent, EventReport
from texture_portal.demo.rehearsal import REHEARSAL_EVENT_NAME
from texture_portal.demo.seed import seed_demo

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
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


@pytest.fixture
def demo(settings, reference_data):
    from integrations.ratelimit import rate_limiter

    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
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


def test_each_role_does_its_daily_work_on_the_demo_data(live_server, demo, page):
    outside = offline(page)
    program_lead_journey(page, live_server, demo)
    assert outside == []
