"""`python manage.py seed_demo`: the demo a new user logs in to."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from fleet.choices import DeviceState
from fleet.models import Contact, Device
from programs.choices import EnrollmentStatus
from programs.models import Enrollment, Program
from texture_portal.demo.seed import DEMO_FLEET_CSV
from texture_portal.models import Workspace

pytestmark = pytest.mark.django_db


def run_seed(*args) -> str:
    """The seed's data (yesterday's rehearsed event is tested in tests/integrations/test_demo.py)."""
    out = StringIO()
    call_command("seed_demo", "--no-rehearsal", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_demo_and_prints_a_working_login(client):
    output = run_seed()
    logins = dict(
        re.findall(
            r"^\s+(\w+)\s+(?:Admin|Ops|Customer Support|Engineering|Program Lead)\s+password: (\S+)$", output, re.M
        )
    )
    assert set(logins) == {"demo", "ops", "support", "engineering", "programlead"}, output
    password = logins["demo"]
    workspace = Workspace.objects.get(organization__slug="timber-ridge", name="production")
    assert workspace.timezone == "America/Los_Angeles"  # the admin shows the co-op's times in Pacific time
    assert Workspace.objects.filter(organization__slug="timber-ridge", name="sandbox").exists()
    program = Program.objects.get(workspace=workspace, slug="timber-ridge-2026-vpp")
    assert program.timezone == "America/Los_Angeles"  # an Oregon co-op enters its event windows in Pacific time
    strategy = program.strategies.get()
    assert (strategy.min_soc_percent, strategy.max_soc_percent) == (20, 100)
    rows = DEMO_FLEET_CSV.read_text().strip().splitlines()[1:]
    assert Device.objects.filter(workspace=workspace, state=DeviceState.REGISTERED).count() == len(rows)
    # the fleet's customers, and the driver who connected their own Smartcar account (Texture Connect)
    assert Contact.objects.filter(workspace=workspace).count() == len({r.split(",")[0] for r in rows}) + 1
    connected = Device.objects.get(workspace=workspace, contact__reference_id="EV-7731")
    assert connected.state == DeviceState.ON_WORKSPACE and connected.device_type == "vehicle"
    assert Enrollment.objects.filter(program=program, status=EnrollmentStatus.APPROVED).count() == len(rows)

    assert client.login(username="demo", password=password)
    page = client.get(reverse("admin:fleet_device_changelist"))
    assert page.status_code == 200
    assert len(page.context["cl"].result_list) == len(rows) + 1
    client.logout()
    assert client.login(username="ops", password=logins["ops"])
    assert client.get(reverse("admin:index")).context["home_role"] == "ops"  # lands on the role's home


def test_seed_demo_is_idempotent_and_resets_the_password(client):
    run_seed()
    counts = (
        Device.objects.count(),
        Contact.objects.count(),
        Program.objects.count(),
        Workspace.objects.count(),
    )
    output = run_seed("--password", "another-demo-pass-2")
    assert "0 new devices" in output
    assert (
        Device.objects.count(),
        Contact.objects.count(),
        Program.objects.count(),
        Workspace.objects.count(),
    ) == counts
    assert client.login(username="demo", password="another-demo-pass-2")


def test_seed_demo_shows_a_partly_met_launch_checklist():
    from programs.selectors import program_launch_checklist

    run_seed()
    run_seed()  # idempotent: nothing signed twice, no phase skipped
    program = Program.objects.get(slug="timber-ridge-2026-vpp")
    assert program.phase == "discovery"
    checklist = program_launch_checklist(program=program)
    met = {c.key for c in checklist.criteria if c.met}
    assert met == {
        "data_scope_confirmed",
        "contacts_and_launch_date_agreed",
        "enrollment_requirements_confirmed",
        "dispatch_configuration_confirmed",
        "devices_imported_and_linked",
    }
    assert {s.signed_off_by.username for s in program.sign_offs.all()} == {"demo"}
    assert (
        "Signed off by Demo Operator on"
        in next(c for c in checklist.criteria if c.key == "data_scope_confirmed").figure
    )


def test_seed_demo_schedules_a_test_event_that_runs_by_itself_once_per_run():
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.models import DispatchEvent

    before = timezone.now()
    run_seed()
    event = DispatchEvent.objects.get()
    assert event.status == "scheduled" and event.is_test
    assert event.starts_at >= before + timedelta(minutes=5) and event.starts_at.minute % 15 == 0
    assert event.ends_at - event.starts_at == timedelta(minutes=30)
    assert [a.action_type for a in event.actions.all()] == ["discharge"]
    run_seed()  # still to come: not another one
    assert DispatchEvent.objects.count() == 1
    DispatchEvent.objects.update(status="completed")
    run_seed()  # the last one ran: the next run of the demo gets its own
    assert DispatchEvent.objects.filter(status="scheduled").count() == 1
