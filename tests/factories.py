"""factory-boy factories and small builders for tests. Domain rules live in services; factories only make
rows for setting up a scene."""

from dataclasses import dataclass
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Contact, Device, DeviceTag, Manufacturer, Site, TelemetryReading
from programs.models import Program
from programs.services import program_create
from texture_portal.choices import Role, WorkspaceKind
from texture_portal.models import Organization, Workspace
from texture_portal.services import membership_grant

User = get_user_model()
PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password(PASSWORD)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Utility {n}")
    slug = factory.Sequence(lambda n: f"utility-{n}")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    organization = factory.SubFactory(OrganizationFactory)
    name = "production"
    slug = factory.Sequence(lambda n: f"workspace-{n}")
    kind = WorkspaceKind.PRODUCTION


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    workspace = factory.SubFactory(WorkspaceFactory)
    reference_id = factory.Sequence(lambda n: f"ACCT-{100000 + n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda o: f"{o.reference_id.lower()}@example.com")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    contact = factory.SubFactory(ContactFactory)
    workspace = factory.LazyAttribute(lambda o: o.contact.workspace)
    street_one = factory.Sequence(lambda n: f"{100 + n} Cedar Ln")
    city = "Bend"
    state = "OR"
    postal_code = "97701"


class DeviceTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceTag

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"feeder:{n}")


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    site = factory.SubFactory(SiteFactory)
    workspace = factory.LazyAttribute(lambda o: o.site.workspace)
    contact = factory.LazyAttribute(lambda o: o.site.contact)
    manufacturer = factory.LazyFunction(lambda: Manufacturer.objects.get(slug="tesla"))
    system_identifier = factory.Sequence(lambda n: f"TG1{n:011d}")
    device_type = "battery"
    state = DeviceState.REGISTERED


class TelemetryReadingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TelemetryReading

    device = factory.SubFactory(DeviceFactory)
    workspace = factory.LazyAttribute(lambda o: o.device.workspace)
    measured_at = factory.Sequence(lambda n: timezone.now() - timedelta(minutes=5 * n))
    charge_percentage = 64.0
    charge_rate_w = -1500.0
    grid_power_w = 300.0
    solar_power_w = 2100.0
    backup_reserve_percent = 20.0
    charging_state = "charging"
    grid_status = "importing"
    is_storm_mode_enabled = True
    is_storm_mode_active = False


def make_program(workspace, *, actor=None, slug="pilot-vpp", **fields) -> Program:
    defaults = {
        "name": slug.replace("-", " ").title(),
        "program_type": "battery",
        "enrollment_approval": "automatic",
    }
    return program_create(workspace=workspace, actor=actor, slug=slug, **{**defaults, **fields})


def staff_user(username: str, workspace: Workspace, role: Role) -> User:
    user = UserFactory(username=username)
    membership_grant(user=user, workspace=workspace, role=role)
    user.refresh_from_db()
    return user


@dataclass
class Tenants:
    a: Workspace
    b: Workspace
    alice: User  # Admin in A
    bob: User  # Admin in B
    root: User  # superuser
    device_a: Device
    device_b: Device


def two_tenants() -> Tenants:
    a = WorkspaceFactory(organization__name="Alpha Electric", organization__slug="alpha")
    b = WorkspaceFactory(organization__name="Beta Power", organization__slug="beta")
    alice = staff_user("alice", a, Role.ADMIN)
    bob = staff_user("bob", b, Role.ADMIN)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    device_a = DeviceFactory(
        site__contact__workspace=a, system_identifier="ALPHA-0001", site__contact__reference_id="A-1"
    )
    device_b = DeviceFactory(
        site__contact__workspace=b, system_identifier="BETA-0001", site__contact__reference_id="B-1"
    )
    return Tenants(a=a, b=b, alice=alice, bob=bob, root=root, device_a=device_a, device_b=device_b)
