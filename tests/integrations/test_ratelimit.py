"""integrations.ratelimit: each OEM's published limits, held across workers. The per-OEM defaults; the call-slot
semaphore beside the token bucket (in process memory, and in Redis across workers, where a dead worker's slot
frees when its lease runs out); SolarEdge's 3 calls in flight held by two adapters ("workers") against the
simulator, which answers a 4th concurrent call with 429 as SolarEdge does."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from integrations.adapters import DeviceRef, RateLimited
from integrations.ratelimit import (
    LocalSemaphores,
    LocalTokenBucket,
    NoFreeSlot,
    RateLimiter,
    RedisSemaphores,
    RedisTokenBucket,
)
from tests.integrations.conftest import adapter


class InFlight:
    """Counts calls inside their slot; keeps the most seen at once and each call's entry time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.entered: list[float] = []

    def call(self, limiter: RateLimiter, channel: str, hold: float) -> None:
        with limiter.slot(channel):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
                self.entered.append(time.monotonic())
            time.sleep(hold)
            with self.lock:
                self.now -= 1


def test_defaults_are_each_oems_own_not_one_rate_for_all(settings):
    from texture_portal import settings as configured

    rates = {slug: configured.OEM_RATE_LIMITS[slug] for slug in configured.OEM_SLUGS}
    assert set(rates) == set(configured.OEM_RATE_LIMIT_DEFAULTS)
    assert rates["tesla"] == (5.0, 5.0)  # Tesla Fleet API: 5 requests/s for energy devices
    assert rates["enphase"] == (5.0, 5.0)  # Enphase Partner plan: 300 a minute
    assert rates["solaredge"][0] == 0  # no per-second limit: 300 a day (the adapter's quota) and 3 in flight
    assert {slug: 3 if slug == "solaredge" else 0 for slug in rates} == configured.OEM_CONCURRENCY_LIMITS
    assert configured.OEM_CONCURRENCY_LEASE_SECONDS >= 3 * configured.OEM_HTTP_TIMEOUT_SECONDS


def test_a_zero_rate_is_no_per_second_limit():
    limiter = RateLimiter(LocalTokenBucket(), {"x": (0.0, 0.0)})
    started = time.monotonic()
    assert all(limiter.acquire("x") == 0 for _ in range(50))
    assert time.monotonic() - started < 0.5


def test_local_slots_make_a_fourth_concurrent_call_wait():
    limiter = RateLimiter(LocalTokenBucket(), {}, semaphores=LocalSemaphores(), concurrency={"x": 3}, slot_wait=5)
    seen = InFlight()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: seen.call(limiter, "x", 0.3), range(4)))
    assert seen.most == 3
    assert sorted(seen.entered)[3] - started >= 0.25  # the 4th entered only when one of the first 3 left
    # an OEM without a cap holds nothing
    free = InFlight()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: free.call(limiter, "y", 0.2), range(4)))
    assert free.most == 4


def test_a_caller_that_waits_too_long_for_a_slot_is_told_so():
    limiter = RateLimiter(LocalTokenBucket(), {}, concurrency={"x": 1}, slot_wait=0.1)
    with limiter.slot("x"):
        started = time.monotonic()
        with pytest.raises(NoFreeSlot), limiter.slot("x"):
            pass
        assert 0.09 <= time.monotonic() - started < 1
    with limiter.slot("x"):  # released on the way out, the error's path included
        pass


@pytest.fixture
def redis_slots():
    from tests.conftest import redis_url

    url = redis_url()
    client = redis.Redis.from_url(url)
    client.delete("texture:oem-slots:slots-test")
    yield url
    client.delete("texture:oem-slots:slots-test")


