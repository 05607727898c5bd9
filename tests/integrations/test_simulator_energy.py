"""The simulator keeps each device's own account of the energy it moved (battery out and in, grid import and
export), integrated with its state of charge: what an event report's figures are checked against."""

import json
from datetime import UTC, datetime

import pytest

from integrations.simulator import SimState
from integrations.simulator.server import handle
from integrations.simulator.state import SimClock


def test_an_hour_of_export_at_5_kw_is_5_kwh_out_of_the_battery_and_onto_the_grid():
    state = SimState(clock=SimClock(frozen_at=datetime(2026, 7, 15, 2, 0, tzinfo=UTC)))  # 19:00 in California
    battery = state.add_device(
        "enphase", "ENV-ENERGY-1", kind="battery", soc=90.0, solar_peak_w=0.0, base_load_w=1000.0, max_power_w=5000.0
    )
    battery.mode = "time_of_use"  # the discharge emulation: exports down to the reserve
    state.live(battery)
    state.advance(3600)
    answer = handle(state, "GET", "/_sim/energy?oem=enphase&serial=ENV-ENERGY-1", {}, b"")
    energy = json.loads(answer.encoded())
    assert energy["batteryOutWh"] == pytest.approx(5000.0) and energy["batteryInWh"] == 0.0
    load = sum(battery.load_w(datetime(2026, 7, 15, 2, m, tzinfo=UTC)) for m in range(60)) / 60
    assert energy["gridExportWh"] == pytest.approx(5000.0 - load, rel=1e-3) and energy["gridImportWh"] == 0.0
    assert battery.soc == pytest.approx(90.0 - 5000.0 / battery.capacity_wh * 100)  # the same integration


def test_an_unknown_device_is_a_clear_error():
    answer = handle(SimState(), "GET", "/_sim/energy?oem=enphase&serial=nope", {}, b"")
    assert answer.status == 400
