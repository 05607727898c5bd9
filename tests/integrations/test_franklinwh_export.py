"""FranklinWH's grid-export path: a discharge sets `gridFeedMaxFlag` through `setPowerControlV2` (read-modify-write,
every field read echoed), 2 with enableGridInteraction (the battery may export), 1 without (solar only)."""

import pytest
import requests

from integrations.adapters import CommandRejected
from integrations.adapters.base import ALREADY_IN_EFFECT
from integrations.simulator.franklinwh import power_control
from tests.integrations.conftest import adapter
from tests.integrations.test_adapters import ref, writes

SET_MODE = "battery:set-operating-mode"
EXPORTING = {"operatingMode": "discharge", "minimumBatteryReserve": 15, "enableGridInteraction": True}
HOME_ONLY = {"operatingMode": "discharge", "minimumBatteryReserve": 15}


@pytest.fixture
def gateway(sim):
    device = sim.state.add_device("franklinwh", "1005000060200001", kind="battery", soc=62.0)
    franklin = adapter(sim, "franklinwh")
    return franklin, ref(franklin.discover()[0]), device


def test_a_grid_discharge_sets_flag_2_and_echoes_the_other_fields(sim, gateway):
    franklin, found, device = gateway
    power_control(device).update(gridFeedMax=7.5, globalGridDischargeMax=4)
    franklin.send_command(found, SET_MODE, EXPORTING)
    assert power_control(device) == {"gridFeedMaxFlag": 2, "gridFeedMax": 7.5, "globalGridDischargeMax": 4}
    assert device.mode == "time_of_use" and device.reserve == 15
    assert writes(sim, "setPowerControlV2") == 1


def test_a_discharge_without_grid_interaction_sets_flag_1_and_skips_a_write_in_place(sim, gateway):
    franklin, found, device = gateway
    power_control(device)["gridFeedMaxFlag"] = 2
    franklin.send_command(found, SET_MODE, HOME_ONLY)
    assert power_control(device)["gridFeedMaxFlag"] == 1
    assert writes(sim, "setPowerControlV2") == 1
    calls = franklin.requests_made
    franklin.send_command(found, SET_MODE, HOME_ONLY)  # the flag is already 1: read, not written
    assert writes(sim, "setPowerControlV2") == 1
    assert franklin.requests_made - calls == 3  # profile list, power-control read, TOU update
    assert franklin.requests_made - calls <= franklin.calls_per_command


def test_a_second_identical_grid_discharge_writes_no_power_control(sim, gateway):
    franklin, found, device = gateway
    franklin.send_command(found, SET_MODE, EXPORTING)
    franklin.send_command(found, SET_MODE, EXPORTING)
    assert writes(sim, "setPowerControlV2") == 1
    assert power_control(device)["gridFeedMaxFlag"] == 2


def test_other_modes_leave_the_export_setting_alone(sim, gateway):
    franklin, found, device = gateway
    for payload in ({"operatingMode": "charge", "enableGridInteraction": True}, {"operatingMode": "reset"}):
        franklin.send_command(found, SET_MODE, payload)
    franklin.send_command(found, "battery:set-reserve", {"chargePercentage": 40})
    assert sim.state.requests_by_path[("franklinwh", "GET", "/hes-gateway/terminal/tou/getPowerControlSetting")] == 0
    assert power_control(device)["gridFeedMaxFlag"] == 1 and writes(sim, "setPowerControlV2") == 0


def test_command_applied_checks_the_export_flag_of_a_discharge(sim, gateway):
    franklin, found, device = gateway
    before = writes(sim)
    assert franklin.command_applied(found, SET_MODE, EXPORTING) is False
    assert writes(sim) == before  # reads only
    franklin.send_command(found, SET_MODE, EXPORTING)
    assert franklin.command_applied(found, SET_MODE, EXPORTING) is True
    # the same mode and reserve, but this one keeps the battery for the home: the flag tells them apart
    assert franklin.command_applied(found, SET_MODE, HOME_ONLY) is False


def test_resume_writes_only_what_is_not_in_place(sim, gateway):
    franklin, found, device = gateway
    # the worker died after the export flag, before the TOU update
    power_control(device)["gridFeedMaxFlag"] = 2
    result = franklin.command_resume(found, SET_MODE, EXPORTING)
    assert writes(sim, "setPowerControlV2") == 0 and writes(sim, "updateTouMode") == 1
    assert result.message.startswith("taken over: work mode time_of_use")
    assert franklin.command_applied(found, SET_MODE, EXPORTING) is True
    again = franklin.command_resume(found, SET_MODE, EXPORTING)
    assert again.message == ALREADY_IN_EFFECT
    assert writes(sim, "setPowerControlV2") == 0 and writes(sim, "updateTouMode") == 1
    # the TOU update in place, the flag not: only the flag is written
    power_control(device)["gridFeedMaxFlag"] = 1
    franklin.command_resume(found, SET_MODE, EXPORTING)
    assert writes(sim, "setPowerControlV2") == 1 and writes(sim, "updateTouMode") == 1


def test_the_simulator_refuses_a_power_control_write_missing_a_read_field(sim, gateway):
    franklin, found, device = gateway
    with pytest.raises(CommandRejected, match="globalGridDischargeMax missing"):
        franklin.call("POST", "tou/setPowerControlV2", found.serial, json={"gridFeedMaxFlag": 2, "gridFeedMax": -1})
    assert power_control(device)["gridFeedMaxFlag"] == 1
    # FranklinWH's shape: HTTP 200, the error in the body's code
    response = requests.post(
        f"{sim.url}/franklinwh/hes-gateway/terminal/tou/setPowerControlV2",
        params={"gatewayId": found.serial},
        headers={"loginToken": franklin.token},
        json={"gridFeedMaxFlag": 2},
        timeout=1,
    )
    assert response.status_code == 200
    assert response.json()["code"] == 400 and response.json()["success"] is False


@pytest.mark.parametrize(("payload", "exports"), [(EXPORTING, True), (HOME_ONLY, False)])
def test_the_batterys_power_follows_the_flag(sim, payload, exports):
    """The simulated gateway does what the flag says: with 2 a discharge pushes its full power to the grid, with
    1 it serves the home's load only (and what the adapter reads back shows it)."""
    device = sim.state.add_device(
        "franklinwh", "1005000060200002", kind="battery", soc=80.0, solar_peak_w=0.0, base_load_w=900.0
    )
    franklin = adapter(sim, "franklinwh")
    found = ref(franklin.discover()[0])
    franklin.send_command(found, SET_MODE, payload)
    now = sim.state.clock.now()
    assert (device.grid_w(now) < 0) is exports  # exporting: the grid meter runs backwards
    assert device.battery_w(now) == (device.max_power_w if exports else device.load_w(now))
    reading = franklin.fetch_telemetry(found)
    assert reading.charge_rate_w == pytest.approx(device.battery_w(sim.state.clock.now()), abs=60)
