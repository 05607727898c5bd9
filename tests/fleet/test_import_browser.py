"""The bulk import as a person does it, in a real browser (Debian's chromium through Playwright)."""

import pytest

from fleet.choices import DeviceState
from fleet.models import Device
from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from tests.fleet.test_importing import ROW_A1, ROW_A2, csv_bytes
from texture_portal.choices import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_upload_preview_confirm_and_find_the_registered_systems(live_server, reference_data, page, tmp_path):
    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric Co-op")
    make_program(workspace, slug="vpp")
    staff_user("ops-browser", workspace, Role.OPS)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops-browser")
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.goto(f"{live_server.url}/admin/fleet/device/")
    page.click("text=Import fleet file")

    page.set_input_files(
        "input[type=file]", files=[{"name": "fleet.csv", "mimeType": "text/csv", "buffer": csv_bytes(ROW_A1, ROW_A2)}]
    )
    page.click("text=Upload and check")

    # the preview: every row marked, nothing written yet
    page.wait_for_selector("#confirm-import")
    assert page.locator("#import-preview tbody td.row-new").count() == 2
    assert not Device.objects.exists()
    page.screenshot(path=str(tmp_path / "preview.png"), full_page=True)

    page.click("text=Confirm import")
    page.wait_for_selector("text=Imported: 2 new")
    page.click("text=See the devices (Registered Systems)")
    page.wait_for_selector("#result_list")
    listed = page.locator("#result_list").inner_text()
    assert "TG-0001" in listed and "A2-0001" in listed
    assert listed.count("Registered System") == 2
    assert Device.objects.filter(workspace=workspace, state=DeviceState.REGISTERED).count() == 2
