"""The demo path: the simulator seeded from the demo fleet CSV, the demo seed enabling the integrations,
and the in-process schedule moving every device onto the workspace with telemetry."""

from collections import Counter

import pytest
from django.core.management import call_command

from fleet.models import Device, TelemetryReading
from integrations.models import WorkspaceIntegration
from texture_portal.demo.seed import DEMO_FLEET_CSV, seed_demo
from texture_portal.testing.simulator import running_simulator

pytestmark = pytest.mark.django_db


def test_demo_fleet_is_discovered_and_streams_with_no_internet(settings):
    from integrations.ratelimit import rate_limiter

    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    with running_simulator() as sim:
        assert sim.state.load_fleet_csv(DEMO_FLEET_CSV) == 24
        settings.OEM_BASE_URLS = sim.base_urls()
        result = seed_demo(password="demo-password-123")
        assert set(
            WorkspaceIntegration.objects.filter(workspace=result.workspace, enabled=True).values_list(
                "channel", flat=True
            )
        ) == {"tesla", "franklinwh", "enphase", "solaredge", "emporia", "chargepoint", "smartcar"}
        assert Device.objects.filter(state="registered").count() == 24
        call_command("run_integration_schedule", "--once", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert Device.objects.filter(state="on_workspace").count() == 24
        # Tesla, FranklinWH and Emporia sync every 5 minutes, Enphase every 15: one round reads them all
        assert TelemetryReading.objects.values("device").distinct().count() == 24
        # grid services as each OEM shows them: Tesla's flag (one demo site not enrolled), nothing from
        # FranklinWH, nothing from Enphase outside an event, Emporia has no such channel
        shown = Counter(Device.objects.values_list("manufacturer__slug", "grid_services_status"))
        assert shown == {
            ("tesla", "enrolled"): 4,
            ("tesla", "not_enrolled"): 1,
            ("franklinwh", "unknown"): 5,
            ("enphase", "unknown"): 5,
            ("emporia", "unsupported"): 9,
        }
        # re-seeding (a second `make demo`) keeps the integrations and resets their simulator credentials
        seed_demo(password="demo-password-123")
        assert WorkspaceIntegration.objects.filter(workspace=result.workspace).count() == 7
