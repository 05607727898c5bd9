"""tesla-fleet-api (the Fleet API client Home Assistant uses) against the simulator, through its public calls.

Redirection: the Fleet API host is the SDK's own `server=` argument (`TeslaFleetApi(session, access_token=…,
server=…)`); the simulator serves Tesla under `/tesla`. Tokens come from the SDK's `TeslaFleetOAuth`, which posts
to Tesla's fixed auth host with no parameter to change it: an aiohttp client middleware (aiohttp's documented
hook on the session the SDK is given) sends that host's requests to the simulator, and nothing else.
tesla-fleet-api 1.5.0: the last release for Python 3.11 (1.6+ needs 3.13).
"""

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import pytest
from tesla_fleet_api import TeslaFleetApi, TeslaFleetOAuth
from tesla_fleet_api.exceptions import LoginRequired, OAuthExpired, VehicleOffline
from yarl import URL

from integrations.simulator import DEMO_CREDENTIALS
from integrations.simulator.state import SELF_CONSUMPTION

SERIAL = "GW-SDK-TESLA-1"
TESLA_AUTH_HOST = "fleet-auth.prd.vn.cloud.tesla.com"


@asynccontextmanager
async def tesla_session(sim):
    """An aiohttp session whose requests to Tesla's auth host go to the simulator's `/tesla` instead."""

    async def auth_host_to_simulator(request, handler):
        if request.url.host == TESLA_AUTH_HOST:
            request.url = URL(f"{sim.url}/tesla{request.url.raw_path_qs}", encoded=True)
        return await handler(request)

    async with aiohttp.ClientSession(middlewares=(auth_host_to_simulator,)) as session:
        yield session


def demo_oauth(session, refresh_token: str | None = None) -> TeslaFleetOAuth:
    creds = DEMO_CREDENTIALS["tesla"]
    return TeslaFleetOAuth(
        session, region="na", client_id=creds["client_id"], refresh_token=refresh_token or creds["refresh_token"]
    )


def fleet_api(session, sim, access_token) -> TeslaFleetApi:
    return TeslaFleetApi(session, access_token=access_token, server=f"{sim.url}/tesla")


@pytest.fixture
def site(sim):
    return sim.state.add_device("tesla", SERIAL, kind="battery", soc=64.0, reserve=20.0, mode=SELF_CONSUMPTION)


def test_discovery_telemetry_control_and_re_read(sim, site):
    async def scenario():
        async with tesla_session(sim) as session:
            oauth = demo_oauth(session)
            # the SDK's own token source: it refreshes (and keeps the rotated refresh token) when expired
            api = fleet_api(session, sim, oauth.access_token)
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

            assert oauth.refresh_token != DEMO_CREDENTIALS["tesla"]["refresh_token"]  # rotated

    asyncio.run(scenario())
    assert (site.mode, site.reserve) == ("backup", 55.0)


def test_rejected_tokens_in_teslas_shapes(sim, site):
    async def scenario():
        async with tesla_session(sim) as session:
            with pytest.raises(OAuthExpired) as refused:
                await fleet_api(session, sim, "not-a-token").products()
            assert refused.value.status == 401

            oauth = demo_oauth(session)
            api = fleet_api(session, sim, oauth.access_token)
            await api.products()
            sim.state.inject("tesla", "demo", "expired_token")
            with pytest.raises(OAuthExpired) as expired:
                await api.products()
            # Tesla's error body, which the SDK matched by its `error` key
            assert expired.value.data["error"] == OAuthExpired.key

            # the refresh token the SDK spent above, presented again: Tesla's `login_required` (the key of the
            # SDK's LoginRequired), which `refresh_access_token` raises as a ValueError of the body
            with pytest.raises(ValueError) as spent:
                await demo_oauth(session).refresh_access_token()
            assert spent.value.args[0]["error"] == LoginRequired.key

    asyncio.run(scenario())


def test_an_offline_site_is_the_sdks_offline_error(sim, site):
    sim.state.set_online("tesla", SERIAL, False)

    async def scenario():
        async with tesla_session(sim) as session:
            api = fleet_api(session, sim, demo_oauth(session).access_token)
            with pytest.raises(VehicleOffline):  # the SDK's name for Tesla's 408, sites included
                await api.energySites.create(site.number).live_status()

    asyncio.run(scenario())
