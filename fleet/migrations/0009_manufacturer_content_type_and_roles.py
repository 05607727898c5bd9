"""After the catalog's move (fleet 0008, integrations 0012): its content type takes the fleet's label, so the
permissions, the roles holding them and the audit rows follow it; the roles are synced again
(`fleet.view_manufacturer`)."""

from django.db import migrations

from texture_portal.model_moves import content_types_relabel
from texture_portal.roles import sync_role_groups


def to_fleet(apps, schema_editor):
    content_types_relabel(apps, models=("manufacturer",), source="integrations", target="fleet")


def to_integrations(apps, schema_editor):
    content_types_relabel(apps, models=("manufacturer",), source="fleet", target="integrations")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("fleet", "0008_manufacturer_from_integrations"),
        ("integrations", "0012_manufacturer_moved_to_fleet"),
    ]

    operations = [
        migrations.RunPython(to_fleet, to_integrations),
        migrations.RunPython(sync_role_groups, migrations.RunPython.noop),
    ]
