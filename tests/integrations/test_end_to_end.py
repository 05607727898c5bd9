"""End to end with a real Celery worker on Redis and the simulator over HTTP:
registered (imported) → discovery → telemetry → offline → back on the workspace."""

from datetime import UTC, datetime, timedelta

import pytest

from fleet.models import Device, Manufacturer, TelemetryReading
from fleet.services import device_register
from integrations import services
from integrations.models import IntegrationRun
from tests.factories import SiteFactory, WorkspaceFactory
from texture_portal.events.models import PlatformEvent
from texture_portal.testing.celery_worker import celery_worker  # noqa: F401 - fixture
from texture_portal.testing.simulator import demo_credentials, running_simulator

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def sim_behind(settings):
    """The simulator's clock starts 40 minutes ago, so the worker's real-time offline sweep sees age."""
    from integrations.ratelimit import rate_limiter

    rate_limiter.cache_clear()
    settings.OEM_HTTP_TIMEOUT_SECONDS = 2.0
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=40)
    with running_simulator(frozen_at=start) as server:
        settings.OEM_BASE_URLS = server.base_urls()
        yield server


@pytest.mark.django_db(transaction=True)
def test_import_discover_stream_offline_and_back(sim_behind, celery_worker):  # noqa: F811
    from django.apps import apps

    from fleet.catalog import seed_manufacturers
    from integrations.tasks import discovery_run_task, offline_sweep_task, telemetry_sync_task

    seed_manufacturers(apps)  # an earlier transactional test may have flushed the migration-seeded catalog
    sim = sim_behind
    workspace = WorkspaceFactory()
    integration = services.workspace_integration_save(
        workspace=workspace, channel="tesla", actor=None, enabled=True, credentials=demo_credentials("tesla")
    )
    tesla = Manufacturer.objects.get(slug="tesla")
    serials = ["TG100000000701", "TG100000000702", "TG100000000703"]
    for serial in serials:
        sim.state.add_device("tesla", serial, kind="battery")
        device_register(
            workspace=workspace,
            site=SiteFactory(contact__workspace=workspace),
            manufacturer=tesla,
            system_identifier=serial,
            device_type="battery",
            actor=None,
        )

    discovery_run_task.delay(integration.pk)
    celery_worker.wait_for(
        lambda: Device.objects.filter(state="on_workspace").count() == 3, what="discovery by the worker"
    )
    assert PlatformEvent.objects.filter(type="device.discovered").count() == 3
    # discovery queued the devices' history (the days before now): the live readings come on top of it
    celery_worker.wait_for(
        lambda: IntegrationRun.objects.filter(kind="history").exclude(status="running").exists(),
        what="the history backfill discovery queued",
    )
    history = TelemetryReading.objects.count()
    assert history > 3 * 14 * 96

    ids = list(Device.objects.order_by("pk").values_list("pk", flat=True))
    telemetry_sync_task.delay(integration.pk, ids)
    celery_worker.wait_for(lambda: TelemetryReading.objects.count() == history + 3, what="the first telemetry sync")

    quiet = Device.objects.get(system_identifier=serials[0])
    quiet_since = quiet.last_seen_at  # its live readings: the first sync's and the one after it is back
    sim.state.set_online("tesla", quiet.system_identifier, False)
    sim.state.advance(40 * 60)
    # Tesla answers 429 with Retry-After: 2 to the first call: the worker backs off at least that long
    sim.state.inject("tesla", "demo", "rate_limit", retry_after=2)
    telemetry_sync_task.delay(integration.pk, ids)
    celery_worker.wait_for(lambda: TelemetryReading.objects.count() == history + 5, what="the second telemetry sync")
    celery_worker.wait_for(
        lambda: IntegrationRun.objects.filter(kind="telemetry", attempt=2).exclude(status="running").exists(),
        what="the retry after the 429",
    )
    limited, retried = IntegrationRun.objects.filter(kind="telemetry").order_by("started_at", "id")[1:3]
    assert "429" in limited.message and retried.attempt == 2
    assert (retried.started_at - limited.finished_at).total_seconds() >= 2
    offline_sweep_task.delay()
    celery_worker.wait_for(
        lambda: Device.objects.filter(pk=quiet.pk, state="offline").exists(), what="the offline sweep"
    )
    quiet.refresh_from_db()
    assert "408" in quiet.state_reason
    assert Device.objects.filter(state="on_workspace").count() == 2

    sim.state.set_online("tesla", quiet.system_identifier, True)
    sim.state.advance(60)
    telemetry_sync_task.delay(integration.pk, ids)
    celery_worker.wait_for(lambda: Device.objects.filter(pk=quiet.pk, state="on_workspace").exists(), what="recovery")
    assert PlatformEvent.objects.filter(type="device.connected", data__id=quiet.pk).exists()
    assert TelemetryReading.objects.filter(device=quiet, measured_at__gte=quiet_since).count() == 2
    # every job left a run row staff can read
    assert IntegrationRun.objects.filter(kind="telemetry").count() >= 3
    assert IntegrationRun.objects.filter(kind="discovery", status="succeeded").count() == 1
