"""Adapters against vendor-shaped payloads (normalization) and against the simulator over real HTTP
(discovery, auth refresh, each OEM's 429 shape, timeouts, dropped connections, offline, commands)."""

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from integrations.adapters import AuthError, DeviceOffline, DeviceRef, RateLimited, TransientError
from integrations.adapters.base import backoff_seconds, parse_retry_after
from integrations.emporia.adapter import EmporiaAdapter
from integrations.enphase.adapter import EnphaseAdapter, _first_event
from integrations.franklinwh.adapter import FranklinWHAdapter
from integrations.tesla.adapter import TeslaAdapter
from tests.integrations.conftest import adapter

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name):
    text = (FIXTURES / name).read_text()
    return text if name.endswith(".txt") else json.loads(text)


# -- normalization of vendor-shaped payloads ------------------------------------------------------------
def test_tesla_maps_signs_units_and_local_timestamp_to_utc():
    snap = TeslaAdapter.normalize(
        fixture("tesla_live_status.json")["response"], fixture("tesla_site_info.json")["response"]
    )
    assert snap.measured_at == datetime(2026, 6, 1, 17, 15, tzinfo=UTC)  # 10:15 at −07:00
    assert snap.charge_percentage == 71.52
    assert snap.charge_rate_w == -3200 and snap.charging_state == "charging"  # negative battery_power = charging
    assert snap.grid_power_w == -1500 and snap.grid_status == "exporting"
    assert snap.solar_power_w == 5400
    assert snap.backup_reserve_percent == 25
    assert snap.strategy == "time_of_use"  # Tesla's "autonomous"
    assert snap.is_storm_mode_enabled is True and snap.is_storm_mode_active is False


def test_franklinwh_converts_kilowatts_and_reads_reserve_from_current_profile():
    measured = datetime(2026, 6, 1, 15, 14, 7, tzinfo=UTC)
    snap = FranklinWHAdapter.normalize(
        fixture("franklinwh_composite.json")["result"], fixture("franklinwh_tou_list.json")["result"], measured
    )
    assert snap.measured_at == measured
    assert snap.charge_rate_w == -2500.0 and snap.charging_state == "charging"
    assert snap.grid_power_w == 350.0 and snap.grid_status == "importing"
    assert snap.solar_power_w == 4200.0
    assert snap.charge_percentage == 83.2
    assert snap.backup_reserve_percent == 30  # the soc of profile `currendId`
    assert snap.strategy == "time_of_use" and snap.is_storm_mode_enabled is True


def test_enphase_live_data_epoch_milliseconds_and_string_settings():
    live = _first_event(fixture("enphase_live_data.txt"))
    snap = EnphaseAdapter.normalize(live, fixture("enphase_battery_settings.json"), fixture("enphase_storm_guard.json"))
    assert snap.measured_at == datetime(2026, 6, 1, 15, 15, tzinfo=UTC)
    assert snap.charge_rate_w == 1900 and snap.charging_state == "discharging"
    assert snap.grid_power_w == -850 and snap.grid_status == "exporting"
    assert snap.solar_power_w == 3100 and snap.charge_percentage == 64
    assert snap.backup_reserve_percent == 30 and snap.strategy == "time_of_use"
    assert snap.is_storm_mode_active is True  # the *string* "true"
    string_soc = EnphaseAdapter.normalize({**live, "battery_soc": "97%"}, {}, {})
    assert string_soc.charge_percentage == 97.0


def test_emporia_turns_interval_energy_into_watts():
    usage = fixture("emporia_usages.json")["deviceListUsages"]
    charger = fixture("emporia_status.json")["evChargers"][0]
    snap = EmporiaAdapter.normalize(
        charger, usage["devices"][0]["channelUsages"][0]["usage"], datetime(2026, 6, 1, 15, 14, tzinfo=UTC)
    )
    assert snap.charger_wattage_w == 7200.0  # 0.12 kWh in one minute
    assert snap.is_plugged_in is True and snap.charging_state == "charging"


def test_retry_after_and_backoff():
    assert parse_retry_after("30") == 30
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < parse_retry_after(later) <= 120
    assert parse_retry_after(None) is None
    for attempt in range(6):
        assert 45 <= backoff_seconds(attempt, retry_after=45) <= 46 + 2 * 2**attempt
    assert all(0 <= backoff_seconds(10, cap=60) <= 60 for _ in range(50))


# -- over HTTP against the simulator -------------------------------------------------------------------
@pytest.fixture
def fleet(sim):
    state = sim.state
    return {
        "tesla": state.add_device("tesla", "TG100000000001", kind="battery", soc=55.0, solar_peak_w=0.0),
        "tesla_other": state.add_device("tesla", "TG100000000009", kind="battery", account="someone-else"),
        "franklinwh": state.add_device("franklinwh", "1005000060200001", kind="battery", soc=62.0),
        "enphase": [state.add_device("enphase", f"EN00000000{i:02d}", kind="battery") for i in range(3)],
        "emporia": state.add_device("emporia", "A200000001", kind="charger", plugged_in=True, charger_on=True),
    }


