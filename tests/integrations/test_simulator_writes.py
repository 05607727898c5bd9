"""The simulator counts the writes it receives and those repeated exactly (a command sent twice), which the
dispatch fan-out benchmark reports; sign-ins and token calls are not commands."""

from integrations.simulator import SimState


def test_a_write_repeated_exactly_is_counted_once_as_a_repeat():
    state = SimState()
    state.count_write("tesla", "POST", "/api/1/energy_sites/1/operation", b'{"default_real_mode": "autonomous"}')
    state.count_write("tesla", "POST", "/api/1/energy_sites/1/operation", b'{"default_real_mode": "autonomous"}')
    state.count_write("tesla", "POST", "/api/1/energy_sites/2/operation", b'{"default_real_mode": "autonomous"}')
    state.count_write("emporia", "PUT", "/devices/evcharger", b'{"deviceGid": 1}')
    state.count_write("emporia", "PUT", "/devices/evcharger", b'{"deviceGid": 2}')  # the device is in the body
    state.count_write("franklinwh", "POST", "/hes-gateway/updateTouMode", b"", query={"gatewayId": "A"})
    state.count_write("franklinwh", "POST", "/hes-gateway/updateTouMode", b"", query={"gatewayId": "B"})
    state.count_write("tesla", "POST", "/oauth2/v3/token", b"refresh")
    state.count_write("tesla", "POST", "/oauth2/v3/token", b"refresh")  # a token call: not a command
    assert state.write_counts() == {"writes": 7, "repeated": 1}


def test_posts_that_only_read_are_not_writes():
    from integrations.simulator.server import handle

    state = SimState()
    for _ in range(2):  # FranklinWH lists a gateway's profiles by POST; Smartcar batches GETs by POST
        handle(state, "POST", "/franklinwh/hes-gateway/terminal/tou/getGatewayTouListV2", {}, b"")
        handle(state, "POST", "/smartcar/v2.0/vehicles/veh-1/batch", {}, b"{}")
    handle(state, "POST", "/franklinwh/hes-gateway/terminal/tou/updateTouMode", {}, b"workMode=2")
    assert state.write_counts() == {"writes": 1, "repeated": 0}
