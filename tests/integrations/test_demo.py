"""The demo path: the simulator seeded from the demo fleet CSV, the demo seed enabling the integrations,
and the in-process schedule moving every device onto the workspace with telemetry."""

from collections import Counter
from datetime import timedelta

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
        assert sim.state.load_fleet_csv(DEMO_FLEET_CSV) == 30
        # as `make serve`'s simulator: it knows the driver the seed connects through Texture Connect
        from integrations.simulator.oauth import demo_customers_add

        demo_customers_add(sim.state)
        settings.OEM_BASE_URLS = sim.base_urls()
        result = seed_demo(password="demo-password-123", rehearse=False)
        assert set(
            WorkspaceIntegration.objects.filter(workspace=result.workspace, enabled=True).values_list(
                "channel", flat=True
            )
        ) == {"tesla", "franklinwh", "enphase", "solaredge", "emporia", "chargepoint", "smartcar"}
        assert Device.objects.filter(state="registered").count() == 30
        call_command("run_integration_schedule", "--once", stdout=open("/dev/null", "w"))  # noqa: SIM115
        # the fleet, and the vehicle its driver connected (read with the driver's own Smartcar grant)
        assert Device.objects.filter(state="on_workspace").count() == 30 + 1
        # Tesla, FranklinWH, Emporia and ChargePoint sync every 5 minutes, Enphase, SolarEdge and Smartcar every
        # 15: one round reads them all, so every one of the seven OEMs is live
        reporting = set(TelemetryReading.objects.values_list("device", flat=True))
        silent = list(Device.objects.exclude(pk__in=reporting).values_list("system_identifier", "oem_data"))
        assert len(reporting) == 30 + 1, silent
        # grid services as each OEM shows them: Tesla's flag (one demo site not enrolled), nothing from
        # FranklinWH, nothing from Enphase outside an event, Emporia, SolarEdge (read-only) and Smartcar have no
        # such channel, ChargePoint's load shed is one
        shown = Counter(Device.objects.values_list("manufacturer__slug", "grid_services_status"))
        assert shown == {
            ("tesla", "enrolled"): 4,
            ("tesla", "not_enrolled"): 1,
            ("franklinwh", "unknown"): 5,
            ("enphase", "unknown"): 5,
            ("emporia", "unsupported"): 9,
            ("smartcar", "unsupported"): 1,
            ("solaredge", "unsupported"): 2,
            ("chargepoint", "enrolled"): 2,
            ("ford", "unsupported"): 1,
            ("chevrolet", "unsupported"): 1,
        }
        channels = set(Device.objects.values_list("manufacturer__integration_channel", flat=True))
        assert channels == {"tesla", "franklinwh", "enphase", "solaredge", "emporia", "chargepoint", "smartcar"}
        # re-seeding (a second `make demo`) keeps the integrations and resets their simulator credentials
        seed_demo(password="demo-password-123", rehearse=False)
        assert WorkspaceIntegration.objects.filter(workspace=result.workspace).count() == 7


@pytest.mark.django_db(transaction=True)  # the engine's on-commit work (commands, the report) runs as in production
def test_demo_seeds_a_user_per_role_and_yesterdays_test_event_with_its_report(settings, reference_data):
    """`make demo` shows a finished test event from the first minute: the seed runs yesterday's, for real,
    against the simulator (see texture_portal/demo/rehearsal.py), and one user per role lands on its home."""
    from django.contrib.auth import get_user_model

    from dispatch.choices import DispatchEventStatus
    from dispatch.models import DispatchEvent, EventReport
    from integrations.ratelimit import rate_limiter
    from texture_portal.choices import Role
    from texture_portal.demo.rehearsal import REHEARSAL_EVENT_NAME
    from texture_portal.models import WorkspaceMembership

    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    result = seed_demo(password="demo-password-123")

    assert result.rehearsal.ran and result.rehearsal.status == DispatchEventStatus.COMPLETED
    rehearsal = DispatchEvent.objects.get(pk=result.rehearsal.event_id)
    assert rehearsal.name == REHEARSAL_EVENT_NAME and rehearsal.is_test
    assert rehearsal.completed_end_to_end, rehearsal.status_reason
    report = EventReport.objects.get(event=rehearsal)
    assert rehearsal.ends_at < report.compiled_at <= rehearsal.ends_at + timedelta(hours=1)  # yesterday, on completion
    assert report.counts["commanded"] > 0 and report.counts["confirmed"] > 0
    assert report.counts["opted_out"] == 1  # the customer who called during the event
    offline = Device.objects.get(workspace=result.workspace, state="offline")  # the charger whose Wi-Fi dropped
    assert offline.device_type == "charger" and "No telemetry since" in offline.state_reason
    assert report.totals["battery"]["delivered_kwh"] > 0  # the simulator's batteries really discharged
    # an upcoming event too, for the ops home
    assert DispatchEvent.objects.filter(program=result.program, status=DispatchEventStatus.SCHEDULED).count() == 1

    roles = dict(WorkspaceMembership.objects.filter(workspace=result.workspace).values_list("user__username", "role"))
    assert roles == {
        "demo": Role.ADMIN,
        "ops": Role.OPS,
        "support": Role.CUSTOMER_SUPPORT,
        "engineering": Role.ENGINEERING,
        "programlead": Role.PROGRAM_LEAD,
    }
    assert {username for username, _, _ in result.logins} == set(roles)
    assert get_user_model().objects.get(username="ops").check_password("demo-password-123")

    # a second seed neither runs it again nor adds users
    again = seed_demo(password="demo-password-123")
    assert not again.rehearsal.ran
    assert DispatchEvent.objects.filter(name=REHEARSAL_EVENT_NAME).count() == 1


