"""An event report and a program's rollups as a Program Lead reads them, in a real browser (Debian's chromium
through Playwright), offline: the vendored Chart.js draws the charts, the tabs and the Net at Meter / Battery
toggle switch what is shown, and the device table and the CSV are a click away."""

import pytest

from dispatch.reports import event_report_compile
from tests.dispatch.test_report_pages import event_with_history
from tests.factories import PASSWORD, staff_user
from texture_portal.choices import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


def drawn(page, canvas_id: str) -> bool:
    """Whether Chart.js drew something on the canvas (some pixel is not transparent)."""
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            if (!canvas || !window.Chart || !window.Chart.getChart(canvas)) return false;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) return true; }
            return false;
        }""",
        canvas_id,
    )


def test_a_program_lead_reads_an_event_report_and_the_programs_rollups(live_server, reference_data, page, tmp_path):
    program, event = event_with_history(n_devices=5)
    report = event_report_compile(event=event)
    staff_user("lead-browser", program.workspace, Role.PROGRAM_LEAD)
    outside = offline(page)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "lead-browser")
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.goto(f"{live_server.url}/admin/dispatch/dispatchevent/{event.pk}/change/")
    page.click("#event-report")

    page.wait_for_selector("#power-chart")
    page.wait_for_function("() => window.Chart !== undefined")
    assert drawn(page, "power-chart")
    net = f"{report.totals['net_at_meter']['delivered_kwh']:.2f}"
    assert page.locator("#net-delivered").inner_text() == net
    assert page.locator("#net-delivered").is_visible() and not page.locator("#battery-delivered").is_visible()
    chart_net = page.evaluate("() => Chart.getChart('power-chart').data.datasets[1].data")
    assert chart_net == report.series["net_at_meter"]["baseline_kw"]

    page.click("button[data-metric=battery]")  # the toggle: the battery's figures and curve
    assert page.locator("#battery-delivered").is_visible() and not page.locator("#net-delivered").is_visible()
    chart_battery = page.evaluate("() => Chart.getChart('power-chart').data.datasets[1].data")
    assert chart_battery == report.series["battery"]["baseline_kw"]
    page.screenshot(path=str(tmp_path / "performance.png"), full_page=True)

    page.click("button[data-tab=participation]")
    assert page.locator("#counts").is_visible() and not page.locator("#actions").is_visible()
    page.wait_for_function("() => Chart.getChart('participation-chart') !== undefined")
    assert drawn(page, "participation-chart")
    assert page.locator("#top-devices tbody tr").count() == 5
    with page.expect_download() as download:
        page.click("#csv")
    assert download.value.suggested_filename == f"event-{event.pk}-report.csv"
    page.click("#all-devices")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 5

    page.goto(f"{live_server.url}/admin/programs/program/{program.pk}/change/")
    page.click("#program-performance")
    page.wait_for_selector("#delivered-chart")
    page.wait_for_function("() => window.Chart && Chart.getChart('delivered-chart') !== undefined")
    assert drawn(page, "delivered-chart") and drawn(page, "health-chart")
    assert event.name in page.locator("#history").inner_text()
    page.screenshot(path=str(tmp_path / "program.png"), full_page=True)
    assert outside == []
