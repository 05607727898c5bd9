"""The demo organization, workspaces, program, staff user and a small fleet (idempotent).

The fleet comes from `demo_fleet.csv` (the bulk-import column contract of docs/domain.md); its serials are the
ones the OEM simulator knows, so discovery finds them: devices of all seven integrations (Tesla, FranklinWH,
Enphase and SolarEdge batteries, Emporia and ChargePoint chargers, Ford and Chevrolet EVs through Smartcar).
"""

import csv
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from fleet.models import Contact, Device, Manufacturer, Site
from fleet.services import contact_create, device_register, site_create
from programs.choices import PHASE_ORDER, LaunchCriterion, ProgramPhase
from programs.models import Enrollment, LaunchCriterionSignOff, Program
from programs.selectors import program_launch_checklist
from programs.services import enrollment_submit, launch_criterion_sign_off, program_create, program_set_phase
from texture_portal.choices import AuditSource, Role, WorkspaceKind
from texture_portal.models import Organization, Workspace
from texture_portal.services import membership_grant, organization_create, workspace_create

DEMO_FLEET_CSV = Path(__file__).with_name("demo_fleet.csv")
DEMO_ORGANIZATION = "Timber Ridge Electric Co-op"
DEMO_PROGRAM_SLUG = "timber-ridge-2026-vpp"
DEMO_USERNAME = "demo"
DEMO_TIMEZONE = "America/Los_Angeles"  # an Oregon co-op: its staff read and enter times in Pacific time
# One user per role, each a member of the production workspace only (the Admin, `demo`, holds both workspaces).
DEMO_ROLE_USERS = {
    Role.OPS: ("ops", "Olivia", "Ops"),
    Role.CUSTOMER_SUPPORT: ("support", "Sam", "Support"),
    Role.ENGINEERING: ("engineering", "Eli", "Engineer"),
    Role.PROGRAM_LEAD: ("programlead", "Priya", "Lead"),
}
# What the demo's OEM simulator shows of the fleet beyond the CSV: one member's Emporia charger has lost its
# Wi-Fi (`run_oem_simulator` takes it offline), so once the demo has run a quarter of an hour the offline rule
# has a true alert to show. The program's participation floor is the co-op's own (a small pilot expecting nearly
# every device to take part): that charger, and a Tesla whose site is not enrolled in grid services, cannot take
# part in the demo's grid-interaction test event, so it starts below the floor and the participation rule says so.
DEMO_OFFLINE_DEVICES = [("emporia", "A234689519")]
DEMO_PARTICIPATION_FLOOR_PERCENT = 95
DEMO_ALERT_EMAIL = "ops@timber-ridge.example"


@dataclass
class DemoResult:
    workspace: Workspace
    program: Program
    username: str
    password: str
    devices_created: int
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # (username, role label, password)
    workspace_admin: object = None
    rehearsal: object = None
    connect_note: str = ""


def _workspace(organization, name, kind, actor) -> Workspace:
    existing = Workspace.objects.filter(organization=organization, name=name).first()
    return existing or workspace_create(
        organization=organization,
        name=name,
        kind=kind,
        timezone=DEMO_TIMEZONE,
        actor=actor,
        source=AuditSource.COMMAND,
    )


def seed_demo(*, password: str | None = None, rehearse: bool = True) -> DemoResult:
    """The demo's data; then yesterday's test event, run for real against the simulator (its own transactions:
    the engine's on-commit work must run as each tick commits)."""
    result = _seed_demo_data(password=password)
    if rehearse:
        from texture_portal.demo.rehearsal import demo_rehearsal_run

        support = get_user_model().objects.filter(username=DEMO_ROLE_USERS[Role.CUSTOMER_SUPPORT][0]).first()
        result.rehearsal = demo_rehearsal_run(
            program=result.program, actor=result.workspace_admin, fleet_csv=DEMO_FLEET_CSV, support_user=support
        )
        # the rehearsal's simulator rotated the OEMs' tokens; `make serve` starts a fresh one that knows the
        # demo accounts' own credentials
        _seed_integrations(workspace=result.workspace, actor=result.workspace_admin)
    _seed_test_event(program=result.program, actor=result.workspace_admin)
    # a driver who connected their own Smartcar account through a Texture Connect session
    from texture_portal.demo.connect import demo_driver_connect

    result.connect_note = demo_driver_connect(workspace=result.workspace, actor=result.workspace_admin)
    # last: what the seed itself emits is not sent to a receiver that `make serve` has not started yet
    from texture_portal.demo.webhooks import demo_destination_ensure

    demo_destination_ensure(workspace=result.workspace, actor=result.workspace_admin)
    return result