@pytest.mark.redis
def test_redis_slots_make_a_fourth_concurrent_call_wait_across_workers(redis_slots):
    """Four workers, each with its own limiter and Redis connection (as separate processes would be), call at
    once: three hold the OEM's slots, the fourth waits until one is given back."""
    workers = [
        RateLimiter(
            LocalTokenBucket(),
            {},
            semaphores=RedisSemaphores(redis_slots),
            concurrency={"slots-test": 3},
            slot_wait=10,
            slot_lease=30,
        )
        for _ in range(4)
    ]
    seen = InFlight()
    barrier = threading.Barrier(4)

    def work(limiter):
        barrier.wait()
        seen.call(limiter, "slots-test", 0.5)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(limiter,)) for limiter in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen.most == 3
    entered = sorted(t - started for t in seen.entered)
    assert entered[2] < 0.4 and entered[3] >= 0.45  # the fourth entered as one of the first three left
    assert redis.Redis.from_url(redis_slots).zcard("texture:oem-slots:slots-test") == 0  # all given back


@pytest.mark.redis
def test_redis_slot_of_a_dead_worker_frees_when_its_lease_runs_out(redis_slots):
    dead = RedisSemaphores(redis_slots)
    slot = dead.slot("slots-test", 1, wait=1, lease=0.4)
    slot.__enter__()  # the worker dies holding it: never given back
    alive = RateLimiter(
        LocalTokenBucket(),
        {},
        semaphores=RedisSemaphores(redis_slots),
        concurrency={"slots-test": 1},
        slot_wait=0.1,
        slot_lease=30,
    )
    with pytest.raises(NoFreeSlot), alive.slot("slots-test"):
        pass
    alive.slot_wait = 5
    started = time.monotonic()
    with alive.slot("slots-test"):
        waited = time.monotonic() - started
    assert 0.1 <= waited < 1.0  # taken as the dead worker's lease ran out, not before


@pytest.mark.redis
def test_two_workers_reading_solaredge_never_go_past_its_three_calls_in_flight(sim, settings, redis_slots):
    """Two SolarEdge adapters (two workers' syncs, each reading 3 sites at a time) against the simulator, which
    answers a 4th concurrent call with 429: through the shared slots, no call is refused. Without them (the
    control), the same syncs collect SolarEdge's 429."""
    from integrations.ratelimit import rate_limiter

    sites = {}
    for n in range(6):
        serial = f"7E15{n:08d}"
        sim.state.add_device("solaredge", serial, kind="battery", number=200 + n)
        sites[serial] = str(sim.state.device("solaredge", serial).number)
    sim.state.latency["solaredge"] = 0.15
    refs = [DeviceRef(serial=serial, external_id=site, oem_data={}) for serial, site in sites.items()]

    def sync_twice_at_once():
        sim.state.max_in_flight.clear()
        workers = [adapter(sim, "solaredge"), adapter(sim, "solaredge")]
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(worker.fetch_telemetry_many, refs) for worker in workers]
            return [future.exception() or future.result() for future in futures]

    settings.OEM_RATE_LIMIT_REDIS_URL = redis_slots
    settings.OEM_CONCURRENCY_LIMITS = {"solaredge": 3}
    settings.OEM_CONCURRENCY_WAIT_SECONDS = 10
    rate_limiter.cache_clear()
    assert isinstance(rate_limiter().semaphores, RedisSemaphores)
    for outcome in sync_twice_at_once():
        assert not isinstance(outcome, Exception), outcome
        assert {serial for serial, reading in outcome.items() if not isinstance(reading, Exception)} == set(sites)
    assert sim.state.max_in_flight["solaredge"] == 3

    settings.OEM_CONCURRENCY_LIMITS = {}
    rate_limiter.cache_clear()
    outcomes = sync_twice_at_once()
    assert sim.state.max_in_flight["solaredge"] > 3
    assert any(isinstance(outcome, RateLimited) for outcome in outcomes)
    rate_limiter.cache_clear()


def test_redis_bucket_and_slots_are_what_a_configured_redis_gets(settings):
    from integrations.ratelimit import rate_limiter

    settings.OEM_RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:6379/5"  # clients connect lazily: nothing is called
    rate_limiter.cache_clear()
    try:
        limiter = rate_limiter()
        assert isinstance(limiter.backend, RedisTokenBucket) and isinstance(limiter.semaphores, RedisSemaphores)
        assert limiter.concurrency == settings.OEM_CONCURRENCY_LIMITS
    finally:
        rate_limiter.cache_clear()
