"""franklinwh (richo/franklinwh-python, the Home Assistant integration's client) against the simulator, through
its public calls: `TokenFetcher` login, `Client.get_home_gateway_list`, `get_composite_info`, `set_mode`.

Redirection: the SDK builds every HTTP client through `HttpClientFactory.set_client_factory` (its documented
hook); the factory here gives an `httpx.AsyncClient` whose transport sends what the SDK addresses to
`https://energy.franklinwh.com/` to the simulator's `/franklinwh/` instead. A transport, not `Client(url_base=…)`:
login, the gateway list and `set_mode` use the SDK's fixed `DEFAULT_URL_BASE`, not `url_base`.
"""

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from franklinwh import Client, HttpClientFactory, Mode, TokenFetcher
from franklinwh.client import InvalidCredentialsException

from integrations.simulator import DEMO_CREDENTIALS
from integrations.simulator.state import SELF_CONSUMPTION
from texture_portal.testing.simulator import running_simulator

FRANKLIN_HOST = "energy.franklinwh.com"
# The TOU profile ids the SDK's `Mode` constructors send: they hold on gateways set up with them (older ones);
# newer gateways have ids of their own, which the SDK cannot read (oem-apis.md §2).
LEGACY_PROFILE_IDS = {1: 9322, 2: 9323, 3: 9324}


class SimulatorTransport(httpx.AsyncBaseTransport):
    """Sends requests for FranklinWH's cloud to the simulator (plain HTTP, `/franklinwh` prefix)."""

    def __init__(self, simulator_url: str):
        self.target = httpx.URL(simulator_url)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == FRANKLIN_HOST, f"the SDK called {request.url}, not FranklinWH's cloud"
        request.url = request.url.copy_with(
            scheme=self.target.scheme,
            host=self.target.host,
            port=self.target.port,
            raw_path=b"/franklinwh" + request.url.raw_path,
        )
        request.headers["Host"] = self.target.netloc.decode()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def sim():
    """The simulator at a fixed noon, gateway time: today's counters do not pass local midnight in a test."""
    with running_simulator(frozen_at=datetime(2026, 7, 15, 19, 0, tzinfo=UTC)) as server:
        yield server


@pytest.fixture
def franklin_cloud(sim):
    previous = HttpClientFactory.factory
    HttpClientFactory.set_client_factory(lambda: httpx.AsyncClient(transport=SimulatorTransport(sim.url)))
    yield sim
    HttpClientFactory.set_client_factory(previous)


def demo_fetcher(password: str | None = None) -> TokenFetcher:
    creds = DEMO_CREDENTIALS["franklinwh"]
    return TokenFetcher(creds["account"], password or creds["password"])


def test_login_discovery_telemetry_set_mode_and_re_read(franklin_cloud):
    sim = franklin_cloud
    gateway = sim.state.add_device(
        "franklinwh", "10060006A02F24170087", kind="battery", soc=58.0, reserve=20.0, mode=SELF_CONSUMPTION,
        profile_ids=dict(LEGACY_PROFILE_IDS),
    )  # fmt: skip

    async def scenario():
        client = Client(demo_fetcher(), gateway.serial)
        try:
            # the first call goes out with no token, gets the body code 401 and logs in (the SDK's retry)
            gateways = await client.get_home_gateway_list()
            assert [g["id"] for g in gateways] == [gateway.serial]
            assert client.token and client.fetcher.info["token"] == client.token

            info = await client.get_composite_info()
            assert info["currentWorkMode"] == 2  # self-consumption
            runtime = info["runtimeData"]
            assert runtime["soc"] == pytest.approx(58.0, abs=0.5)
            assert {"p_sun", "p_fhp", "p_uti", "p_load", "p_gen", "genStat"} <= runtime.keys()
            # today's energy counters (kWh), which the SDK's `get_stats` reads into `Totals`: they balance
            sources = runtime["kwh_sun"] + runtime["kwh_uti_in"] + runtime["kwh_fhp_di"] + runtime["kwh_gen"]
            sinks = runtime["kwh_load"] + runtime["kwh_uti_out"] + runtime["kwh_fhp_chg"]
            assert sources == pytest.approx(sinks, abs=0.05)

            await client.set_mode(Mode.emergency_backup(soc=100))

            info = await client.get_composite_info()
            assert info["currentWorkMode"] == 3
            assert info["runtimeData"]["name"] == "Emergency Backup"
            assert info["runtimeData"]["p_fhp"] < 0  # charging (kW, + discharging)

            # half an hour of backup: today's charge counter grows by what the aPower took in (5 kW)
            charged_before = info["runtimeData"]["kwh_fhp_chg"]
            sim.state.advance(1800)
            runtime = (await client.get_composite_info())["runtimeData"]
            assert runtime["kwh_fhp_chg"] - charged_before == pytest.approx(gateway.max_power_w / 1000 * 0.5, abs=0.02)
        finally:
            await client.session.aclose()

    asyncio.run(scenario())
    assert gateway.reserve == 100.0


def test_set_mode_with_the_sdks_profile_ids_does_nothing_on_a_gateway_with_its_own(franklin_cloud):
    """FranklinWH answers an unknown `currendId` with body code 400 (HTTP 200), which `set_mode` does not look
    at: the mode stays as it was, and only a re-read shows it."""
    sim = franklin_cloud
    gateway = sim.state.add_device("franklinwh", "10060006A02F24170088", kind="battery", mode=SELF_CONSUMPTION)
    assert set(gateway.profile_ids.values()).isdisjoint(LEGACY_PROFILE_IDS.values())

    async def scenario():
        client = Client(demo_fetcher(), gateway.serial)
        try:
            await client.set_mode(Mode.emergency_backup(soc=100))
            assert (await client.get_composite_info())["currentWorkMode"] == 2
        finally:
            await client.session.aclose()

    asyncio.run(scenario())
    assert gateway.mode == SELF_CONSUMPTION


def test_a_wrong_password_is_the_sdks_invalid_credentials_error(franklin_cloud):
    sim = franklin_cloud
    gateway = sim.state.add_device("franklinwh", "10060006A02F24170089", kind="battery")

    async def scenario():
        with pytest.raises(InvalidCredentialsException, match="account or password error"):
            await demo_fetcher("not-the-password").get_token()
        # a client whose login fails: its first call's 401 makes it log in, which raises
        client = Client(demo_fetcher("not-the-password"), gateway.serial)
        try:
            with pytest.raises(InvalidCredentialsException):
                await client.get_composite_info()
        finally:
            await client.session.aclose()

    asyncio.run(scenario())