def _role_user(username: str, first_name: str, last_name: str, password: str):
    user, _ = get_user_model().objects.get_or_create(
        username=username,
        defaults={"first_name": first_name, "last_name": last_name, "email": f"{username}@example.com"},
    )
    user.set_password(password)
    user.is_staff = True
    user.save()
    return user


@transaction.atomic
def _seed_demo_data(*, password: str | None = None) -> DemoResult:
    User = get_user_model()
    organization = Organization.objects.filter(slug="timber-ridge").first() or organization_create(
        name=DEMO_ORGANIZATION, slug="timber-ridge"
    )
    user, _ = User.objects.get_or_create(
        username=DEMO_USERNAME,
        defaults={"first_name": "Demo", "last_name": "Operator", "email": "demo@example.com"},
    )
    password = password or secrets.token_urlsafe(12)
    user.set_password(password)
    user.is_staff = True
    user.save()

    production = _workspace(organization, "production", WorkspaceKind.PRODUCTION, user)
    sandbox = _workspace(organization, "sandbox", WorkspaceKind.SANDBOX, user)
    for workspace in (production, sandbox):
        membership_grant(user=user, workspace=workspace, role=Role.ADMIN, actor=None, source=AuditSource.COMMAND)
    logins = [(user.username, str(Role.ADMIN.label), password)]
    for role, (username, first_name, last_name) in DEMO_ROLE_USERS.items():
        role_password = password or secrets.token_urlsafe(12)
        member = _role_user(username, first_name, last_name, role_password)
        membership_grant(user=member, workspace=production, role=role, actor=None, source=AuditSource.COMMAND)
        logins.append((username, str(role.label), role_password))

    program = Program.objects.filter(workspace=production, slug=DEMO_PROGRAM_SLUG).first() or program_create(
        workspace=production,
        actor=user,
        source=AuditSource.COMMAND,
        slug=DEMO_PROGRAM_SLUG,
        name="Timber Ridge 2026 VPP",
        description="Residential batteries and EV chargers for winter and summer peaks.",
        program_type="battery",
        enrollment_approval="automatic",
        launch_threshold=15,
        timezone=DEMO_TIMEZONE,
        strategy={
            "allowed_event_types": ["charge", "discharge", "idle"],
            "min_soc_percent": 20,
            "max_soc_percent": 100,
            "ramp_minutes": 2,  # a demo event shows its ramp within minutes
            "max_event_duration_minutes": 240,
            "enable_grid_interaction": True,
            "participation_floor_percent": DEMO_PARTICIPATION_FLOOR_PERCENT,
        },
    )
    created = _seed_fleet(workspace=production, program=program, actor=user)
    _seed_launch_checklist(program=program, actor=user)
    _seed_integrations(workspace=production, actor=user)
    _seed_alert_email(workspace=production, actor=user)
    return DemoResult(
        workspace=production,
        program=program,
        username=user.username,
        password=password,
        devices_created=created,
        logins=logins,
        workspace_admin=user,
    )


def _seed_fleet(*, workspace, program, actor) -> int:
    manufacturers = {m.slug: m for m in Manufacturer.objects.all()}
    created = 0
    with DEMO_FLEET_CSV.open(newline="") as handle:
        for row in csv.DictReader(handle):
            contact = Contact.objects.filter(workspace=workspace, reference_id=row["referenceId"]).first()
            if contact is None:
                contact = contact_create(
                    workspace=workspace,
                    actor=actor,
                    source=AuditSource.COMMAND,
                    reference_id=row["referenceId"],
                    first_name=row["firstName"],
                    last_name=row["lastName"],
                    email=row["email"],
                    phone=row["phone"],
                )
            site = Site.objects.filter(
                contact=contact, street_one=row["streetOne"], postal_code=row["postalCode"]
            ).first()
            if site is None:
                site = site_create(
                    workspace=workspace,
                    contact=contact,
                    actor=actor,
                    source=AuditSource.COMMAND,
                    street_one=row["streetOne"],
                    city=row["city"],
                    state=row["state"],
                    postal_code=row["postalCode"],
                    country=row["country"] or "US",
                    timezone="America/Los_Angeles",
                )
            manufacturer = manufacturers[row["manufacturerSlug"]]
            device = Device.objects.filter(
                workspace=workspace, manufacturer=manufacturer, system_identifier=row["systemIdentifier"]
            ).first()
            if device is None:
                device = device_register(
                    workspace=workspace,
                    site=site,
                    manufacturer=manufacturer,
                    system_identifier=row["systemIdentifier"],
                    device_type=row["deviceType"],
                    tags=[t for t in row["tags"].split(";") if t],
                    actor=actor,
                    source=AuditSource.COMMAND,
                )
                created += 1
            if not Enrollment.objects.filter(device=device, program=program).exists():
                enrollment_submit(device=device, program=program, actor=actor, source=AuditSource.COMMAND)
    return created


