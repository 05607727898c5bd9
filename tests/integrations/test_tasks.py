"""Tasks in eager mode (the embedded default) and the shared token bucket on Redis."""

import threading
import time

import pytest

from fleet.models import Device, TelemetryReading
from integrations import services
from integrations.models import IntegrationRun
from integrations.ratelimit import LocalTokenBucket, RateLimiter, RedisTokenBucket
from tests.factories import WorkspaceFactory
from tests.integrations.test_services import make_device, make_integration


@pytest.fixture
def tesla_pair(sim, db):
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    for serial in ("TG100000000801", "TG100000000802"):
        sim.state.add_device("tesla", serial, kind="battery")
        make_device(workspace, "tesla", serial)
    return workspace, integration


def test_discovery_all_and_sync_all_fan_out_per_enabled_integration(sim, tesla_pair):
    from integrations.tasks import discovery_run_all_task, telemetry_sync_all_task

    workspace, integration = tesla_pair
    assert discovery_run_all_task() == 1
    assert Device.objects.filter(state="on_workspace").count() == 2
    assert telemetry_sync_all_task(cadence_minutes=15) == 0  # Tesla syncs every 5 minutes
    assert telemetry_sync_all_task(cadence_minutes=5) == 1
    assert TelemetryReading.objects.count() == 2


def test_eager_sync_records_a_429_without_blocking_and_the_next_run_fills_in(sim, tesla_pair):
    from integrations.tasks import telemetry_sync_task

    workspace, integration = tesla_pair
    services.discovery_run(integration=integration)
    sim.state.inject("tesla", "demo", "rate_limit", retry_after=30)
    ids = list(Device.objects.values_list("pk", flat=True))
    started = time.monotonic()
    telemetry_sync_task.delay(integration.pk, ids)
    assert time.monotonic() - started < 5  # no 30 s sleep inside a web request
    first = IntegrationRun.objects.get(kind="telemetry")
    assert first.status in ("failed", "partial") and "429" in first.message
    telemetry_sync_task.delay(integration.pk, ids)
    assert TelemetryReading.objects.count() == 2
    assert Device.objects.filter(state="on_workspace").count() == 2  # a failing OEM is not an offline device


def test_retry_countdown_honours_retry_after_and_never_retries_too_early():
    from integrations.tasks import MAX_COUNTDOWN, _countdown

    assert all(30 <= _countdown(0, 30) <= 32 for _ in range(20))
    assert all(_countdown(8, None) <= MAX_COUNTDOWN for _ in range(20))  # no long ETAs on Redis
    assert all(_countdown(0, MAX_COUNTDOWN) <= MAX_COUNTDOWN for _ in range(20))
    # the OEM asks to wait longer than a task may be held (SolarEdge until midnight): no retry at all, the
    # failure stays on the run and the next schedule picks it up
    assert _countdown(8, 3600) is None
    assert _countdown(0, MAX_COUNTDOWN + 1) is None


def test_local_bucket_spaces_calls_at_the_rate():
    limiter = RateLimiter(LocalTokenBucket(), {"x": (20.0, 2.0)})
    started = time.monotonic()
    for _ in range(12):
        limiter.acquire("x")
    # 2 from the burst, then 10 at 20/s
    assert time.monotonic() - started >= 0.45


@pytest.mark.redis
def test_redis_bucket_is_shared_between_limiters():
    from tests.conftest import redis_url

    url = redis_url()
    import redis

    redis.Redis.from_url(url).delete("texture:oem-bucket:shared-test")
    a = RateLimiter(RedisTokenBucket(url), {"shared-test": (25.0, 5.0)})
    b = RateLimiter(RedisTokenBucket(url), {"shared-test": (25.0, 5.0)})

    def hammer(limiter):
        for _ in range(15):
            limiter.acquire("shared-test")

    started = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 30 calls from two "workers" through one bucket: 5 burst + 25 at 25/s ≈ 1 s (each alone would take 0.4 s)
    assert time.monotonic() - started >= 0.9


def test_channels_without_an_adapter_say_so_and_never_crash_a_job(sim, db, monkeypatch):
    from integrations.adapters.registry import ADAPTERS
    from integrations.tasks import discovery_run_all_task, discovery_run_task, telemetry_sync_all_task

    monkeypatch.delitem(ADAPTERS, "chargepoint")  # as for an OEM added to the catalog before its adapter

    workspace = WorkspaceFactory()
    integration = services.workspace_integration_save(
        workspace=workspace, channel="chargepoint", actor=None, enabled=True, credentials={"api_key": "k"}
    )
    device = make_device(workspace, "chargepoint", "CP-0001", device_type="charger")
    assert discovery_run_all_task() == 0
    assert telemetry_sync_all_task() == 0
    device.refresh_from_db()
    assert "no ChargePoint adapter yet" in device.state_reason
    assert discovery_run_task(integration.pk) == "No adapter for the “chargepoint” channel yet."
    assert "Connection failed" in services.integration_test_connection(integration=integration, actor=None)


def test_rejected_credentials_end_the_task_without_raising(sim, tesla_pair):
    from integrations.tasks import discovery_run_task

    workspace, integration = tesla_pair
    integration.credentials = {**integration.credentials, "refresh_token": "revoked"}
    integration.save(update_fields=["credentials"])
    assert discovery_run_task.delay(integration.pk).get().startswith("failed: Tesla token refresh refused")
