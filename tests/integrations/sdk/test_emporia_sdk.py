"""pyemvue (magico13/PyEmVue) against the simulator in the SDK's own simulator mode: `PyEmVue.login_simulator(
host)` points every call at `host` and sends the fixed `authtoken: simulator` instead of a Cognito id token
(the simulator reads it as its demo account). Public calls only: customer, devices, devices' status, usage,
charger control and a re-read.
"""

import pytest
import requests
from pyemvue import PyEmVue
from pyemvue.enums import Scale, Unit

SERIAL = "A2107A04B5C3D"


@pytest.fixture
def charger(sim):
    return sim.state.add_device(
        "emporia", SERIAL, kind="charger", plugged_in=True, charger_on=False, charging_rate_a=16.0,
        max_charging_rate_a=40.0,
    )  # fmt: skip


def signed_in(sim) -> PyEmVue:
    vue = PyEmVue()
    assert vue.login_simulator(f"{sim.url}/emporia", username="demo") is True
    return vue


def test_customer_devices_status_usage_control_and_re_read(sim, charger):
    vue = signed_in(sim)
    assert (vue.customer.email, vue.customer.customer_gid) == ("demo@example.com", 4242)

    devices = vue.get_devices()
    ours = [d for d in devices if d.manufacturer_id == SERIAL]
    assert len(ours) == 1 and ours[0].ev_charger is not None
    gid = ours[0].device_gid

    _, chargers = vue.get_devices_status(devices)
    (status,) = [c for c in chargers if c.device_gid == gid]
    assert (status.charger_on, status.charging_rate, status.max_charging_rate) == (False, 16, 40)
    assert ours[0].connected is True  # `devicesConnected`, which the status call copies onto the devices

    usage = vue.get_device_list_usage([gid], instant=None, scale=Scale.MINUTE.value, unit=Unit.KWH.value)
    assert usage[gid].channels["1,2,3"].usage == 0

    updated = vue.update_charger(status, on=True, charge_rate=24)
    assert (updated.charger_on, updated.charging_rate) == (True, 24)

    _, chargers = vue.get_devices_status()
    (status,) = [c for c in chargers if c.device_gid == gid]
    assert (status.charger_on, status.charging_rate, status.status) == (True, 24, "Charging")
    usage = vue.get_device_list_usage([gid], instant=None, scale=Scale.MINUTE.value, unit=Unit.KWH.value)
    # 24 A at 240 V for a minute, in kWh
    assert usage[gid].channels["1,2,3"].usage == pytest.approx(24 * 240 / 1000 / 60, rel=1e-3)
    assert (charger.charger_on, charger.charging_rate_a) == (True, 24.0)


def test_a_refused_token_and_a_charger_not_on_the_account_are_401s(sim, charger):
    vue = signed_in(sim)
    _, chargers = vue.get_devices_status()
    stranger = chargers[0]
    stranger.device_gid = 999_999  # no such charger on this account: Emporia answers 401, as PyEmVue's simulator
    with pytest.raises(requests.HTTPError) as not_ours:
        vue.update_charger(stranger, on=True)
    assert not_ours.value.response.status_code == 401

    sim.state.emporia_simulator_mode_account = None  # the simulator-mode token no longer opens an account
    with pytest.raises(requests.HTTPError) as refused:
        PyEmVue().login_simulator(f"{sim.url}/emporia", username="demo")
    assert refused.value.response.status_code == 401
    assert refused.value.response.json() == {"message": "Unauthorized"}
