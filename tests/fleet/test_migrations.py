"""The manufacturer catalog moved from `integrations` to the fleet without touching its rows or the devices'
foreign key: migrated forward and back on a database holding the catalog, a device and a role that reads it
(django-test-migrations runs the real migrations)."""

import pytest

BEFORE = [("integrations", "0011_events_moved_to_core"), ("fleet", "0007_telemetry_workspace_unconstrained")]
AFTER = ("fleet", "0009_manufacturer_content_type_and_roles")


def _catalog(apps, app_label: str) -> list[tuple]:
    Manufacturer = apps.get_model(app_label, "Manufacturer")
    return list(Manufacturer.objects.order_by("pk").values_list("pk", "slug", "integration_channel", "aliases"))


def _content_type(apps) -> tuple[int, str]:
    ct = apps.get_model("contenttypes", "ContentType").objects.get(model="manufacturer")
    return ct.pk, ct.app_label


def _support_reads_the_catalog(apps) -> set[tuple[int, str, str]]:
    group = apps.get_model("auth", "Group").objects.get(name="Customer Support")
    perms = group.permissions.filter(content_type__model="manufacturer")
    return set(perms.values_list("pk", "content_type__app_label", "codename"))


def _seed(apps) -> int:
    """A device made by Tesla, and Customer Support reading the catalog, as before the move."""
    Permission = apps.get_model("auth", "Permission")
    apps.get_model("auth", "Group").objects.get(name="Customer Support").permissions.add(
        Permission.objects.get(content_type__app_label="integrations", codename="view_manufacturer")
    )
    Organization = apps.get_model("texture_portal", "Organization")
    Workspace = apps.get_model("texture_portal", "Workspace")
    organization = Organization.objects.create(name="Before the catalog move", slug="before-catalog")
    workspace = Workspace.objects.create(organization=organization, name="Production", slug="before-catalog-prod")
    contact = apps.get_model("fleet", "Contact").objects.create(
        workspace=workspace, reference_id="A-1", first_name="Ada", last_name="Lovelace"
    )
    site = apps.get_model("fleet", "Site").objects.create(
        workspace=workspace, contact=contact, street_one="1 Main St", city="Salem", state="OR", postal_code="97301"
    )
    tesla = apps.get_model("integrations", "Manufacturer").objects.get(slug="tesla")
    device = apps.get_model("fleet", "Device").objects.create(
        workspace=workspace,
        contact=contact,
        site=site,
        manufacturer=tesla,
        system_identifier="TG100000000001",
        device_type="battery",
        state="registered",
    )
    return device.pk


@pytest.mark.django_db(transaction=True)
def test_the_catalog_moves_to_the_fleet_with_its_rows_devices_and_roles_and_back(migrator):
    old = migrator.apply_initial_migration(BEFORE)
    device_id = _seed(old.apps)
    catalog_before = _catalog(old.apps, "integrations")
    content_type_before = _content_type(old.apps)
    support_before = _support_reads_the_catalog(old.apps)
    assert len(catalog_before) >= 7 and content_type_before[1] == "integrations"
    assert {(app, code) for _pk, app, code in support_before} == {("integrations", "view_manufacturer")}

    new = migrator.apply_tested_migration(AFTER)
    assert _catalog(new.apps, "fleet") == catalog_before
    device = new.apps.get_model("fleet", "Device").objects.select_related("manufacturer").get(pk=device_id)
    assert device.manufacturer.slug == "tesla"  # the foreign key follows the model: same row, same table
    assert _content_type(new.apps) == (content_type_before[0], "fleet")
    assert _support_reads_the_catalog(new.apps) == {(pk, "fleet", code) for pk, _app, code in support_before}

    back = migrator.apply_tested_migration(BEFORE)
    assert _catalog(back.apps, "integrations") == catalog_before
    assert back.apps.get_model("fleet", "Device").objects.get(pk=device_id).manufacturer.slug == "tesla"
    assert _content_type(back.apps) == content_type_before
    assert _support_reads_the_catalog(back.apps) == support_before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_grid_services_status_is_added_without_rewriting_the_device_table(migrator):
    """0010 on PostgreSQL: a column with a constant default and a check constraint added NOT VALID, then
    validated. The table keeps its file (a rewrite would give it a new one) and existing devices read
    `unknown`."""
    from django.db import connection

    old = migrator.apply_initial_migration([("fleet", "0009_manufacturer_content_type_and_roles")])
    apps = old.apps
    organization = apps.get_model("texture_portal", "Organization").objects.create(name="Large fleet", slug="large")
    workspace = apps.get_model("texture_portal", "Workspace").objects.create(
        organization=organization, name="Production", slug="large-prod"
    )
    contact = apps.get_model("fleet", "Contact").objects.create(
        workspace=workspace, reference_id="A-1", first_name="Ada", last_name="Lovelace"
    )
    site = apps.get_model("fleet", "Site").objects.create(
        workspace=workspace, contact=contact, street_one="1 Main St", city="Salem", state="OR", postal_code="97301"
    )
    device = apps.get_model("fleet", "Device").objects.create(
        workspace=workspace,
        contact=contact,
        site=site,
        manufacturer=apps.get_model("fleet", "Manufacturer").objects.get(slug="tesla"),
        system_identifier="TG100000000001",
        device_type="battery",
    )

    def table_file():
        with connection.cursor() as cursor:
            cursor.execute("SELECT relfilenode FROM pg_class WHERE relname = 'fleet_device'")
            return cursor.fetchone()[0]

    before = table_file()
    new = migrator.apply_tested_migration(("fleet", "0010_device_grid_services_status"))
    assert table_file() == before
    migrated = new.apps.get_model("fleet", "Device").objects.get(pk=device.pk)
    assert (migrated.grid_services_status, migrated.grid_services_checked_at) == ("unknown", None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'device_grid_services_valid'")
        assert cursor.fetchone() == (True,)
