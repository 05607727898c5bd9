"""A token bucket per OEM, shared by every worker through Redis (in-process when no Redis is configured).

Each OEM's published limit is for the whole account/app, not per worker process, so the bucket lives in
Redis and is updated atomically by a Lua script. A caller reserves a token and sleeps until it is due;
reservations queue up in order instead of hammering the OEM and collecting 429s.
"""

import threading
import time
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


class RateLimiter:
    def __init__(self, backend, limits: dict[str, tuple[float, float]]):
        self.backend = backend
        self.limits = limits

    def acquire(self, channel: str) -> float:
        """Block until the OEM's bucket grants one call; returns the seconds waited."""
        limit = self.limits.get(channel)
        if not limit:
            return 0.0
        wait = self.backend.reserve(channel, *limit)
        if wait > 0:
            time.sleep(wait)
        return wait


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    url = settings.OEM_RATE_LIMIT_REDIS_URL
    backend = RedisTokenBucket(url) if url else LocalTokenBucket()
    return RateLimiter(backend, settings.OEM_RATE_LIMITS)
