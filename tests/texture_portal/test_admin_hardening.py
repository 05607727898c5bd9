"""The admin's hardening (issue #15): permissions that stay in their workspace, no existence oracle, no server
error from hostile values, a service's refusal as a form error, global records' changes audited."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from dispatch.models import DispatchEvent
from fleet.choices import ImportJobStatus
from fleet.models import Contact, ImportJob
from programs.services import event_strategy_create_version
from tests.dispatch.test_admin_timezone import event_form
from tests.factories import PASSWORD, DeviceTagFactory, make_program, staff_user
from texture_portal.auth import forget_cached_permissions
from texture_portal.choices import AuditAction, Role
from texture_portal.models import AuditLogEntry, Organization, WorkspaceMembership
from texture_portal.text import cut

pytestmark = pytest.mark.django_db


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


# -- permissions that cross workspaces ---------------------------------------------------------------------------


@pytest.fixture
def lead_put_into_the_group(tenants):
    """A Program Lead of A who was also put straight into the "Program Lead" group and given a direct permission
    (what a superuser might do by hand on the user page)."""
    lead = staff_user("lead", tenants.a, Role.PROGRAM_LEAD)
    lead.groups.add(Group.objects.get(name=str(Role.PROGRAM_LEAD.label)))
    lead.user_permissions.add(Permission.objects.get(codename="change_device"))
    forget_cached_permissions(lead)
    return lead


def test_direct_and_group_permissions_grant_nothing_in_a_workspace_without_a_role(tenants, lead_put_into_the_group):
    lead = lead_put_into_the_group
    program_a = make_program(tenants.a, slug="alpha-vpp")
    program_b = make_program(tenants.b, slug="beta-vpp")
    assert lead.has_perm("programs.view_program", program_a)
    assert lead.has_perm("fleet.change_device", tenants.device_a)  # direct: inside A, where a role is held
    assert not lead.has_perm("programs.view_program", program_b)
    assert not lead.has_perm("programs.change_eventstrategy", program_b)
    assert not lead.has_perm("fleet.change_device", tenants.device_b)
    assert lead.get_all_permissions(program_b) == set()
    assert lead.has_perm("fleet.change_device")  # the model-level answer (lists are scoped to A anyway)


def test_a_strategy_add_page_opened_for_another_workspaces_program_prefills_nothing_of_it(
    client, tenants, lead_put_into_the_group
):
    program_b = make_program(tenants.b, slug="beta-vpp")
    event_strategy_create_version(
        program=program_b, actor=None, data={"notes": "B's secret bidding notes", "min_soc_percent": 17}
    )
    login(client, lead_put_into_the_group)
    response = client.get(reverse("admin:programs_eventstrategy_add"), {"program": program_b.pk})
    assert response.status_code == 200
    initial = response.context["adminform"].form.initial
    assert "B's secret bidding notes" not in response.content.decode()
    assert initial.get("workspace") != tenants.b.pk
    assert initial.get("min_soc_percent") != 17
    for bogus in ("bogus", "9" * 30, "1.5"):
        assert client.get(reverse("admin:programs_eventstrategy_add"), {"program": bogus}).status_code == 200


def test_a_strategy_add_page_for_ones_own_program_still_starts_from_its_current_version(client, tenants):
    program_a = make_program(tenants.a, slug="alpha-vpp")
    event_strategy_create_version(program=program_a, actor=None, data={"notes": "Ours", "min_soc_percent": 23})
    login(client, tenants.alice)
    response = client.get(reverse("admin:programs_eventstrategy_add"), {"program": program_a.pk})
    assert response.context["adminform"].form.initial["min_soc_percent"] == 23


# -- no existence oracle -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["texture_portal/organization", "auth/user"])
def test_history_pages_of_global_records_answer_the_same_whether_the_object_exists_or_not(client, tenants, model):
    login(client, tenants.alice)  # staff, not superuser
    existing = tenants.a.organization_id if model.endswith("organization") else tenants.bob.pk
    answers = {client.get(f"/admin/{model}/{object_id}/history/").status_code for object_id in (existing, 987654)}
    assert answers == {403}


# -- saves that were server errors -------------------------------------------------------------------------------


def _workspace_form(workspace, memberships, extra_rows=()):
    data = {
        "name": workspace.name,
        "kind": workspace.kind,
        "timezone": workspace.timezone,
        "memberships-TOTAL_FORMS": str(len(memberships) + len(extra_rows)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, membership in enumerate(memberships):
        data.update(
            {
                f"memberships-{i}-id": membership.pk,
                f"memberships-{i}-workspace": workspace.pk,
                f"memberships-{i}-user": membership.user_id,
                f"memberships-{i}-role": membership.role,
            }
        )
    for j, (user, role) in enumerate(extra_rows, start=len(memberships)):
        data.update({f"memberships-{j}-workspace": workspace.pk, f"memberships-{j}-user": user.pk})
        data[f"memberships-{j}-role"] = role
    return data


def test_the_workspace_page_saves_unchanged_and_with_a_new_member(client, tenants):
    login(client, tenants.root)
    url = reverse("admin:texture_portal_workspace_change", args=[tenants.a.pk])
    memberships = list(WorkspaceMembership.objects.filter(workspace=tenants.a).order_by("pk"))
    unchanged = client.post(url, _workspace_form(tenants.a, memberships))
    assert unchanged.status_code == 302
    added = client.post(url, _workspace_form(tenants.a, memberships, [(tenants.bob, Role.OPS)]))
    assert added.status_code == 302
    assert WorkspaceMembership.objects.get(workspace=tenants.a, user=tenants.bob).role == Role.OPS
    assert AuditLogEntry.objects.filter(action=AuditAction.MEMBERSHIP_GRANTED, workspace=tenants.a).exists()


def test_a_production_event_for_a_program_not_launched_is_a_form_error(client, tenants):
    program = make_program(tenants.a, slug="alpha-vpp")
    login(client, tenants.alice)
    day = (timezone.now() + timedelta(days=2)).date().isoformat()
    data = event_form(program, day=day)
    del data["is_test"]  # a production event
    response = client.post(reverse("admin:dispatch_dispatchevent_add"), data)
    assert response.status_code == 200
    errors = str(response.context["adminform"].form.non_field_errors())
    assert "not launched for production dispatch" in errors
    assert not DispatchEvent.objects.filter(program=program).exists()
    # the same form as a test event saves
    assert client.post(reverse("admin:dispatch_dispatchevent_add"), event_form(program, day=day)).status_code == 302


def test_an_api_key_expiring_in_the_past_is_a_form_error(client, tenants):
    login(client, tenants.alice)
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()
    data = {"workspace": tenants.a.pk, "name": "MDMS", "expires_at_0": yesterday, "expires_at_1": "12:00"}
    data["scopes"] = ["*:read"]  # the read-only default the add form ticks
    response = client.post(reverse("admin:texture_portal_apikey_add"), data)
    assert response.status_code == 200
    assert "The expiry date must be in the future." in str(response.context["adminform"].form.non_field_errors())


# -- hostile values -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{"program": "bogus"}, {"tag": "bogus"}, {"program": "9" * 30}, {"tag": "-1"}])
def test_device_list_filters_with_bogus_values_say_so(client, tenants, params):
    make_program(tenants.a, slug="alpha-vpp")  # (a sidebar filter without choices is not shown, nor applied)
    DeviceTagFactory(workspace=tenants.a, name="feeder:1")
    login(client, tenants.alice)
    response = client.get(reverse("admin:fleet_device_changelist"), params, follow=True)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    shown = [str(message) for message in response.context["messages"]]
    assert any(text.startswith("Invalid filter") for text in shown), shown
    assert all(len(text) < 200 for text in shown)


def test_a_foreign_key_lookup_beyond_64_bits_is_an_invalid_filter(client, tenants):
    login(client, tenants.root)
    response = client.get(reverse("admin:fleet_device_changelist"), {"workspace": "9" * 30}, follow=True)
    assert response.status_code == 200
    assert any("not a number the database holds" in str(m) for m in response.context["messages"])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/admin/fleet/device/", {"state__exact": "on_workspace\x00"}),
        ("/admin/fleet/importjob/", {"status__exact": "validated\x00"}),
        ("/admin/autocomplete/", {"app_label": "fleet", "model_name": "site", "field_name": "contact", "term": "\x00"}),
        ("/admin/fleet/device/", {"q": "x" * 100_000}),
        ("/admin/texture_portal/organization/", {"q": "x" * 100_000}),
        (
            "/admin/autocomplete/",
            {"app_label": "fleet", "model_name": "site", "field_name": "contact", "term": "y" * 100_000},
        ),
    ],
)
def test_nul_bytes_and_huge_searches_are_a_short_bad_request(client, tenants, path, params):
    login(client, tenants.root)
    response = client.get(path, params)
    assert response.status_code == 400
    text = response.content.decode()
    assert len(text) < 200 and "xxxxx" not in text and "yyyyy" not in text


@pytest.mark.parametrize("path", ["/admin/fleet/device/", "/admin/texture_portal/organization/", "/admin/auth/user/"])
def test_a_search_longer_than_200_characters_finds_nothing_and_says_why(client, tenants, path):
    login(client, tenants.root)
    response = client.get(path, {"q": "x" * 1500})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    shown = [str(message) for message in response.context["messages"]]
    assert shown == ["The search is 1,500 characters long; at most 200 are allowed."]
    autocomplete = client.get(
        "/admin/autocomplete/",
        {"app_label": "fleet", "model_name": "site", "field_name": "contact", "term": "x" * 1500},
    )
    assert autocomplete.status_code == 200 and autocomplete.json()["results"] == []


def test_a_nul_byte_in_a_form_value_is_a_bad_request(client, tenants):
    login(client, tenants.root)
    response = client.post(reverse("admin:fleet_contact_changelist"), {"action": "x\x00", "_selected_action": "1"})
    assert response.status_code == 400


@pytest.mark.parametrize("object_id", ["abc", "1.5", "9" * 30, "-3"])
def test_an_import_job_page_with_an_odd_id_is_not_found(client, tenants, object_id):
    ImportJob.objects.create(workspace=tenants.a, original_filename="f.csv", status=ImportJobStatus.VALIDATED)
    login(client, tenants.root)
    for suffix in ("change/", "history/"):
        assert client.get(f"/admin/fleet/importjob/{object_id}/{suffix}").status_code == 404


def test_an_import_job_page_with_a_nul_in_its_address_is_a_bad_request(client, tenants):
    login(client, tenants.root)
    assert client.get("/admin/fleet/importjob/%00/change/").status_code == 400


@pytest.mark.parametrize("selected", [["abc"], ["9" * 30], ["1.5"]])
def test_an_action_with_hostile_selections_selects_nothing(client, tenants, selected):
    login(client, tenants.root)
    response = client.post(
        reverse("admin:fleet_contact_changelist"),
        {"action": "delete_selected", "_selected_action": selected, "index": "0"},
        follow=True,
    )
    assert response.status_code == 200
    assert any("must be selected" in str(m) for m in response.context["messages"])


def test_an_action_never_reaches_another_workspaces_rows(client, tenants):
    login(client, tenants.alice)
    contact_b = tenants.device_b.contact
    client.post(
        reverse("admin:fleet_contact_changelist"),
        {"action": "delete_selected", "_selected_action": [contact_b.pk], "index": "0", "post": "yes"},
    )
    assert Contact.objects.filter(pk=contact_b.pk).exists()


@pytest.mark.parametrize("params", [{"state": "s" * 1500}, {"lastSeen": "l" * 1500}, {"socBand": "b" * 1500}])
def test_a_refused_filter_value_is_quoted_cut_in_the_message(client, tenants, params):
    login(client, tenants.alice)
    response = client.get(reverse("admin:fleet_device_changelist"), params, follow=True)
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert any(text.startswith("Invalid filter") for text in shown), shown
    assert all(len(text) < 400 for text in shown), shown


def test_every_registered_admin_is_hardened():
    """A ModelAdmin registered later (an app's, or one of Django's re-registered) gets the same answers to hostile
    ids, filters and actions only through HardenedAdminMixin; the walk would find it, this names it."""
    from django.contrib import admin

    from texture_portal.admin_base import HardenedAdminMixin

    plain = [type(a).__name__ for a in admin.site._registry.values() if not isinstance(a, HardenedAdminMixin)]
    assert plain == []


def test_a_quoted_value_is_cut():
    assert cut("x" * 100_000) == "x" * 40 + "…"
    assert cut("short") == "short"
    assert cut("a\x00b") == "a?b"


# -- organizations and users in the audit log (#14) ---------------------------------------------------------------


def _user_form(user, **changes):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "date_joined_0": user.date_joined.date().isoformat(),
        "date_joined_1": "00:00:00",
        "workspace_memberships-TOTAL_FORMS": "0",
        "workspace_memberships-INITIAL_FORMS": "0",
        "workspace_memberships-MIN_NUM_FORMS": "0",
        "workspace_memberships-MAX_NUM_FORMS": "1000",
        **changes,
    }
    return {key: value for key, value in data.items() if value != ""}


def test_making_a_user_superuser_in_the_admin_is_audited(client, tenants):
    login(client, tenants.root)
    url = reverse("admin:auth_user_change", args=[tenants.bob.pk])
    response = client.post(url, _user_form(tenants.bob, is_superuser="on", is_staff=""))
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditLogEntry.objects.get(action=AuditAction.OBJECT_CHANGED, content_type__model="user")
    assert entry.object_id == str(tenants.bob.pk)
    assert entry.changes["is_superuser"] == [False, True]
    assert entry.changes["is_staff"] == [True, False]
    assert entry.actor == tenants.root and entry.workspace is None


def test_a_membership_set_on_the_user_page_is_audited_and_the_page_saves(client, tenants):
    login(client, tenants.root)
    url = reverse("admin:auth_user_change", args=[tenants.bob.pk])
    data = _user_form(
        tenants.bob,
        **{
            "workspace_memberships-TOTAL_FORMS": "2",
            "workspace_memberships-INITIAL_FORMS": "1",
            "workspace_memberships-0-id": WorkspaceMembership.objects.get(user=tenants.bob).pk,
            "workspace_memberships-0-user": tenants.bob.pk,
            "workspace_memberships-0-workspace": tenants.b.pk,
            "workspace_memberships-0-role": Role.ADMIN,
            "workspace_memberships-1-user": tenants.bob.pk,
            "workspace_memberships-1-workspace": tenants.a.pk,
            "workspace_memberships-1-role": Role.CUSTOMER_SUPPORT,
        },
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    granted = AuditLogEntry.objects.get(action=AuditAction.MEMBERSHIP_GRANTED, workspace=tenants.a, actor=tenants.root)
    assert granted.changes["user"] == "bob" and granted.actor == tenants.root


def test_a_password_set_in_the_admin_is_audited_without_its_value(client, tenants):
    login(client, tenants.root)
    url = reverse("admin:auth_user_password_change", args=[tenants.bob.pk])
    response = client.post(url, {"password1": "N3w-pass-phrase!", "password2": "N3w-pass-phrase!"})
    assert response.status_code == 302
    entry = AuditLogEntry.objects.get(content_type__model="user", object_id=str(tenants.bob.pk))
    assert entry.changes == {"password": "changed"}


def test_organizations_created_changed_and_deleted_in_the_admin_are_audited(client, tenants):
    login(client, tenants.root)
    assert (
        client.post(reverse("admin:texture_portal_organization_add"), {"name": "Gamma", "slug": "gamma"}).status_code
        == 302
    )
    gamma = Organization.objects.get(slug="gamma")
    change = reverse("admin:texture_portal_organization_change", args=[gamma.pk])
    assert client.post(change, {"name": "Gamma Grid", "slug": "gamma"}).status_code == 302
    delete = reverse("admin:texture_portal_organization_delete", args=[gamma.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    rows = AuditLogEntry.objects.filter(content_type__model="organization", object_id=str(gamma.pk))
    assert sorted(rows.values_list("action", flat=True)) == sorted(
        [AuditAction.OBJECT_CREATED, AuditAction.OBJECT_CHANGED, AuditAction.OBJECT_DELETED]
    )
    assert rows.get(action=AuditAction.OBJECT_CHANGED).changes == {"name": ["Gamma", "Gamma Grid"]}
