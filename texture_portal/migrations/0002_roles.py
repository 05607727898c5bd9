"""The five staff roles as Django groups with their permissions (see texture_portal.roles)."""

from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("texture_portal", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("programs", "0002_initial"),
        ("fleet", "0002_initial"),
        ("integrations", "0003_seed_manufacturers"),
        ("dispatch", "0003_initial"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