def ref(found):
    return DeviceRef(serial=found.serial, external_id=found.external_id, oem_data=found.oem_data)


def test_tesla_discovery_lists_only_the_accounts_sites_in_one_call(sim, fleet):
    tesla = adapter(sim, "tesla")
    found = tesla.discover()
    assert [f.serial for f in found] == ["TG100000000001"]
    assert found[0].external_id == str(fleet["tesla"].number)
    assert tesla.requests_made == 2  # token refresh + one /products listing


def test_tesla_telemetry_matches_the_device_and_moves_with_commands(sim, fleet):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    device = fleet["tesla"]
    before = tesla.fetch_telemetry(site)
    at = sim.state.clock.now()
    assert before.measured_at == at
    assert before.charge_percentage == pytest.approx(55.0)
    assert before.charge_rate_w == device.battery_w(at)
    result = tesla.send_command(site, "battery:set-operating-mode", {"operatingMode": "charge"})
    assert result.status == "accepted"
    sim.state.advance(600)
    after = tesla.fetch_telemetry(site)
    assert after.strategy == "backup" and after.charging_state == "charging"
    assert after.charge_rate_w == -device.max_power_w
    assert after.charge_percentage > before.charge_percentage  # 10 min at 5 kW into 13.5 kWh ≈ +6 %
    assert after.measured_at == before.measured_at + timedelta(minutes=10)


def test_tesla_refreshes_an_expired_token_and_stores_the_rotated_refresh_token(sim, fleet):
    tesla = adapter(sim, "tesla")
    tesla.discover()
    first_refresh = tesla.credentials["refresh_token"]
    assert first_refresh != "demo-tesla-refresh" and tesla.credentials_changed
    sim.state.inject("tesla", "demo", "expired_token")
    assert len(tesla.discover()) == 1  # 401 "token expired (401)" → refresh → retried
    assert tesla.credentials["refresh_token"] != first_refresh
    stale = adapter(sim, "tesla", refresh_token=first_refresh)  # a spent refresh token
    with pytest.raises(AuthError, match="login_required"):
        stale.discover()


def test_tesla_429_carries_retry_after(sim, fleet):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    sim.state.inject("tesla", "demo", "rate_limit", retry_after=42)
    with pytest.raises(RateLimited) as caught:
        tesla.fetch_telemetry(site)
    assert caught.value.status == 429 and caught.value.retry_after == 42


def test_tesla_offline_site_answers_408(sim, fleet):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    sim.state.set_online("tesla", "TG100000000001", False)
    with pytest.raises(DeviceOffline, match="408"):
        tesla.fetch_telemetry(site)


def test_timeout_and_dropped_connection_are_transient_and_the_next_call_works(sim, fleet):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    sim.state.inject("tesla", "TG100000000001", "slow", seconds=2)  # past the 1 s client timeout
    with pytest.raises(TransientError, match="no answer within 1 s"):
        tesla.fetch_telemetry(site)
    sim.state.inject("tesla", "TG100000000001", "drop")
    with pytest.raises(TransientError, match="connection failed"):
        tesla.fetch_telemetry(site)
    sim.state.inject("tesla", "TG100000000001", "server_error", status=503)
    with pytest.raises(TransientError, match="503"):
        tesla.fetch_telemetry(site)
    assert tesla.fetch_telemetry(site).charge_percentage is not None


def test_franklinwh_logs_in_with_md5_and_again_on_body_code_401(sim, fleet):
    franklin = adapter(sim, "franklinwh")
    found = franklin.discover()
    assert [f.serial for f in found] == ["1005000060200001"]
    sim.state.inject("franklinwh", "demo", "expired_token")  # HTTP 200, body code 401
    snap = franklin.fetch_telemetry(ref(found[0]))
    at = sim.state.clock.now()
    device = fleet["franklinwh"]
    assert snap.measured_at == at
    assert snap.charge_rate_w == pytest.approx(device.battery_w(at), abs=1)  # kW → W (3 decimals)
    assert snap.backup_reserve_percent == device.reserve
    assert franklin.requests_made == 6  # login, list, composite (401), login, composite, tou list
    with pytest.raises(AuthError, match="account or password error"):
        adapter(sim, "franklinwh", password="wrong").discover()


