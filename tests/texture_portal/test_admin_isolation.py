"""A staff user of workspace A never sees or reaches workspace B's rows in the admin; a superuser sees all."""

import pytest
from django.contrib import admin
from django.urls import reverse

from fleet.models import Contact, Device, Site
from programs.models import Program
from tests.factories import PASSWORD, DeviceTagFactory, TelemetryReadingFactory, make_program
from texture_portal.tenancy import is_workspace_scoped

pytestmark = pytest.mark.django_db


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def changelist(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def test_other_workspaces_device_page_is_404(client, tenants):
    login(client, tenants.alice)
    assert client.get(change_url(tenants.device_a)).status_code == 200
    response = client.get(change_url(tenants.device_b))
    assert response.status_code == 404


def test_other_workspaces_objects_are_404_on_change_delete_and_history(client, tenants):
    login(client, tenants.alice)
    contact_b = tenants.device_b.contact
    for url in (
        change_url(contact_b),
        reverse("admin:fleet_contact_delete", args=[contact_b.pk]),
        reverse("admin:fleet_contact_history", args=[contact_b.pk]),
        change_url(tenants.device_b.site),
    ):
        assert client.get(url).status_code == 404, url


def test_posting_to_another_workspaces_object_changes_nothing(client, tenants):
    login(client, tenants.alice)
    contact_b = tenants.device_b.contact
    response = client.post(
        change_url(contact_b),
        {"reference_id": "HIJACK", "first_name": "x", "last_name": "y", "email": "", "phone": ""},
    )
    assert response.status_code == 404
    contact_b.refresh_from_db()
    assert contact_b.reference_id == "B-1"


def test_changelists_never_show_other_workspaces_rows(client, tenants):
    TelemetryReadingFactory(device=tenants.device_a)
    TelemetryReadingFactory(device=tenants.device_b)
    make_program(tenants.a, slug="alpha-vpp")
    make_program(tenants.b, slug="beta-vpp")
    login(client, tenants.alice)
    for model in admin.site._registry:
        if not is_workspace_scoped(model):
            continue
        response = client.get(changelist(model))
        if response.status_code == 403:
            continue
        assert response.status_code == 200, model
        rows = list(response.context["cl"].result_list)
        workspace_ids = {getattr(row, "workspace_id", None) for row in rows}
        assert workspace_ids <= {tenants.a.pk}, f"{model._meta.label} leaks rows of {workspace_ids}"
    # and specifically, B's serial never appears on A's device list
    page = client.get(changelist(Device)).content.decode()
    assert "ALPHA-0001" in page
    assert "BETA-0001" not in page


def test_search_does_not_reach_other_workspaces(client, tenants):
    login(client, tenants.alice)
    response = client.get(changelist(Contact), {"q": "B-1"})
    assert list(response.context["cl"].result_list) == []
    response = client.get(changelist(Device), {"q": "BETA"})
    assert list(response.context["cl"].result_list) == []


def test_filter_choices_list_only_own_workspaces_rows(client, tenants):
    make_program(tenants.a, slug="alpha-vpp", name="Alpha VPP")
    make_program(tenants.b, slug="beta-vpp", name="Beta Secret Program")
    DeviceTagFactory(workspace=tenants.a, name="feeder:alpha")
    DeviceTagFactory(workspace=tenants.b, name="feeder:beta-secret")
    login(client, tenants.alice)
    page = client.get(changelist(Device)).content.decode()
    assert "Alpha VPP" in page and "feeder:alpha" in page
    assert "Beta Secret Program" not in page
    assert "feeder:beta-secret" not in page
    assert "Beta Power" not in page  # the workspace filter lists only A


def test_add_form_offers_only_own_workspaces_and_their_rows(client, tenants):
    login(client, tenants.alice)
    form = client.get(reverse("admin:fleet_site_add")).context["adminform"].form
    assert list(form.fields["workspace"].queryset) == [tenants.a]
    assert set(form.fields["contact"].queryset) == {tenants.device_a.contact}


def test_cannot_link_a_row_of_another_workspace_by_posting_its_id(client, tenants):
    login(client, tenants.alice)
    response = client.post(
        reverse("admin:fleet_site_add"),
        {
            "workspace": tenants.a.pk,
            "contact": tenants.device_b.contact.pk,
            "street_one": "1 Main St",
            "city": "Bend",
            "state": "OR",
            "postal_code": "97701",
            "country": "US",
        },
    )
    assert response.status_code == 200  # the form again, with an error
    assert "contact" in response.context["adminform"].form.errors
    assert not Site.objects.filter(street_one="1 Main St").exists()


def test_cannot_create_in_a_workspace_one_is_not_a_member_of(client, tenants):
    login(client, tenants.alice)
    response = client.post(
        reverse("admin:programs_program_add"),
        {
            "workspace": tenants.b.pk,
            "name": "Sneaky",
            "slug": "sneaky",
            "program_type": "battery",
            "enrollment_approval": "automatic",
            "launch_threshold": 0,
        },
    )
    assert response.status_code == 200
    assert "workspace" in response.context["adminform"].form.errors
    assert not Program.objects.filter(slug="sneaky").exists()


def test_autocomplete_does_not_return_other_workspaces_rows(client, tenants):
    login(client, tenants.alice)
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "fleet", "model_name": "device", "field_name": "site", "term": ""},
    )
    assert response.status_code == 200
    ids = {int(item["id"]) for item in response.json()["results"]}
    assert ids == {tenants.device_a.site_id}


def test_superuser_sees_every_workspace(client, tenants):
    login(client, tenants.root)
    rows = client.get(changelist(Device)).context["cl"].result_list
    assert {d.system_identifier for d in rows} == {"ALPHA-0001", "BETA-0001"}
    assert client.get(change_url(tenants.device_b)).status_code == 200


def test_user_without_membership_sees_nothing(client, tenants):
    from tests.factories import UserFactory

    loner = UserFactory(username="loner", is_staff=True)
    login(client, loner)
    assert client.get(changelist(Device)).status_code == 403
    assert client.get(change_url(tenants.device_a)).status_code in (403, 404)
