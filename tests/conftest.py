"""Test-wide fixtures and the services switch.

Tests marked `postgres` or `redis` need those servers. On a bare laptop they skip; with REQUIRE_SERVICES=1
(CI) a missing server fails the run instead, so CI can never go green by skipping them.
"""

import os
import shutil

import pytest

# The Celery worker fixtures' environment (a test module overrides `celery_env` to set its own).
from texture_portal.testing.celery_worker import celery_env  # noqa: F401

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _missing(reason: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"


def pytest_sessionstart(session):
    if REQUIRE_SERVICES:
        from django.conf import settings

        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine:
            raise pytest.UsageError(f"REQUIRE_SERVICES=1 needs DATABASE_URL to point at PostgreSQL (got {engine}).")


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres"):
        from django.conf import settings

        if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
            _missing("needs PostgreSQL: set DATABASE_URL=postgres://…")
    if item.get_closest_marker("browser"):
        if shutil.which("chromium") is None:
            _missing("needs Debian's chromium on PATH (apt-get install chromium)")
        try:
            import playwright  # noqa: F401
        except ImportError:
            _missing("needs the playwright package (pip install -e '.[dev]')")
    if item.get_closest_marker("redis"):
        import redis

        try:
            redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping()
        except redis.RedisError as exc:
            _missing(f"needs Redis at {redis_url()}: {exc}")


@pytest.fixture
def tenants(db):
    """Two organizations with one workspace each, a staff member in each, and a superuser."""
    from tests.factories import two_tenants

    return two_tenants()


@pytest.fixture
def reference_data(django_db_blocker):
    """What the data migrations create (role groups, manufacturer catalog). A transactional test's flush
    removes it, so tests with `transaction=True` ask for it again (idempotent)."""
    from django.apps import apps

    from fleet.catalog import seed_manufacturers
    from texture_portal.roles import sync_role_groups

    with django_db_blocker.unblock():
        seed_manufacturers(apps)
        sync_role_groups(apps)


@pytest.fixture(autouse=True)
def _kept_adapters_closed():
    """Adapters a thread keeps between commands (`adapter_reused`) do not outlive the test that made them."""
    yield
    from integrations.adapters import adapters_reused_close

    adapters_reused_close()


@pytest.fixture(autouse=True)
def _oem_calls_unpaced(settings):
    """The simulator answers in microseconds: tests do not wait on the OEMs' real per-second limits (Tesla's
    5 a second would add minutes); a test of the pacing sets its own. The call-slot caps (SolarEdge's 3 in
    flight, which the simulator enforces) stay."""
    from integrations.ratelimit import rate_limiter

    settings.OEM_RATE_LIMITS = {}
    rate_limiter.cache_clear()
    yield
    rate_limiter.cache_clear()


@pytest.fixture
def page(monkeypatch):
    """A page of Debian's chromium driven by Playwright (headless, never a downloaded browser)."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        browser.close()