def test_franklinwh_offline_gateway_is_body_code_136_and_429_honours_retry_after(sim, fleet):
    franklin = adapter(sim, "franklinwh")
    gateway = ref(franklin.discover()[0])
    sim.state.set_online("franklinwh", "1005000060200001", False)
    with pytest.raises(DeviceOffline, match="136"):
        franklin.fetch_telemetry(gateway)
    sim.state.inject("franklinwh", "demo", "rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        franklin.discover()
    assert caught.value.retry_after == 7


def test_franklinwh_commands_use_the_accounts_own_profile_ids(sim, fleet):
    franklin = adapter(sim, "franklinwh")
    gateway = ref(franklin.discover()[0])
    device = fleet["franklinwh"]
    franklin.send_command(
        gateway, "battery:set-operating-mode", {"operatingMode": "discharge", "minimumBatteryReserve": 15}
    )
    assert device.mode == "time_of_use" and device.reserve == 15
    snap = franklin.fetch_telemetry(gateway)
    assert snap.strategy == "time_of_use" and snap.charging_state == "discharging"
    assert snap.backup_reserve_percent == 15


def test_enphase_discovery_resolves_serials_and_needs_both_bearer_and_key(sim, fleet):
    enphase = adapter(sim, "enphase")
    wanted = ["EN0000000001", "EN0000000002", "EN-UNKNOWN"]
    found = enphase.discover(wanted)
    assert sorted(f.serial for f in found) == ["EN0000000001", "EN0000000002"]
    # token, one listing page, one lookup per wanted serial
    assert enphase.requests_made == 1 + 1 + 3
    with pytest.raises(AuthError, match="mismatch"):
        adapter(
            sim,
            "enphase",
            api_key="some-other-app",
            access_token=enphase.credentials["access_token"],
            refresh_token=enphase.credentials["refresh_token"],
        ).discover([])


def test_enphase_429_waits_until_period_end_without_retry_after(sim, fleet):
    enphase = adapter(sim, "enphase")
    system = ref(enphase.discover(["EN0000000001"])[0])
    sim.state.inject("enphase", "demo", "rate_limit", retry_after=90)
    with pytest.raises(RateLimited) as caught:
        enphase.fetch_telemetry(system)
    # period_end is 90 s after the simulator's (frozen) now, which is at most a minute behind real time
    assert 20 <= caught.value.retry_after <= 90


def test_enphase_refresh_and_offline_473(sim, fleet):
    enphase = adapter(sim, "enphase")
    system = ref(enphase.discover(["EN0000000000"])[0])
    sim.state.inject("enphase", "demo", "expired_token")
    assert enphase.fetch_telemetry(system).charge_percentage is not None
    assert enphase.credentials["refresh_token"] != "demo-enphase-refresh"
    sim.state.set_online("enphase", "EN0000000000", False)
    with pytest.raises(DeviceOffline, match="473"):
        enphase.fetch_telemetry(system)


def test_enphase_storm_guard_active_is_reported(sim, fleet):
    enphase = adapter(sim, "enphase")
    system = ref(enphase.discover(["EN0000000001"])[0])
    device = sim.state.device("enphase", "EN0000000001")
    device.storm_enabled = True
    sim.state.set_storm("enphase", "EN0000000001", True)
    snap = enphase.fetch_telemetry(system)
    assert snap.is_storm_mode_active is True and snap.strategy == "backup"


def test_emporia_reads_many_chargers_in_two_calls(sim, fleet):
    for i in range(5):
        sim.state.add_device("emporia", f"A2000001{i:02d}", kind="charger")
    emporia = adapter(sim, "emporia")
    found = emporia.discover()
    assert len(found) == 6
    before = emporia.requests_made
    results = emporia.fetch_telemetry_many([ref(f) for f in found])
    assert emporia.requests_made - before == 2
    charging = results["A200000001"]
    assert charging.charger_wattage_w == pytest.approx(32 * 240)  # 32 A at 240 V
    assert charging.measured_at == sim.state.clock.now() - timedelta(minutes=1)
    sim.state.set_online("emporia", "A200000001", False)
    assert isinstance(emporia.fetch_telemetry_many([ref(found[0])])["A200000001"], DeviceOffline)


def test_emporia_stop_charging_changes_later_usage(sim, fleet):
    emporia = adapter(sim, "emporia")
    charger = ref(emporia.discover()[0])
    emporia.send_command(charger, "charger:set-operating-mode", {"operatingMode": "stop-charging"})
    assert emporia.fetch_telemetry(charger).charger_wattage_w == 0
    sim.state.inject("emporia", "demo", "rate_limit", retry_after=12)
    with pytest.raises(RateLimited) as caught:
        emporia.fetch_telemetry(charger)
    assert caught.value.retry_after == 12


# -- Smartcar ------------------------------------------------------------------------------------------
def test_smartcar_batch_maps_fractions_units_and_data_age(sim, fleet):
    car = sim.state.add_device("smartcar", "1FTVW1EL5NWG00001", kind="vehicle", soc=42.0, plugged_in=True)
    smartcar = adapter(sim, "smartcar")
    found = smartcar.discover()
    assert [(f.serial, f.external_id) for f in found] == [("1FTVW1EL5NWG00001", f"veh-{car.number}")]
    vehicle = ref(found[0])
    snap = smartcar.fetch_telemetry(vehicle)
    assert snap.charge_percentage == 42.0  # 0.42 → %
    assert snap.range_km == pytest.approx(42.0 * car.range_km_per_pct, abs=0.1)
    assert snap.charge_limit_percent == 80.0 and snap.is_plugged_in is True
    assert snap.measured_at == sim.state.clock.now()  # sc-data-age, not the time we asked
    imperial = adapter(
        sim,
        "smartcar",
        unit_system="imperial",
        **{k: smartcar.credentials[k] for k in ("access_token", "refresh_token")},
    )
    assert imperial.fetch_telemetry(vehicle).range_km == pytest.approx(snap.range_km, abs=0.2)  # miles → km


def test_smartcar_commands_refresh_429_and_asleep(sim, fleet):
    sim.state.add_device("smartcar", "KNDCE3LG5N5000001", kind="vehicle", soc=50.0, plugged_in=True)
    smartcar = adapter(sim, "smartcar")
    vehicle = ref(smartcar.discover()[0])
    smartcar.send_command(vehicle, "vehicle:set-charge-limit", {"chargeLimit": 90})
    smartcar.send_command(vehicle, "vehicle:set-operating-mode", {"operatingMode": "start-charging"})
    sim.state.advance(600)
    snap = smartcar.fetch_telemetry(vehicle)
    assert snap.charge_limit_percent == 90.0 and snap.charging_state == "charging"
    assert snap.charge_percentage == pytest.approx(50 + 7.2 * (10 / 60) / 75 * 100, abs=0.05)
    sim.state.inject("smartcar", "demo", "expired_token")
    assert smartcar.fetch_telemetry(vehicle).charge_percentage > 50
    assert smartcar.credentials["refresh_token"] != "demo-smartcar-refresh"
    sim.state.inject("smartcar", "KNDCE3LG5N5000001", "rate_limit", retry_after=9)
    with pytest.raises(RateLimited) as caught:
        smartcar.fetch_telemetry(vehicle)
    assert caught.value.retry_after == 9 and "RATE_LIMIT" in caught.value.message
    sim.state.set_online("smartcar", "KNDCE3LG5N5000001", False)
    with pytest.raises(DeviceOffline, match="VEHICLE_STATE"):
        smartcar.fetch_telemetry(vehicle)


# -- token refresh answers: a rate limit or an outage is retried; only a refused grant needs a person -------
REFRESH_SPENT = {"tesla": "login_required", "enphase": "invalid_grant", "smartcar": "invalid_grant"}


@pytest.mark.parametrize("channel", sorted(REFRESH_SPENT))
def test_refresh_rate_limited_is_retried_after_the_oems_wait(sim, fleet, channel):
    oem = adapter(sim, channel)
    # Enphase's 429 carries period_end (no Retry-After): the wait is counted from the simulator's frozen clock
    sim.state.inject(channel, "demo:token", "rate_limit", retry_after=90)
    with pytest.raises(RateLimited) as caught:
        oem.test_connection()
    assert caught.value.status == 429 and "token refresh rate limited" in caught.value.message
    if channel == "enphase":
        assert 20 <= caught.value.retry_after <= 90
    else:
        assert caught.value.retry_after == 90
    assert oem.credentials["refresh_token"] == f"demo-{channel}-refresh"  # not spent: the retry can use it
    oem.test_connection()


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("channel", sorted(REFRESH_SPENT))
def test_refresh_server_error_is_transient(sim, fleet, channel, status):
    oem = adapter(sim, channel)
    sim.state.inject(channel, "demo:token", "server_error", status=status)
    with pytest.raises(TransientError) as caught:
        oem.test_connection()
    assert not isinstance(caught.value, AuthError) and caught.value.status == status
    oem.test_connection()


@pytest.mark.parametrize("channel", sorted(REFRESH_SPENT))
def test_refresh_with_a_spent_refresh_token_needs_a_person(sim, fleet, channel):
    oem = adapter(sim, channel, refresh_token="spent-elsewhere")
    with pytest.raises(AuthError, match=REFRESH_SPENT[channel]) as caught:
        oem.test_connection()
    assert caught.value.status in (400, 401)


def test_emporia_sign_in_throttled_or_failing_is_retried_and_a_wrong_password_is_not(sim, fleet):
    emporia = adapter(sim, "emporia")
    sim.state.inject("emporia", "demo:token", "rate_limit")  # Cognito: 400 TooManyRequestsException
    with pytest.raises(RateLimited, match="Rate exceeded"):
        emporia.discover()
    sim.state.inject("emporia", "demo:token", "server_error", status=500)
    with pytest.raises(TransientError, match="500"):
        emporia.discover()
    assert len(emporia.discover()) == 1
    with pytest.raises(AuthError, match="Incorrect username or password"):
        adapter(sim, "emporia", password="wrong").discover()


# -- SolarEdge (read-only) -----------------------------------------------------------------------------
def test_solaredge_local_times_flipped_storage_sign_and_flow_direction(sim, fleet):
    site = sim.state.add_device("solaredge", "7E1400000001", kind="battery", soc=61.0, solar_peak_w=0.0, mode="backup")
    solaredge = adapter(sim, "solaredge")
    found = solaredge.discover()
    assert [(f.serial, f.external_id) for f in found] == [("7E1400000001", str(site.number))]
    assert found[0].oem_data["timeZone"] == "America/Los_Angeles"
    snap = solaredge.fetch_telemetry(ref(found[0]))
    at = sim.state.clock.now()
    assert snap.measured_at == at  # "YYYY-MM-DD hh:mm:ss" in Los Angeles time → UTC
    assert snap.charge_rate_w == -site.max_power_w and snap.charging_state == "charging"  # SolarEdge + = charging
    assert (
        snap.grid_power_w == pytest.approx(site.grid_w(at), abs=1) and snap.grid_status == "importing"
    )  # kW, 3 decimals
    assert snap.charge_percentage == pytest.approx(61.0, abs=0.1)
    from integrations.adapters import NotSupported

    with pytest.raises(NotSupported):
        solaredge.send_command(ref(found[0]), "battery:set-reserve", {"chargePercentage": 30})


def test_solaredge_bad_key_and_daily_quota(sim, fleet):
    sim.state.add_device("solaredge", "7E1400000002", kind="battery")
    with pytest.raises(AuthError, match="403"):
        adapter(sim, "solaredge", api_key="not-a-key").discover()
    sim.state.account("solaredge", "demo").daily_quota = 3
    solaredge = adapter(sim, "solaredge")
    solaredge.discover()  # list + inventory: 2 of 3
    with pytest.raises(RateLimited) as caught:
        solaredge.discover()  # list (3 of 3), inventory: over the quota
    # a daily quota: the wait runs to the next day, never a quick retry
    assert 0 < caught.value.retry_after <= 24 * 3600


# -- ChargePoint (SOAP) --------------------------------------------------------------------------------
def test_chargepoint_soap_discovery_group_load_and_shed(sim, fleet):
    for i in range(3):
        sim.state.add_device("chargepoint", f"1:90000{i}", kind="charger", charger_on=True, plugged_in=True)
    chargepoint = adapter(sim, "chargepoint")
    found = chargepoint.discover()
    assert sorted(f.serial for f in found) == ["1:900000", "1:900001", "1:900002"]
    before = chargepoint.requests_made
    loads = chargepoint.fetch_telemetry_many([ref(f) for f in found])
    assert chargepoint.requests_made - before == 1  # one getLoad for the whole station group
    assert loads["1:900001"].charger_wattage_w == pytest.approx(32 * 240)
    assert loads["1:900001"].measured_at == sim.state.clock.now()
    station = ref(next(f for f in found if f.serial == "1:900001"))
    chargepoint.send_command(
        station, "charger:set-operating-mode", {"operatingMode": "stop-charging", "durationMinutes": 30}
    )
    assert chargepoint.fetch_telemetry(station).charger_wattage_w == 0
    sim.state.advance(31 * 60)  # the shed lapses after its timeInterval
    assert chargepoint.fetch_telemetry(station).charger_wattage_w == pytest.approx(32 * 240)
    chargepoint.send_command(station, "charger:set-operating-mode", {"operatingMode": "stop-charging"})
    sim.state.advance(3600)
    assert chargepoint.fetch_telemetry(station).charger_wattage_w == 0  # until cleared
    chargepoint.send_command(station, "charger:set-operating-mode", {"operatingMode": "start-charging"})
    assert chargepoint.fetch_telemetry(station).charging_state == "charging"
    with pytest.raises(AuthError, match="Authentication failed"):
        adapter(sim, "chargepoint", password="wrong").discover()
    from integrations.adapters import NotFound

    with pytest.raises(NotFound, match="Station not found"):
        chargepoint.send_command(
            DeviceRef(serial="1:404", external_id="1:404"),
            "charger:set-operating-mode",
            {"operatingMode": "start-charging"},
        )
    sim.state.inject("chargepoint", "demo", "rate_limit", retry_after=20)
    with pytest.raises(RateLimited) as caught:
        chargepoint.discover()
    assert caught.value.retry_after == 20


def test_concurrent_calls_refresh_an_expired_token_once(sim, fleet):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from integrations.simulator.common import expire_tokens

    def all_at_once(call, n=8):
        barrier = threading.Barrier(n)

        def go(_):
            barrier.wait()
            return call()

        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(go, range(n)))

    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    account = sim.state.account("tesla", "demo")
    expire_tokens(account)  # every thread's first call answers 401 "token expired (401)"
    issued = len(account.tokens)
    snapshots = all_at_once(lambda: tesla.fetch_telemetry(site))
    assert all(s.charge_percentage is not None for s in snapshots)
    # one rotation: every further refresh would have spent a refresh token for nothing
    assert len(account.tokens) == issued + 1

    franklin = adapter(sim, "franklinwh")
    gateway = ref(franklin.discover()[0])
    franklin.token = None
    logins = len(sim.state.account("franklinwh", "demo").tokens)
    all_at_once(lambda: franklin.fetch_telemetry(gateway))
    assert len(sim.state.account("franklinwh", "demo").tokens) == logins + 1