def test_the_demo_shows_true_alerts_raised_by_the_rules_not_seeded_rows(settings, django_capture_on_commit_callbacks):
    """What `make demo` shows: the charger the simulator keeps offline (as `run_oem_simulator` does) goes offline
    and the offline rule raises its alert; the test event starts below the program's participation floor and the
    participation rule raises that. Nothing else, and nothing before the demo runs."""
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    from dispatch.engine import dispatch_tick
    from dispatch.models import DispatchEvent, Participation
    from fleet.models import Alert
    from integrations.ratelimit import rate_limiter
    from integrations.services import offline_sweep
    from integrations.simulator.oauth import demo_customers_add
    from texture_portal.demo.seed import DEMO_ALERT_EMAIL, DEMO_OFFLINE_DEVICES

    rate_limiter.cache_clear()
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    with running_simulator() as sim:
        sim.state.load_fleet_csv(DEMO_FLEET_CSV)
        for oem, serial in DEMO_OFFLINE_DEVICES:
            sim.state.set_online(oem, serial, False)
        demo_customers_add(sim.state)  # as `make serve`'s simulator: the driver connected through Connect
        settings.OEM_BASE_URLS = sim.base_urls()
        result = seed_demo(password="demo-password-123", rehearse=False)
        assert not Alert.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("run_integration_schedule", "--once", stdout=open("/dev/null", "w"))  # noqa: SIM115
        [(_, serial)] = DEMO_OFFLINE_DEVICES
        charger = Device.objects.get(system_identifier=serial)
        assert charger.last_seen_at is None or charger.last_seen_at < timezone.now() - timedelta(minutes=15)
        # a quarter of an hour on (its history, if any, ends when its OEM lost it), the sweep gives up on it
        Device.objects.filter(pk=charger.pk).update(state_changed_at=timezone.now() - timedelta(minutes=20))
        with django_capture_on_commit_callbacks(execute=True):
            offline_sweep()
        charger.refresh_from_db()
        assert charger.state == "offline"
        # (its history backfill, read after discovery, may have brought it back for a moment and so resolved an
        # earlier alert: telemetry_ingest takes any newer reading, however old, as reporting again)
        offline = Alert.objects.get(subtype="DEVICE_OFFLINE", status="OPEN")
        assert offline.device_id == charger.pk and "Emporia reports the charger offline" in offline.description
        assert set(Alert.objects.values_list("device_id", flat=True)) == {charger.pk}
        assert mail.outbox and {tuple(m.to) for m in mail.outbox} == {(DEMO_ALERT_EMAIL,)}

        # the seeded test event starts (brought forward to now)
        event = DispatchEvent.objects.get(program=result.program)
        now = timezone.now()
        DispatchEvent.objects.filter(pk=event.pk).update(
            starts_at=now - timedelta(seconds=30), ends_at=now + timedelta(minutes=30)
        )
        event.actions.update(starts_at=now - timedelta(seconds=30), ends_at=now + timedelta(minutes=30))
        dispatch_tick(now=now)
        rows = Participation.objects.filter(event=event)
        included, targeted = rows.filter(included_at__isnull=False).count(), rows.count()
        # the offline charger, the Tesla without grid services and the read-only SolarEdge batteries can never
        # take part: always below 95 %; the ChargePoint stations and the Smartcar vehicles do
        assert targeted == 30 and included <= 26
        assert {"not_on_workspace", "no_grid_services", "unsupported"} <= set(
            rows.values_list("reason_code", flat=True)
        )
        taking_part = rows.filter(included_at__isnull=False)
        assert {"chargepoint", "smartcar"} <= set(
            taking_part.values_list("device__manufacturer__integration_channel", flat=True)
        )
        floor = Alert.objects.get(subtype="PARTICIPATION_BELOW_FLOOR")
        assert f"{included} of {targeted} targeted devices" in floor.description and floor.severity == "WARNING"
        assert Alert.objects.filter(status="OPEN").count() == 2
