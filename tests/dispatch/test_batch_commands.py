"""One command to many devices: every device with a tag (API) or staff's selection (admin), a command per
compatible device, the others skipped with why, and an aggregate status."""

import pytest
from django.urls import reverse

from dispatch import engine
from dispatch.models import BatchCommand, Command
from dispatch.services import command_set_status
from fleet.models import Manufacturer
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import PASSWORD, DeviceFactory, DeviceTagFactory, WorkspaceFactory, staff_user
from texture_portal.choices import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


@pytest.fixture
def feeder():
    workspace = WorkspaceFactory()
    tag = DeviceTagFactory(workspace=workspace, name="feeder:12")
    devices = {
        "battery": DeviceFactory(site__contact__workspace=workspace, state="on_workspace"),
        "charger": DeviceFactory(
            site__contact__workspace=workspace,
            manufacturer=Manufacturer.objects.get(slug="emporia"),
            device_type="charger",
        ),
        "monitoring": DeviceFactory(
            site__contact__workspace=workspace, manufacturer=Manufacturer.objects.get(slug="solaredge")
        ),
    }
    for device in devices.values():
        device.tags.add(tag)
    DeviceFactory(site__contact__workspace=workspace)  # no tag: not in the batch
    return workspace, devices


def test_a_command_to_every_device_with_a_tag(feeder):
    workspace, devices = feeder
    client = api_client_for(workspace)
    body = {"tag": "feeder:12", "command": "battery:set-reserve", "input": {"chargePercentage": 40}}
    created = client.post("/v1/batch-commands", body, format="json")
    assert created.status_code == 202, created.content
    data = created.json()
    assert data["status"] == "in_progress" and data["commands"] == {"total": 1, "pending": 1}
    assert sorted((s["deviceId"], s["reason"][:9]) for s in data["skipped"]) == sorted(
        [(devices["charger"].pk, "A charger"), (devices["monitoring"].pk, "SolarEdge")]
    )
    command = Command.objects.get(batch_id=data["id"])
    assert command.device_id == devices["battery"].pk and command.input == {"chargePercentage": 40}
    assert client.get("/v1/commands", {"batchId": data["id"]}).json()["data"][0]["id"] == command.pk
    command_set_status(command=command, status="sent")
    command_set_status(command=command, status="success")
    assert client.get(f"/v1/batch-commands/{data['id']}").json()["status"] == "succeeded"


def test_bad_batches_change_nothing(feeder):
    workspace, _ = feeder
    client = api_client_for(workspace)
    unknown = client.post(
        "/v1/batch-commands",
        {"tag": "feeder:99", "command": "battery:set-reserve", "input": {"chargePercentage": 40}},
        format="json",
    )
    assert "No device carries the tag “feeder:99”" in assert_error(unknown, 400, "rejected")["message"]
    misfit = client.post(
        "/v1/batch-commands",
        {"tag": "feeder:12", "command": "battery:set-reserve", "input": {"operatingMode": "idle"}},
        format="json",
    )
    assert any(name.startswith("input") for name in assert_error(misfit, 400, "validation_error")["fields"])
    assert not BatchCommand.objects.exists() and not Command.objects.exists()


def test_the_tick_hands_a_batchs_commands_to_workers(feeder, monkeypatch, django_capture_on_commit_callbacks):
    from dispatch.tasks import commands_send_task

    workspace, devices = feeder
    queued = []
    monkeypatch.setattr(commands_send_task, "apply_async", lambda args, *_, **kwargs: queued.extend(args[0]))
    client = api_client_for(workspace)
    client.post(
        "/v1/batch-commands",
        {"tag": "feeder:12", "command": "battery:set-reserve", "input": {"chargePercentage": 40}},
        format="json",
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.dispatch_tick()
    assert queued == list(Command.objects.values_list("pk", flat=True))


def test_ops_send_a_command_to_selected_devices_from_the_device_list(client, feeder):
    workspace, devices = feeder
    staff_user("ops", workspace, Role.OPS)
    staff_user("support", workspace, Role.CUSTOMER_SUPPORT)
    url = reverse("admin:fleet_device_changelist")
    selection = {"action": "send_command", "_selected_action": [devices["battery"].pk, devices["charger"].pk]}
    assert client.login(username="ops", password=PASSWORD)
    form = client.post(url, selection)
    assert form.status_code == 200 and "2 devices selected" in form.content.decode()
    misfit = client.post(url, {**selection, "apply": "1", "command": "battery:set-reserve", "input": '{"x": 1}'})
    assert "Does not fit battery:set-reserve" in misfit.content.decode() and not BatchCommand.objects.exists()
    done = client.post(
        url,
        {
            **selection,
            "apply": "1",
            "command": "charger:set-operating-mode",
            "input": '{"operatingMode": "stop-charging"}',
        },
        follow=True,
    )
    assert any("1 commands queued, 1 devices skipped" in str(m) for m in done.context["messages"])
    batch = BatchCommand.objects.get()
    assert list(batch.commands.values_list("device_id", flat=True)) == [devices["charger"].pk]
    page = client.get(reverse("admin:dispatch_batchcommand_change", args=[batch.pk]))
    assert page.status_code == 200 and "in progress" in page.content.decode()
    client.logout()
    assert client.login(username="support", password=PASSWORD)
    client.post(
        url,
        {
            **selection,
            "apply": "1",
            "command": "charger:set-operating-mode",
            "input": '{"operatingMode": "stop-charging"}',
        },
    )
    assert BatchCommand.objects.count() == 1  # Customer Support sends nothing