# -- grid-services status: what each OEM's API shows of it ----------------------------------------------
def test_tesla_grid_services_status_is_site_infos_grid_services_enabled():
    live, info = fixture("tesla_live_status.json")["response"], fixture("tesla_site_info.json")["response"]
    assert TeslaAdapter.normalize(live, info).grid_services_status == "enrolled"
    off = {**info, "components": {**info["components"], "grid_services_enabled": False}}
    assert TeslaAdapter.normalize(live, off).grid_services_status == "not_enrolled"
    silent = {**info, "components": {"storm_mode_capable": True}}
    assert TeslaAdapter.normalize(live, silent).grid_services_status is None  # Tesla did not say: left as it is


def test_enphase_shows_grid_services_only_while_a_dr_event_runs():
    live = _first_event(fixture("enphase_live_data.txt"))
    settings, storm = fixture("enphase_battery_settings.json"), fixture("enphase_storm_guard.json")
    assert EnphaseAdapter.normalize(live, settings, storm).grid_services_status is None
    during = EnphaseAdapter.normalize({**live, "battery_mode": "DR Event Active"}, settings, storm)
    assert during.grid_services_status == "enrolled"
    assert during.strategy == "time_of_use"  # the stored mode, as the live one names the event


def test_oems_without_a_grid_services_channel_report_unsupported():
    charger = fixture("emporia_status.json")["evChargers"][0]
    at = datetime(2026, 6, 1, 15, 14, tzinfo=UTC)
    assert EmporiaAdapter.normalize(charger, 0.12, at).grid_services_status == "unsupported"
    from integrations.smartcar.adapter import SmartcarAdapter

    headers = {"sc-data-age": "2026-06-01T15:14:00.000Z", "sc-unit-system": "metric"}
    snap = SmartcarAdapter.normalize({"/battery": {"headers": headers, "body": {"percentRemaining": 0.5}}})
    assert snap.grid_services_status == "unsupported"


