"""smartcar (Smartcar's own Python SDK) against the simulator, through its public calls: `AuthClient`'s token
refresh, `get_vehicles`, `Vehicle.attributes/vin/battery/charge/start_charge/stop_charge`.

Redirection: the environment variables the SDK documents, `SMARTCAR_API_ORIGIN` and `SMARTCAR_AUTH_ORIGIN`.
`smartcar.config` reads them once, at import, so the fixture sets them and reloads that module (and reloads it
again afterwards, to leave the SDK pointed at Smartcar).
"""

import importlib

import pytest
import smartcar
import smartcar.config
from smartcar.exception import SmartcarException

from integrations.simulator import DEMO_CREDENTIALS

VIN = "5YJ3E1EA7PF000001"


@pytest.fixture
def smartcar_cloud(sim, monkeypatch):
    monkeypatch.setenv("SMARTCAR_API_ORIGIN", f"{sim.url}/smartcar")
    monkeypatch.setenv("SMARTCAR_AUTH_ORIGIN", f"{sim.url}/smartcar/oauth/token")
    importlib.reload(smartcar.config)
    yield sim
    monkeypatch.undo()
    importlib.reload(smartcar.config)


@pytest.fixture
def car(smartcar_cloud):
    return smartcar_cloud.state.add_device(
        "smartcar", VIN, kind="vehicle", soc=42.0, charge_limit=80.0, plugged_in=True, charger_on=False
    )


def access_token(secret: str | None = None) -> str:
    creds = DEMO_CREDENTIALS["smartcar"]
    client = smartcar.AuthClient(creds["client_id"], secret or creds["client_secret"], "http://localhost/callback")
    access = client.exchange_refresh_token(creds["refresh_token"])
    assert access.refresh_token != creds["refresh_token"]  # Smartcar rotates refresh tokens
    return access.access_token


def test_vehicles_attributes_battery_charge_start_stop_and_re_read(car):
    token = access_token()
    listing = smartcar.get_vehicles(token)
    vehicle_id = f"veh-{car.number}"
    assert listing.vehicles == [vehicle_id] and listing.paging.count == 1

    vehicle = smartcar.Vehicle(vehicle_id, token)
    attributes = vehicle.attributes()
    assert attributes.id == vehicle_id and attributes.make and attributes.model and attributes.year
    assert vehicle.vin().vin == VIN

    battery = vehicle.battery()
    assert battery.percent_remaining == pytest.approx(0.42, abs=0.005)  # a fraction, not %
    assert battery.range == pytest.approx(42.0 * car.range_km_per_pct, abs=1)  # km: metric by default
    assert battery.meta.data_age and battery.meta.unit_system == "metric"
    charge = vehicle.charge()
    assert (charge.is_plugged_in, charge.state) == (True, "NOT_CHARGING")

    assert vehicle.start_charge().status == "success"
    assert vehicle.charge().state == "CHARGING"
    assert vehicle.stop_charge().status == "success"
    assert vehicle.charge().state == "NOT_CHARGING"
    assert car.charger_on is False


def test_rejected_credentials_are_smartcar_exceptions_in_smartcars_shapes(car):
    with pytest.raises(SmartcarException) as bad_client:
        access_token(secret="not-the-secret")
    # OAuth's shape (`error` + `error_description`), which the SDK turns into type + message
    assert (getattr(bad_client.value, "type", "SDK_ERROR"), bad_client.value.status_code) == ("invalid_client", 401)
    assert bad_client.value.message == "Invalid client credentials."

    with pytest.raises(SmartcarException) as bad_token:
        smartcar.Vehicle(f"veh-{car.number}", "not-a-token").battery()
    # the v2 API error shape: type, code, description, docURL, statusCode, requestId, resolution
    assert (bad_token.value.type, bad_token.value.status_code) == ("AUTHENTICATION", 401)
    assert bad_token.value.doc_url and bad_token.value.request_id


def test_start_charge_on_an_unplugged_car_is_a_vehicle_state_error(car):
    car.plugged_in = False
    with pytest.raises(SmartcarException) as unplugged:
        smartcar.Vehicle(f"veh-{car.number}", access_token()).start_charge()
    assert (unplugged.value.type, unplugged.value.code, unplugged.value.status_code) == (
        "VEHICLE_STATE",
        "CHARGE_CABLE_UNPLUGGED",
        409,
    )
