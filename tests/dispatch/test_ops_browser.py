"""Ops' journey in a real browser (Debian's chromium through Playwright), offline: log in, land on the Ops
home, read the fleet's health, open the event in progress from it and read its timeline (the chart drawn by
the vendored Chart.js), narrow it to the failed devices, and follow one to its own timeline. Screenshots go to
docs/screenshots/ops-*.png (the README shows them)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from fleet.models import DeviceStateChange
from tests.dispatch.test_report_browser import drawn, offline
from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from tests.fleet.test_device_timeline import add_readings
from tests.ops_scene import bulk_fleet, running_event
from texture_portal.choices import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_ops_opens_an_event_in_progress_from_the_home_and_reads_its_timeline(live_server, reference_data, page):
    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric Co-op", timezone="America/Los_Angeles")
    program = make_program(
        workspace, slug="timber-ridge-2026-vpp", name="Timber Ridge 2026 VPP", timezone="America/Los_Angeles"
    )
    fleet = bulk_fleet(workspace, 240, prefix="TG")
    event = running_event(program, fleet.devices[:96], now=timezone.now(), name="Evening peak discharge")
    # the device Ops follows has a past: found, offline a while, back, and a reading every five minutes
    followed = fleet.devices[4]
    now = timezone.now()
    for hours_ago, before, after, reason in (
        (50, "registered", "on_workspace", "Found at Tesla by discovery"),
        (30, "on_workspace", "offline", "No telemetry for 45 minutes (Tesla reports every 5 minutes)"),
        (27, "offline", "on_workspace", "Reporting again"),
    ):
        DeviceStateChange.objects.create(
            workspace=workspace,
            device=followed,
            from_state=before,
            to_state=after,
            changed_at=now - timedelta(hours=hours_ago),
            reason=reason,
            source="task",
        )
    add_readings(followed, hours=26)
    staff_user("ops-browser", workspace, Role.OPS)
    outside = offline(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops-browser")
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_selector("#home-panels[data-role=ops]")
    for panel in ("events-in-progress", "fleet-states", "telemetry-freshness", "offline", "failed-commands"):
        assert page.locator(f"#panel-{panel}").is_visible(), panel
    assert page.locator("#fleet-total").inner_text() == "240"
    row = page.locator(f'#events-in-progress tr[data-event="{event.pk}"]')
    assert row.locator('[data-figure="targeted"]').inner_text() == "96"
    page.screenshot(path=str(SCREENSHOTS / "ops-home.png"), full_page=True)

    row.locator("a.event-timeline-link").click()
    page.wait_for_selector("#timeline")
    assert page.locator("#event-status").inner_text() == "In progress"
    page.wait_for_function("() => window.Chart && Chart.getChart('progress-chart') !== undefined")
    assert drawn(page, "progress-chart")
    assert page.locator('[data-figure="targeted"] .v').inner_text() == "96"
    assert page.locator(".et-item.is-milestone").filter(has_text="devices selected and commanded").count() == 1
    assert page.locator(".et-item.is-device").count() == 50  # the first page of 96
    assert page.locator("#timeline-pager").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "ops-event-timeline.png"), full_page=True)

    page.select_option("#id_outcome", "failed")
    page.click("#timeline-filters button[type=submit]")
    page.wait_for_selector("#timeline")
    failed = page.locator(".et-item.is-device")
    assert failed.count() == 12 and all(
        s == "failed" for s in failed.evaluate_all("els => els.map(e => e.dataset.status)")
    )
    assert "503" in failed.first.inner_text()

    failed.first.locator("a.font-semibold").click()
    page.wait_for_selector("#timeline")
    assert page.locator('.tl-item[data-kind="command"]').count() >= 1
    assert "503" in page.locator('.tl-item[data-kind="command"]').first.inner_text()
    assert page.locator('.tl-item[data-kind="event"]').count() >= 1
    assert page.locator('.tl-item[data-kind="readings"]').count() >= 10
    assert "America/Los_Angeles" in page.locator("#content-main").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "ops-device-timeline.png"), full_page=True)
    assert outside == []