def test_a_grid_services_status_outside_the_choices_is_refused():
    from integrations.adapters import DiscoveredDevice, TelemetrySnapshot

    with pytest.raises(ValueError, match="grid_services_status"):
        TelemetrySnapshot(measured_at=datetime.now(UTC), grid_services_status="Enrolled")
    with pytest.raises(ValueError, match="grid_services_status"):
        DiscoveredDevice(serial="X", external_id="1", kind="battery", grid_services_status="yes")


def test_the_simulators_enrollment_mix_is_stable_per_serial_and_mostly_enrolled():
    from collections import Counter

    from integrations.simulator import SimState

    def mix(seed):
        state = SimState(seed=seed)
        return {
            serial: state.add_device("tesla", serial, kind="battery").grid_services
            for serial in (f"TG1{n:011d}" for n in range(1000))
        }

    first = mix(7)
    assert first == mix(7)  # the same serials, the same enrollment: tests can count on it
    counts = Counter(first.values())
    assert set(counts) == {"enrolled", "pending", "not_enrolled"}
    assert counts["enrolled"] > 750 and 50 < counts["pending"] < 150 and 50 < counts["not_enrolled"] < 150
    # a test that needs a given enrollment says so
    told = SimState(seed=7).add_device("tesla", "TG100000000001", kind="battery", grid_services="pending")
    assert told.grid_services == "pending"


