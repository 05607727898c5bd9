"""Per-key rate limit: a fixed window counter in the cache (Redis in production: `INCR` is atomic across
workers; local memory in development). Answered with 429 and `Retry-After`; every response carries
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds)."""

import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from texture_portal.api_keys import ApiKey


def rate_limit() -> tuple[int, int]:
    """(requests, window seconds) from API_RATE_LIMIT, e.g. "600/minute"."""
    count, _, period = settings.API_RATE_LIMIT.partition("/")
    seconds = {"second": 1, "minute": 60, "hour": 3600}[period.strip() or "minute"]
    return int(count), seconds


class ApiKeyRateThrottle(BaseThrottle):
    cache_prefix = "texture:ratelimit"

    def allow_request(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True  # unauthenticated requests are refused by authentication, not counted here
        limit, window = rate_limit()
        now = time.time()
        window_start = int(now // window) * window
        key = f"{self.cache_prefix}:{api_key.pk}:{window_start}"
        # incr first: once the window's counter exists a request costs Django's incr alone (EXISTS + INCR on
        # Redis; ADD before it made three round trips). A missing counter (the window's first request) is
        # created with ADD, atomic, so two first requests count 1 and 2.
        try:
            used = cache.incr(key)
        except ValueError:
            if cache.add(key, 1, timeout=window + 5):
                used = 1
            else:
                try:
                    used = cache.incr(key)
                except ValueError:  # evicted between add and incr
                    cache.set(key, 1, timeout=window + 5)
                    used = 1
        self.reset_in = max(1, math.ceil(window_start + window - now))
        request.rate_limit = {"limit": limit, "remaining": max(0, limit - used), "reset": self.reset_in}
        return used <= limit

    def wait(self):
        return self.reset_in
