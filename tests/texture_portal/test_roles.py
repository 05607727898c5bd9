"""The five roles as groups, and permissions that follow the workspace in which a role is held."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from texture_portal.choices import Role
from texture_portal.roles import ROLE_PERMISSIONS
from texture_portal.services import membership_grant

pytestmark = pytest.mark.django_db


def test_migration_seeds_the_five_roles_with_exactly_their_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "Ops",
        "Customer Support",
        "Engineering",
        "Program Lead",
        "Admin",
    }
    for role in Role:
        group = Group.objects.get(name=str(role.label))
        actual = {f"{app}.{code}" for app, code in group.permissions.values_list("content_type__app_label", "codename")}
        assert actual == ROLE_PERMISSIONS[role], role


@pytest.mark.parametrize(
    ("role", "allowed", "denied"),
    [
        (
            Role.CUSTOMER_SUPPORT,
            ["fleet.view_contact", "fleet.change_contact", "fleet.view_device"],
            [
                "fleet.change_device",
                "programs.add_program",
                "integrations.change_workspaceintegration",
                "dispatch.add_dispatchevent",
            ],
        ),
        (
            Role.OPS,
            ["fleet.change_device", "dispatch.add_dispatchevent", "dispatch.change_command"],
            ["programs.add_program", "integrations.change_workspaceintegration", "fleet.delete_device"],
        ),
        (
            Role.ENGINEERING,
            ["integrations.add_workspaceintegration", "integrations.change_workspaceintegration"],
            ["programs.add_program", "dispatch.add_dispatchevent", "fleet.change_contact"],
        ),
        (
            Role.PROGRAM_LEAD,
            [
                "programs.add_program",
                "programs.change_enrollment",
                "dispatch.add_dispatchevent",
                "programs.add_eventstrategy",
            ],
            ["integrations.change_workspaceintegration", "fleet.delete_contact"],
        ),
        (
            Role.ADMIN,
            [
                "fleet.delete_device",
                "texture_portal.add_workspacemembership",
                "programs.add_program",
                "texture_portal.view_auditlogentry",
            ],
            [
                "texture_portal.add_workspace",
                "fleet.change_manufacturer",
                "texture_portal.change_auditlogentry",
            ],
        ),
    ],
)
def test_role_grants_its_permissions_in_its_workspace(role, allowed, denied):
    workspace = WorkspaceFactory()
    user = staff_user(f"user-{role}", workspace, role)
    program = make_program(workspace)
    for perm in allowed:
        assert user.has_perm(perm), perm
        assert user.has_perm(perm, program), perm  # object-level, in the role's workspace
    for perm in denied:
        assert not user.has_perm(perm), perm


def test_a_role_held_in_one_workspace_grants_nothing_in_another():
    a, b = WorkspaceFactory(), WorkspaceFactory()
    user = staff_user("mixed", a, Role.PROGRAM_LEAD)
    membership_grant(user=user, workspace=b, role=Role.CUSTOMER_SUPPORT)
    program_a, program_b = make_program(a, slug="p-a"), make_program(b, slug="p-b")
    assert user.has_perm("programs.change_program", program_a)
    assert user.has_perm("programs.view_program", program_b)
    assert not user.has_perm("programs.change_program", program_b)


def test_admin_enforces_the_role_of_the_objects_workspace(client):
    a, b = WorkspaceFactory(), WorkspaceFactory()
    user = staff_user("mixed", a, Role.PROGRAM_LEAD)
    membership_grant(user=user, workspace=b, role=Role.CUSTOMER_SUPPORT)
    program_b = make_program(b, slug="p-b", name="Program B")
    assert client.login(username="mixed", password=PASSWORD)
    url = reverse("admin:programs_program_change", args=[program_b.pk])
    page = client.get(url)
    assert page.status_code == 200  # Support may read it …
    assert not page.context["has_change_permission"]
    response = client.post(
        url,
        {
            "name": "Renamed",
            "slug": "p-b",
            "program_type": "battery",
            "enrollment_approval": "automatic",
            "launch_threshold": 5,
        },
    )
    assert response.status_code == 403  # … but not change it
    program_b.refresh_from_db()
    assert program_b.name == "Program B"


def test_customer_support_finds_a_customer_by_account_number_but_cannot_add_programs(client):
    from tests.factories import ContactFactory

    workspace = WorkspaceFactory()
    staff_user("support", workspace, Role.CUSTOMER_SUPPORT)
    ContactFactory(workspace=workspace, reference_id="TRE-5551234", last_name="Okafor")
    ContactFactory(workspace=workspace, reference_id="TRE-9990000", last_name="Hughes")
    assert client.login(username="support", password=PASSWORD)
    response = client.get(reverse("admin:fleet_contact_changelist"), {"q": "TRE-555"})
    assert [c.last_name for c in response.context["cl"].result_list] == ["Okafor"]
    assert client.get(reverse("admin:programs_program_add")).status_code == 403
    assert client.get(reverse("admin:integrations_workspaceintegration_changelist")).status_code == 403


def test_engineering_manages_integrations_in_its_workspace(client):
    workspace = WorkspaceFactory()
    staff_user("eng", workspace, Role.ENGINEERING)
    assert client.login(username="eng", password=PASSWORD)
    response = client.post(
        reverse("admin:integrations_workspaceintegration_add"),
        {
            "workspace": workspace.pk,
            "channel": "tesla",
            "enabled": "on",
            "new_credentials": '{"client_id": "abc", "client_secret": "s3cr3t-value-1234"}',
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    from integrations.models import WorkspaceIntegration

    integration = WorkspaceIntegration.objects.get(workspace=workspace, channel="tesla")
    assert integration.enabled and integration.credentials["client_secret"] == "s3cr3t-value-1234"
    page = client.get(reverse("admin:integrations_workspaceintegration_change", args=[integration.pk]))
    html = page.content.decode()
    assert "s3cr3t-value-1234" not in html and "••••" not in html  # never shown back, not even its end
    assert "<code>client_secret</code>: set" in html


def test_membership_grant_makes_the_user_staff_and_replaces_the_role():
    workspace = WorkspaceFactory()
    user = staff_user("sam", workspace, Role.OPS)
    assert user.is_staff
    membership_grant(user=user, workspace=workspace, role=Role.ADMIN)
    assert user.workspace_memberships.get().role == Role.ADMIN
    assert user.has_perm("fleet.delete_device")