def test_tesla_shows_the_simulated_enrollment_and_its_own_grid_services_event(sim, fleet):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    for enrollment, shown in (("enrolled", "enrolled"), ("pending", "not_enrolled"), ("not_enrolled", "not_enrolled")):
        fleet["tesla"].grid_services = enrollment  # pending: Tesla shows one flag, not enabled yet
        assert tesla.fetch_telemetry(site).grid_services_status == shown, enrollment
    fleet["tesla"].grid_services = "enrolled"
    sim.state.set_grid_services_event("tesla", "TG100000000001", True)
    live = tesla.call("GET", f"/api/1/energy_sites/{site.external_id}/live_status")
    assert live["grid_services_active"] is True


def test_enphase_shows_enrolled_during_a_grid_services_event_of_an_enrolled_system(sim, fleet):
    enphase = adapter(sim, "enphase")
    systems = {d.serial: ref(d) for d in enphase.discover([d.serial for d in fleet["enphase"]])}
    enrolled, other = fleet["enphase"][0], fleet["enphase"][1]
    enrolled.grid_services, other.grid_services = "enrolled", "not_enrolled"
    assert enphase.fetch_telemetry(systems[enrolled.serial]).grid_services_status is None
    for device in (enrolled, other):
        sim.state.set_grid_services_event("enphase", device.serial, True)
    assert enphase.fetch_telemetry(systems[enrolled.serial]).grid_services_status == "enrolled"
    assert enphase.fetch_telemetry(systems[other.serial]).grid_services_status is None  # not in the program


