"""Each OEM's published limits, held across every worker: a token bucket per OEM (calls per second) and, where
the OEM caps calls in flight (SolarEdge: 3 from one source IP), a counting semaphore beside it. Both live in
Redis when one is configured (in process memory otherwise: eager mode, tests, the SQLite demo's single process).

The bucket: each OEM's limit is for the whole account/app, not per worker process, so it lives in Redis and is
updated atomically by a Lua script. A caller reserves a token and sleeps until it is due; reservations queue up
in order instead of hammering the OEM and collecting 429s.

The semaphore: a sorted set of holders scored by the end of their lease, taken and pruned by one Lua script, so
a worker that dies holding a slot frees it when its lease runs out (a call never outlives its HTTP timeout; the
lease is longer). Written here rather than taken from a library: redis-py's `Lock` (and python-redis-lock,
pottery's Redlock) are mutexes, not counting semaphores, and the one counting-semaphore package
(redis-semaphore) was last released in 2016 and keeps no lease. The sorted-set form is the well-known one
(Carlson, *Redis in Action* §6.3, "counting semaphores"), scored by Redis's own clock inside one script, so
the book's fairness counter (for clients whose clocks differ) is not needed.
"""

import threading
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache

from django.conf import settings

# KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns milliseconds to wait before the reserved token is due.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000) - 1
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate) * 1000) + 60000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000 / rate)
"""

# KEYS[1] the OEM's holders (sorted set: holder → end of its lease, ms); ARGV limit, holder, lease (ms).
# Drops holders whose lease ran out (a dead worker's slot), then takes a slot if one is free. Returns 1 or 0.
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], lease)
  return 1
end
return 0
"""


class NoFreeSlot(Exception):
    """No call slot of the OEM came free within the wait (its concurrency cap was held throughout)."""


class LocalTokenBucket:
    """The same algorithm in process memory (eager mode, tests, a single worker)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def reserve(self, key: str, rate: float, burst: float) -> float:
        with self._lock:
            now = time.monotonic()
            tokens, at = self._state.get(key, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate) - 1
            self._state[key] = (tokens, now)
            return 0.0 if tokens >= 0 else -tokens / rate


class RedisTokenBucket:
    def __init__(self, url: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=5)
        self._script = self._client.register_script(_RESERVE)

    def reserve(self, key: str, rate: float, burst: float) -> float:
        return int(self._script(keys=[f"texture:oem-bucket:{key}"], args=[rate, burst])) / 1000


class LocalSemaphores:
    """A bounded semaphore per OEM in process memory: caps this process's own calls in flight (with one
    process, all of them)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, key: str, limit: int, *, wait: float, lease: float):
        with self._lock:
            semaphore = self._semaphores.setdefault((key, limit), threading.BoundedSemaphore(limit))
        if not semaphore.acquire(timeout=wait):
            raise NoFreeSlot(key)
        try:
            yield
        finally:
            semaphore.release()


class RedisSemaphores:
    """The OEM's calls in flight across every worker: a slot is a member of a sorted set scored by the end of
    its lease (see the module's docstring). A waiting caller polls, backing off from 10 ms to 200 ms."""

    def __init__(self, url: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=5)
        self._take = self._client.register_script(_TAKE_SLOT)

    @contextmanager
    def slot(self, key: str, limit: int, *, wait: float, lease: float):
        name, holder = f"texture:oem-slots:{key}", uuid.uuid4().hex
        deadline, pause = time.monotonic() + wait, 0.01
        while not self._take(keys=[name], args=[limit, holder, int(lease * 1000)]):
            if time.monotonic() >= deadline:
                raise NoFreeSlot(key)
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.2)
        try:
            yield
        finally:
            self._client.zrem(name, holder)


class RateLimiter:
    def __init__(
        self,
        backend,
        limits: dict[str, tuple[float, float]],
        *,
        semaphores=None,
        concurrency: dict[str, int] | None = None,
        slot_wait: float = 60.0,
        slot_lease: float = 60.0,
    ):
        self.backend = backend
        self.limits = limits
        self.semaphores = semaphores or LocalSemaphores()
        self.concurrency = concurrency or {}
        self.slot_wait = slot_wait
        self.slot_lease = slot_lease

    def acquire(self, channel: str) -> float:
        """Block until the OEM's bucket grants one call; returns the seconds waited."""
        limit = self.limits.get(channel)
        if not limit or not limit[0]:
            return 0.0
        wait = self.backend.reserve(channel, *limit)
        if wait > 0:
            time.sleep(wait)
        return wait

    @contextmanager
    def slot(self, channel: str):
        """Hold one of the OEM's call slots for the duration of a call (no cap: nothing to hold). Raises
        NoFreeSlot when none came free within `slot_wait` seconds."""
        limit = self.concurrency.get(channel)
        if not limit:
            yield
            return
        with self.semaphores.slot(channel, limit, wait=self.slot_wait, lease=self.slot_lease):
            yield


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    url = settings.OEM_RATE_LIMIT_REDIS_URL
    return RateLimiter(
        RedisTokenBucket(url) if url else LocalTokenBucket(),
        settings.OEM_RATE_LIMITS,
        semaphores=RedisSemaphores(url) if url else LocalSemaphores(),
        concurrency=settings.OEM_CONCURRENCY_LIMITS,
        slot_wait=settings.OEM_CONCURRENCY_WAIT_SECONDS,
        slot_lease=settings.OEM_CONCURRENCY_LEASE_SECONDS,
    )
