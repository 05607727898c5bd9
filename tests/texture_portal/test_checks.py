"""The system check that refuses an admin page which would show tenant rows unscoped."""

import pytest
from django.contrib import admin

from fleet.models import DeviceTag
from texture_portal.checks import check_admin_scoping


def test_project_admin_passes_the_scoping_check():
    assert check_admin_scoping() == []


def test_an_unscoped_admin_of_a_tenant_model_is_an_error():
    site = admin.site
    original = site._registry[DeviceTag]
    try:
        site._registry[DeviceTag] = admin.ModelAdmin(DeviceTag, site)
        errors = check_admin_scoping()
    finally:
        site._registry[DeviceTag] = original
    assert [e.id for e in errors] == ["texture_portal.E001"]
    assert "fleet.DeviceTag" in errors[0].msg


@pytest.mark.django_db
def test_every_workspace_scoped_manager_offers_both_scopes():
    from django.apps import apps

    from texture_portal.tenancy import is_workspace_scoped

    for model in apps.get_models():
        if is_workspace_scoped(model) and model._meta.model_name != "workspace":
            assert hasattr(model.objects, "for_user") and hasattr(model.objects, "for_workspace"), model