# -- command_applied: is a command's effect already in place? (GET reads only) ----------------------------
def writes(sim, *paths):
    """Writes the simulator received (sign-ins and token calls aside), or only those to `paths`."""
    auth = ("token", "login", "oauth", "cognito")
    return sum(
        n
        for (_oem, _method, path, _body), n in sim.state.writes.items()
        if not any(a in path.lower() for a in auth) and (not paths or any(path.endswith(p) for p in paths))
    )


TESLA_CHECKED = [
    ("battery:set-reserve", {"chargePercentage": 64}),
    ("battery:set-operating-mode", {"operatingMode": "discharge", "minimumBatteryReserve": 25}),
    (
        "battery:set-operating-mode",
        {"operatingMode": "discharge", "minimumBatteryReserve": 25, "enableGridInteraction": True},
    ),
    ("battery:set-operating-mode", {"operatingMode": "charge", "enableGridInteraction": True}),
    ("battery:set-operating-mode", {"operatingMode": "charge", "minimumBatteryReserve": 20}),
]


@pytest.mark.parametrize(("slug", "payload"), TESLA_CHECKED)
def test_tesla_command_applied_reads_mode_reserve_and_grid_rule_back(sim, fleet, slug, payload):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    fleet["tesla"].reserve = 10.0
    before = writes(sim)
    assert tesla.command_applied(site, slug, payload) is False
    assert writes(sim) == before  # reads only
    tesla.send_command(site, slug, payload)
    assert tesla.command_applied(site, slug, payload) is True


def test_tesla_command_applied_tells_a_grid_interaction_apart_and_cannot_tell_idles_reserve(sim, fleet):
    tesla = adapter(sim, "tesla")
    site = ref(tesla.discover()[0])
    exporting = {"operatingMode": "discharge", "minimumBatteryReserve": 25, "enableGridInteraction": True}
    tesla.send_command(site, "battery:set-operating-mode", exporting)
    # the same discharge for the home only writes `pv_only`: not what is in place
    home_only = {**exporting, "enableGridInteraction": False}
    assert tesla.command_applied(site, "battery:set-operating-mode", home_only) is False
    idle = {"operatingMode": "idle"}
    assert tesla.command_applied(site, "battery:set-operating-mode", idle) is False  # still autonomous
    tesla.send_command(site, "battery:set-operating-mode", idle)
    # self_consumption is in place; the reserve it set was the SoC at send time, which no read tells
    assert tesla.command_applied(site, "battery:set-operating-mode", idle) is None
    calls = tesla.requests_made
    assert tesla.command_applied(site, "charger:set-operating-mode", {"operatingMode": "start-charging"}) is None
    assert tesla.command_applied(site, "battery:set-operating-mode", {"operatingMode": "hover"}) is None
    assert tesla.requests_made == calls  # a command it cannot check costs no call


@pytest.mark.parametrize(
    ("slug", "payload"),
    [
        ("battery:set-reserve", {"chargePercentage": 45}),
        ("battery:set-operating-mode", {"operatingMode": "charge"}),
        ("battery:set-operating-mode", {"operatingMode": "discharge", "minimumBatteryReserve": 15}),
    ],
)
def test_franklinwh_command_applied_reads_the_current_profile(sim, fleet, slug, payload):
    franklin = adapter(sim, "franklinwh")
    gateway = ref(franklin.discover()[0])
    fleet["franklinwh"].mode, fleet["franklinwh"].reserve = "self_consumption", 30.0
    before = writes(sim, "updateTouMode")
    assert franklin.command_applied(gateway, slug, payload) is False
    assert writes(sim, "updateTouMode") == before  # the profile list is a POST at FranklinWH, but a read
    franklin.send_command(gateway, slug, payload)
    assert franklin.command_applied(gateway, slug, payload) is True


def test_franklinwh_command_applied_cannot_tell_idles_reserve_or_other_slugs(sim, fleet):
    franklin = adapter(sim, "franklinwh")
    gateway = ref(franklin.discover()[0])
    fleet["franklinwh"].mode = "backup"
    idle = {"operatingMode": "idle"}
    assert franklin.command_applied(gateway, "battery:set-operating-mode", idle) is False
    franklin.send_command(gateway, "battery:set-operating-mode", idle)
    assert franklin.command_applied(gateway, "battery:set-operating-mode", idle) is None
    calls = franklin.requests_made
    assert franklin.command_applied(gateway, "charger:set-operating-mode", {"operatingMode": "stop-charging"}) is None
    assert franklin.requests_made == calls


