import pytest

from texture_portal.testing.simulator import running_simulator


@pytest.fixture
def sim(settings):
    """The OEM simulator over real HTTP, with every adapter's base URL pointed at it."""
    from integrations.ratelimit import rate_limiter

    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    settings.OEM_HTTP_TIMEOUT_SECONDS = 1.0
    with running_simulator() as server:
        settings.OEM_BASE_URLS = server.base_urls()
        yield server
    rate_limiter.cache_clear()


def adapter(sim, channel, **overrides):
    from integrations.adapters import adapter_class
    from texture_portal.testing.simulator import demo_credentials

    credentials = {**demo_credentials(channel), **overrides}
    return adapter_class(channel)(credentials=credentials, base_url=f"{sim.url}/{channel}", timeout=1.0)