# What the implementation team has signed off by the time the demo starts: kickoff and program setup.
DEMO_SIGN_OFFS = {
    LaunchCriterion.DATA_SCOPE_CONFIRMED: (
        "Batteries (Tesla, FranklinWH, Enphase, SolarEdge monitoring only), EV chargers (Emporia, ChargePoint) "
        "and EVs through Smartcar, ~30 devices."
    ),
    LaunchCriterion.CONTACTS_AND_LAUNCH_DATE_AGREED: "PM: Dana Whitfield; tech lead: Sam Ortiz; launch in March.",
    LaunchCriterion.ENROLLMENT_REQUIREMENTS_CONFIRMED: "Residential members; automatic approval.",
    LaunchCriterion.DISPATCH_CONFIGURATION_CONFIRMED: "Charge / discharge / idle, SoC 20–100 %, 2-minute ramp.",
}


def _seed_launch_checklist(*, program, actor) -> None:
    """A partly met launch checklist: kickoff and setup signed off, the fleet imported and linked, so the
    program waits in device discovery (the demo's discovery run makes its devices report). Idempotent."""
    for criterion, note in DEMO_SIGN_OFFS.items():
        if not LaunchCriterionSignOff.objects.filter(program=program, criterion=criterion).exists():
            launch_criterion_sign_off(
                program=program, criterion=criterion, actor=actor, note=note, source=AuditSource.COMMAND
            )
    # forward through the phases whose exit criteria hold (never by override), up to device discovery
    while PHASE_ORDER.index(program.phase) < PHASE_ORDER.index(ProgramPhase.DISCOVERY):
        if not program_launch_checklist(program=program).phase(program.phase).met:
            break
        next_phase = PHASE_ORDER[PHASE_ORDER.index(program.phase) + 1]
        program_set_phase(program=program, phase=next_phase, actor=actor, source=AuditSource.COMMAND)


def _seed_integrations(*, workspace, actor) -> None:
    """Enable the demo fleet's OEMs with the simulator's demo accounts (`make demo` starts the simulator
    afresh, so the credentials are reset to the ones it accepts)."""
    from integrations.services import workspace_integration_save
    from integrations.simulator import DEMO_CREDENTIALS

    for channel, credentials in DEMO_CREDENTIALS.items():
        workspace_integration_save(
            workspace=workspace,
            channel=channel,
            actor=actor,
            enabled=True,
            credentials=dict(credentials),
            source=AuditSource.COMMAND,
        )


def _seed_alert_email(*, workspace, actor) -> None:
    """New alerts of the production workspace are mailed to the co-op's ops address (the console backend prints
    them where `make demo` runs). Alerts themselves are never seeded: the rules raise them from what the demo
    really does (see DEMO_OFFLINE_DEVICES)."""
    from fleet.services import alert_notification_setting_save

    alert_notification_setting_save(
        workspace=workspace, email=DEMO_ALERT_EMAIL, actor=actor, source=AuditSource.COMMAND
    )


DEMO_EVENT_NAME = "Demo test event: afternoon discharge"


def _seed_test_event(*, program, actor, now=None) -> None:
    """A test event that runs by itself soon after `make demo` starts, so its report (compiled when it
    completes, against each device's simulated past) is there without a click: 30 minutes of discharge from
    the first quarter hour at least 5 minutes ahead. One per run, and none while one is still to come."""
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.choices import DispatchEventStatus
    from dispatch.models import DispatchEvent
    from dispatch.services import dispatch_event_create, dispatch_event_schedule

    now = now or timezone.now()
    upcoming = DispatchEvent.objects.filter(
        program=program,
        status__in=[DispatchEventStatus.SCHEDULED, DispatchEventStatus.IN_PROGRESS],
        ends_at__gt=now,
    )
    if upcoming.exists():
        return
    soon = now + timedelta(minutes=5)
    starts = soon.replace(minute=soon.minute - soon.minute % 15, second=0, microsecond=0) + timedelta(minutes=15)
    ends = starts + timedelta(minutes=30)
    event = dispatch_event_create(
        program=program,
        name=DEMO_EVENT_NAME,
        starts_at=starts,
        ends_at=ends,
        actor=actor,
        actions=[{"action_type": "discharge", "starts_at": starts, "ends_at": ends}],
        source=AuditSource.COMMAND,
    )
    dispatch_event_schedule(event=event, actor=actor, source=AuditSource.COMMAND)