@pytest.mark.parametrize(
    ("slug", "payload"),
    [
        ("battery:set-reserve", {"chargePercentage": 55}),
        ("battery:set-operating-mode", {"operatingMode": "charge"}),
        ("battery:set-operating-mode", {"operatingMode": "discharge", "minimumBatteryReserve": 25}),
    ],
)
def test_enphase_command_applied_reads_the_battery_settings(sim, fleet, slug, payload):
    enphase = adapter(sim, "enphase")
    system = ref(enphase.discover(["EN0000000001"])[0])
    device = sim.state.device("enphase", "EN0000000001")
    device.mode, device.reserve = "self_consumption", 30.0
    before = writes(sim)
    assert enphase.command_applied(system, slug, payload) is False
    assert writes(sim) == before
    enphase.send_command(system, slug, payload)
    assert enphase.command_applied(system, slug, payload) is True
    # idle holds the SoC at send time: its mode can be read, its reserve cannot
    idle = {"operatingMode": "idle"}
    expected = False if device.mode != "self_consumption" else None
    assert enphase.command_applied(system, "battery:set-operating-mode", idle) is expected
    assert enphase.command_applied(system, "vehicle:set-charge-limit", {"chargeLimit": 80}) is None


def test_emporia_command_applied_reads_charger_on_and_rate(sim, fleet):
    emporia = adapter(sim, "emporia")
    charger = ref(emporia.discover()[0])  # on, at 32 A
    stop = {"operatingMode": "stop-charging"}
    before = writes(sim)
    assert emporia.command_applied(charger, "charger:set-operating-mode", stop) is False
    assert writes(sim) == before
    emporia.send_command(charger, "charger:set-operating-mode", stop)
    assert emporia.command_applied(charger, "charger:set-operating-mode", stop) is True
    start = {"operatingMode": "start-charging", "chargingRate": 24}
    assert emporia.command_applied(charger, "charger:set-operating-mode", start) is False
    emporia.send_command(charger, "charger:set-operating-mode", start)
    assert emporia.command_applied(charger, "charger:set-operating-mode", start) is True
    # on, but at another rate than this command writes
    assert emporia.command_applied(charger, "charger:set-operating-mode", {**start, "chargingRate": 40}) is False
    assert emporia.command_applied(charger, "battery:set-reserve", {"chargePercentage": 50}) is None


def test_chargepoint_command_applied_reads_the_shed_state(sim, fleet):
    station = sim.state.add_device("chargepoint", "1:990001", kind="charger", charger_on=True, plugged_in=True)
    chargepoint = adapter(sim, "chargepoint")
    ref_ = ref(next(f for f in chargepoint.discover() if f.serial == "1:990001"))
    stop, start = {"operatingMode": "stop-charging", "durationMinutes": 30}, {"operatingMode": "start-charging"}
    assert chargepoint.command_applied(ref_, "charger:set-operating-mode", stop) is False
    assert chargepoint.command_applied(ref_, "charger:set-operating-mode", start) is True  # nothing shed
    assert station.shed_kw is None  # reading changed nothing
    chargepoint.send_command(ref_, "charger:set-operating-mode", stop)
    assert chargepoint.command_applied(ref_, "charger:set-operating-mode", stop) is True
    assert chargepoint.command_applied(ref_, "charger:set-operating-mode", start) is False
    sim.state.advance(31 * 60)  # the shed's time ran out: stopped no longer
    assert chargepoint.command_applied(ref_, "charger:set-operating-mode", stop) is False
    assert chargepoint.command_applied(ref_, "charger:set-operating-mode", {"operatingMode": "pause"}) is None


def test_smartcar_command_applied_reads_charge_state_and_limit_with_gets(sim, fleet):
    car = sim.state.add_device("smartcar", "KNDCE3LG5N5000002", kind="vehicle", soc=50.0, plugged_in=True)
    smartcar = adapter(sim, "smartcar")
    vehicle = ref(smartcar.discover()[0])
    start, stop = {"operatingMode": "start-charging"}, {"operatingMode": "stop-charging"}
    limit = {"chargeLimit": "90"}
    before = writes(sim)
    assert smartcar.command_applied(vehicle, "vehicle:set-operating-mode", start) is False
    assert smartcar.command_applied(vehicle, "vehicle:set-operating-mode", stop) is True
    assert smartcar.command_applied(vehicle, "vehicle:set-charge-limit", limit) is False
    assert writes(sim) == before  # GETs, not the /batch POST
    smartcar.send_command(vehicle, "vehicle:set-operating-mode", start)
    smartcar.send_command(vehicle, "vehicle:set-charge-limit", limit)
    assert smartcar.command_applied(vehicle, "vehicle:set-operating-mode", start) is True
    assert smartcar.command_applied(vehicle, "vehicle:set-operating-mode", stop) is False
    assert smartcar.command_applied(vehicle, "vehicle:set-charge-limit", limit) is True
    car.soc = 95.0  # above the limit: FULLY_CHARGED, whether it was told to charge or not
    assert smartcar.command_applied(vehicle, "vehicle:set-operating-mode", start) is None
    assert smartcar.command_applied(vehicle, "battery:set-reserve", {"chargePercentage": 50}) is None


def test_an_adapter_that_takes_no_commands_cannot_tell(sim):
    from integrations.adapters import DeviceRef

    solaredge = adapter(sim, "solaredge")
    site = DeviceRef(serial="7E1400000001", external_id="1")
    assert solaredge.command_applied(site, "battery:set-reserve", {"chargePercentage": 50}) is None
    assert solaredge.requests_made == 0
