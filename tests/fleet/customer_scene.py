"""A customer as support meets them on a call, for the customer search and customer page tests: Carmen Chen
(account TRE-100214) with two sites and a device in each state and for each reason a device is not live, and a
customer in another workspace who shares her account number, phone and a serial (never to be found from hers)."""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Contact, Device, Manufacturer, Site, TelemetryReading
from integrations.choices import IntegrationStatus, RunKind, RunStatus
from integrations.models import IntegrationRun, WorkspaceIntegration
from programs.models import Enrollment
from tests.factories import ContactFactory, SiteFactory, WorkspaceFactory, make_program
from texture_portal.models import Workspace


@dataclass
class CustomerScene:
    workspace: Workspace
    other_workspace: Workspace
    contact: Contact
    neighbour: Contact  # TRE-100333, in the same workspace
    decoy: Contact  # TRE-2100333: ends like the neighbour's number, but not after a prefix
    stranger: Contact  # another workspace, same account number, phone and a serial as Carmen
    home: Site
    cabin: Site
    live: Device
    offline: Device
    not_enabled: Device  # Registered: no Tesla integration in the workspace
    not_found: Device  # Registered: FranklinWH discovery ran after it was registered and did not find it
    missed: Device  # Registered: SolarEdge looked it up twice and did not find it (back-off)
    program: object


def device(site, slug, serial, device_type, state, **fields) -> Device:
    """A device of the site, imported two days ago unless told otherwise."""
    imported = timezone.now() - timedelta(days=2)
    fields.setdefault("created", imported)
    fields.setdefault("state_changed_at", imported)
    return Device.objects.create(
        workspace=site.workspace,
        contact=site.contact,
        site=site,
        manufacturer=Manufacturer.objects.get(slug=slug),
        system_identifier=serial,
        device_type=device_type,
        state=state,
        **fields,
    )


def reading(dev: Device, at, **values) -> TelemetryReading:
    row = TelemetryReading.objects.create(
        workspace_id=dev.workspace_id,
        device=dev,
        measured_at=at,
        charge_percentage=values.get("soc", 64.0),
        charge_rate_w=values.get("charge_rate_w", -1500.0),
        grid_power_w=values.get("grid_power_w", 300.0),
        is_storm_mode_active=values.get("storm", False),
    )
    Device.objects.filter(pk=dev.pk).update(latest_telemetry=row, last_seen_at=at)
    dev.latest_telemetry, dev.last_seen_at = row, at
    return row


def customer_scene(now=None) -> CustomerScene:
    now = now or timezone.now()
    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric", organization__slug="timber-ridge")
    other = WorkspaceFactory(organization__name="Beta Power", organization__slug="beta-power")
    contact = ContactFactory(
        workspace=workspace,
        reference_id="TRE-100214",
        first_name="Carmen",
        last_name="Chen",
        email="carmen.chen@example.com",
        phone="+15415551188",
    )
    neighbour = ContactFactory(workspace=workspace, reference_id="TRE-100333", first_name="Ava", last_name="Alvarez")
    decoy = ContactFactory(workspace=workspace, reference_id="TRE-2100333", first_name="Ben", last_name="Brooks")
    stranger = ContactFactory(
        workspace=other,
        reference_id="TRE-100214",
        first_name="Carmen",
        last_name="Chen",
        email="carmen.chen@example.com",
        phone="+15415551188",
    )
    home = SiteFactory(
        contact=contact,
        street_one="1422 Juniper Way",
        city="Redmond",
        state="OR",
        postal_code="97756",
        latitude=44.2726,
        longitude=-121.1739,
        timezone="America/Los_Angeles",
    )
    cabin = SiteFactory(contact=contact, street_one="88 Cascade Ave", city="Sisters", state="OR", postal_code="97759")
    stranger_site = SiteFactory(contact=stranger, street_one="1422 Juniper Way", city="Redmond", postal_code="97756")
    SiteFactory(contact=neighbour, street_one="9480 Alder Pl", city="La Pine", postal_code="97739")

    live = device(
        home,
        "enphase",
        "EN0014160265",
        "battery",
        DeviceState.ON_WORKSPACE,
        state_changed_at=now - timedelta(days=20),
        state_reason="Found at Enphase Enlighten v4 (ENV-88).",
    )
    reading(live, now - timedelta(minutes=4), soc=64.0)
    offline = device(
        home,
        "emporia",
        "A230968745",
        "charger",
        DeviceState.OFFLINE,
        state_changed_at=now - timedelta(hours=3),
        state_reason="No telemetry since … (expected every 5 min; offline after 3×).",
        oem_data={"lastSyncError": {"message": "device offline (not connected to Emporia cloud)", "at": "x"}},
    )
    reading(offline, now - timedelta(hours=3, minutes=20), soc=None, charge_rate_w=None)
    not_enabled = device(cabin, "tesla", "TG100069695681", "battery", DeviceState.REGISTERED)
    not_found = device(cabin, "franklinwh", "1005000060202768", "battery", DeviceState.REGISTERED)
    missed = device(
        cabin,
        "solaredge",
        "7E1A2B3C-4D",
        "inverter",
        DeviceState.REGISTERED,
        oem_data={
            "discoveryMiss": {"serial": "7E1A2B3C-4D", "at": (now - timedelta(hours=2)).isoformat(), "misses": 2}
        },
    )
    device(stranger_site, "enphase", "EN0014160265", "battery", DeviceState.OFFLINE)

    for channel in ("franklinwh", "solaredge", "enphase", "emporia"):
        integration = WorkspaceIntegration.objects.create(
            workspace=workspace, channel=channel, enabled=True, status=IntegrationStatus.CONNECTED
        )
        if channel == "franklinwh":
            IntegrationRun.objects.create(
                workspace=workspace,
                integration=integration,
                kind=RunKind.DISCOVERY,
                status=RunStatus.SUCCEEDED,
                started_at=now - timedelta(minutes=30),
                finished_at=now - timedelta(minutes=29),
            )

    program = make_program(workspace, slug="timber-ridge-2026-vpp")
    for dev in (live, offline, not_enabled):
        Enrollment.objects.create(workspace=workspace, program=program, device=dev, status="approved")
    return CustomerScene(
        workspace=workspace,
        other_workspace=other,
        contact=contact,
        neighbour=neighbour,
        decoy=decoy,
        stranger=stranger,
        home=home,
        cabin=cabin,
        live=live,
        offline=offline,
        not_enabled=not_enabled,
        not_found=not_found,
        missed=missed,
        program=program,
    )
