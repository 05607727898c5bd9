"""tesla-fleet-api (the Fleet API client Home Assistant uses) against the simulator, through its public calls.

Redirection: the SDK's own `server=` argument (`TeslaFleetApi(session, access_token=…, server=…)`), which stands
for the regional Fleet API host; the simulator serves Tesla under `/tesla`. The access token comes from the
simulator's token endpoint with the refresh-token grant `TeslaFleetOAuth.refresh_access_token` sends (that
class posts to Tesla's fixed auth host, with no parameter to change it, so the exchange is posted here as it
would send it). tesla-fleet-api 1.5.0: the last release for Python 3.11 (1.18 needs 3.13).
"""

import asyncio

import aiohttp
import pytest
from tesla_fleet_api import TeslaFleetApi
from tesla_fleet_api.exceptions import OAuthExpired, VehicleOffline

from integrations.simulator import DEMO_CREDENTIALS
from integrations.simulator.state import SELF_CONSUMPTION

SERIAL = "GW-SDK-TESLA-1"


async def fresh_access_token(session: aiohttp.ClientSession, sim) -> str:
    """The refresh-token grant, as `TeslaFleetOAuth.refresh_access_token` posts it (form fields, no auth)."""
    creds = DEMO_CREDENTIALS["tesla"]
    async with session.post(
        f"{sim.url}/tesla/oauth2/v3/token",
        data={"grant_type": "refresh_token", "client_id": creds["client_id"], "refresh_token": creds["refresh_token"]},
    ) as resp:
        assert resp.ok, await resp.text()
        data = await resp.json()
    # what the SDK reads from the answer
    assert data["refresh_token"] and data["expires_in"] > 0
    return data["access_token"]


@pytest.fixture
def site(sim):
    return sim.state.add_device("tesla", SERIAL, kind="battery", soc=64.0, reserve=20.0, mode=SELF_CONSUMPTION)


def test_discovery_telemetry_control_and_re_read(sim, site):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            api = TeslaFleetApi(session, access_token=await fresh_access_token(session, sim), server=f"{sim.url}/tesla")
            assert await api.status() == "ok"

            products = (await api.products())["response"]
            ours = [p for p in products if p.get("gateway_id") == SERIAL]
            assert len(ours) == 1 and ours[0]["resource_type"] == "battery"
            energy_site = api.energySites.create(ours[0]["energy_site_id"])

            live = (await energy_site.live_status())["response"]
            assert live["percentage_charged"] == pytest.approx(64.0, abs=0.5)
            assert live["total_pack_energy"] == site.capacity_wh
            assert {"solar_power", "battery_power", "grid_power", "load_power", "timestamp"} <= live.keys()

            info = (await energy_site.site_info())["response"]
            assert (info["default_real_mode"], info["backup_reserve_percent"]) == ("self_consumption", 20)

            assert (await energy_site.operation("backup"))["response"]["code"] == 201
            assert (await energy_site.backup(55))["response"]["code"] == 201

            info = (await energy_site.site_info())["response"]
            assert (info["default_real_mode"], info["backup_reserve_percent"]) == ("backup", 55)
            # backup mode charges from the grid: the live power flow shows it
            live = (await energy_site.live_status())["response"]
            assert live["battery_power"] < 0

    asyncio.run(scenario())
    assert (site.mode, site.reserve) == ("backup", 55.0)


def test_rejected_and_expired_tokens_raise_the_sdks_401_error(sim, site):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            forged = TeslaFleetApi(session, access_token="not-a-token", server=f"{sim.url}/tesla")
            with pytest.raises(OAuthExpired) as refused:
                await forged.products()
            assert refused.value.status == 401

            api = TeslaFleetApi(session, access_token=await fresh_access_token(session, sim), server=f"{sim.url}/tesla")
            sim.state.inject("tesla", "demo", "expired_token")
            with pytest.raises(OAuthExpired) as expired:
                await api.products()
            # Tesla's error body, which the SDK matched by its `error` key
            assert expired.value.data["error"] == "token expired (401)"

    asyncio.run(scenario())


def test_an_offline_site_is_the_sdks_offline_error(sim, site):
    sim.state.set_online("tesla", SERIAL, False)

    async def scenario():
        async with aiohttp.ClientSession() as session:
            api = TeslaFleetApi(session, access_token=await fresh_access_token(session, sim), server=f"{sim.url}/tesla")
            with pytest.raises(VehicleOffline):  # the SDK's name for Tesla's 408, sites included
                await api.energySites.create(site.number).live_status()

    asyncio.run(scenario())
